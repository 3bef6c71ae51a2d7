"""Input checks and UTC/epoch conversions shared by every storage backend.

Backends store times as integer epoch *microseconds* (exact for any aware datetime, never
local time). Every check raises a subclass of InvalidInputError whose message names the value.
"""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.symbols import normalize_symbol
from pocketquant_pipelines.market.timeutil import ensure_utc

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
# Open-ended ranges use the full int64 span so SQL/BSON comparisons need no special case.
MIN_US = -(2**63)
MAX_US = 2**63 - 1


def check_symbol(symbol: object) -> str:
    return normalize_symbol(symbol)  # raises InvalidSymbolError naming the value


def check_interval(interval: object) -> Interval:
    return Interval.parse(interval)  # raises InvalidIntervalError naming the value


def to_us(value: datetime, what: str = "timestamp") -> int:
    """Aware datetime -> integer epoch microseconds (exact). Naive datetimes are rejected."""
    return (ensure_utc(value, what) - EPOCH) // _ONE_US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))


def time_range_us(start: datetime | None, end: datetime | None) -> tuple[int, int]:
    """[start, end) as epoch microseconds; None means open-ended."""
    lo = MIN_US if start is None else to_us(start, "start")
    hi = MAX_US if end is None else to_us(end, "end")
    return lo, hi


def check_limit(limit: object) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidInputError(f"limit {limit!r} must be a non-negative integer or None")
    return limit


def check_page_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise InvalidInputError(f"limit {limit!r} must be a positive integer")
    return limit


def check_ttl(ttl_s: object) -> float:
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, (int, float)) or not ttl_s > 0:
        raise InvalidInputError(f"ttl_s {ttl_s!r} must be a positive number of seconds")
    return float(ttl_s)


def check_payload(data: object, what: str = "payload") -> dict:
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"{what} {data!r} must be a mapping (a JSON object)")
    return dict(data)


def check_channel(channel: object) -> str:
    if not isinstance(channel, str) or not channel or any(ch.isspace() for ch in channel):
        raise InvalidInputError(f"channel {channel!r} must be a non-empty string without spaces")
    return channel


def parse_seq_cursor(cursor: object) -> int:
    """Our cursors are the decimal ingest sequence number; None means the beginning."""
    if cursor is None:
        return 0
    if isinstance(cursor, str) and cursor.isascii() and cursor.isdigit():
        return int(cursor)
    raise InvalidInputError(
        f"ingest cursor {cursor!r} is not one this store issued (pass back a cursor from "
        "ingest_since/latest_ingest_cursor, or None to start from the beginning)"
    )


def format_seq_cursor(seq: int) -> str:
    return str(int(seq))


# --- what a read decodes ------------------------------------------------------------------------
DOCTOR_HINT = "run `pocketquant doctor` for a full check and how to recover"


def stored_bar_problems(time_us, open_, high, low, close, volume) -> list[tuple[int, str]]:
    """(row, reason) of every stored bar that breaks the bar rules (finite prices,
    low <= open, close <= high, volume finite and >= 0 or NaN), vectorised over columns."""
    import numpy as np

    o, h, l, c, v = (np.asarray(a, dtype=np.float64) for a in (open_, high, low, close, volume))
    with np.errstate(invalid="ignore", over="ignore"):
        ok = (np.isfinite(o) & np.isfinite(h) & np.isfinite(l) & np.isfinite(c)
              & (l <= o) & (o <= h) & (l <= c) & (c <= h) & ~(v < 0) & ~np.isinf(v))
    rows = np.flatnonzero(~ok)
    return [(int(i), _row_reason(float(o[i]), float(h[i]), float(l[i]), float(c[i]), float(v[i])))
            for i in rows]


def _row_reason(o: float, h: float, l: float, c: float, v: float) -> str:
    import math

    for name, value in (("open", o), ("high", h), ("low", l), ("close", c)):
        if not math.isfinite(value):
            return f"{name} {value!r} is not a finite number"
    if math.isinf(v):
        return f"volume {v!r} is not a finite number"
    if v < 0:
        return f"volume {v!r} is negative"
    if h < l:
        return f"high {h!r} < low {l!r}"
    return f"open {o!r}/close {c!r} outside low {l!r}..high {h!r}"


def check_stored_bars(symbol: str, interval: Interval, time_us, open_, high, low, close, volume) -> None:
    """Every read calls this on what it decoded: a stored bar that breaks the OHLC rules is a
    damaged store, never data. Raises StoreDamagedError naming the first such bar."""
    from pocketquant_pipelines.errors import StoreDamagedError

    problems = stored_bar_problems(time_us, open_, high, low, close, volume)
    if not problems:
        return
    row, reason = problems[0]
    more = f" ({len(problems)} bars of this read are damaged)" if len(problems) > 1 else ""
    when = describe_us(int(time_us[row]))
    raise StoreDamagedError(f"stored bar {symbol} {interval.value} {when} breaks the OHLC rules: "
                            f"{reason}{more}; {DOCTOR_HINT}")


def describe_us(us: int) -> str:
    """A stored time for a message; a damaged one may be outside datetime's range."""
    try:
        t = from_us(us)
    except (OverflowError, ValueError):
        return f"(time {us} us since the epoch)"
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{t.microsecond:06d}" if t.microsecond else "") + "Z"
