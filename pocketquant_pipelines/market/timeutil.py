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


class BoundedCache(dict):
    """A dict emptied when it reaches ``limit`` entries: time caches only ever need the recent
    seconds, and clearing costs less than evicting one entry at a time."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key, value):
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value


# Many symbols report the same second, and building an aware datetime (or its ISO text) costs
# more than the rest of a tick; datetimes are immutable, so ticks share them.
_DATETIMES = BoundedCache(4096)   # epoch seconds -> aware UTC datetime
_STAMPS = BoundedCache(4096)      # aware datetime -> (epoch seconds, ISO text in UTC)


def utc_datetime(seconds: float) -> datetime:
    """``from_epoch(seconds)``, shared between the ticks of the same second."""
    when = _DATETIMES.get(seconds)
    if when is None:
        when = _DATETIMES.put(seconds, datetime.fromtimestamp(seconds, tz=UTC))
    return when


def epoch_and_iso(when: datetime) -> tuple[float, str]:
    """(epoch seconds, ISO text in UTC) of an aware datetime, shared like ``utc_datetime``."""
    stamp = _STAMPS.get(when)
    if stamp is None:
        stamp = _STAMPS.put(when, (when.timestamp(), when.astimezone(UTC).isoformat()))
    return stamp

