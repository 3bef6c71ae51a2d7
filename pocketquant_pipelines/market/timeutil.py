"""UTC helpers. Inside the system every timestamp is an aware UTC datetime (or epoch seconds
at the edges); naive datetimes are rejected, never guessed."""

from datetime import UTC, datetime

from pocketquant_pipelines.errors import InvalidInputError


def ensure_utc(value: datetime, what: str = "timestamp") -> datetime:
    """Return ``value`` converted to UTC; raise if it is naive (its zone would be a guess)."""
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{what} {value!r} is not a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(
            f"{what} {value.isoformat()!r} is naive; pass an aware datetime (tzinfo=UTC)"
        )
    return value.astimezone(UTC)


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def utcnow() -> datetime:
    return datetime.now(tz=UTC)
