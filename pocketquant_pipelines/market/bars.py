"""The bar record, its validation and DataFrame conversion.

A bar is keyed by (symbol, interval, time) where ``time`` is the bar's *start* in UTC.
``volume`` is None where the market has no volume (indices such as SP:SPX).
In DataFrames the index is ``time`` (datetime64, UTC), the columns are float64 and a missing
volume is NaN.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from pocketquant_pipelines.errors import InvalidBarError
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.timeutil import from_epoch

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class Bar:
    symbol: str
    interval: Interval
    time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float | None = None

    def __post_init__(self) -> None:
        problem = bar_problem(self.time, self.open, self.high, self.low, self.close, self.volume)
        if problem:
            raise InvalidBarError(f"invalid bar {self.symbol} {self.interval} {self.time!r}: {problem}")

    @property
    def key(self) -> tuple[str, str, datetime]:
        return (self.symbol, self.interval.value, self.time)

    @classmethod
    def from_epoch(
        cls, symbol: str, interval: Interval, t: float, o: float, h: float, l: float, c: float,
        v: float | None,
    ) -> "Bar":
        return cls(symbol, interval, from_epoch(t), o, h, l, c, v)


_new = object.__new__
_set = object.__setattr__


def unchecked_bar(symbol: str, interval: Interval, time: datetime, o: float, h: float, l: float, c: float,
                  v: float | None) -> Bar:
    """A Bar without the per-instance validation, for makers whose values satisfy
    :func:`bar_problem` by construction (the aggregator combines ticks it has checked): equal
    to ``Bar(...)`` of the same values, at a fraction of the cost. Never for outside input."""
    bar = _new(Bar)
    _set(bar, "symbol", symbol)
    _set(bar, "interval", interval)
    _set(bar, "time", time)
    _set(bar, "open", o)
    _set(bar, "high", h)
    _set(bar, "low", l)
    _set(bar, "close", c)
    _set(bar, "volume", v)
    return bar


def bar_problem(time, o, h, l, c, v) -> str | None:
    """Why these values are not a valid bar, or None. Shared by Bar and the storage backends."""
    if not isinstance(time, datetime) or time.tzinfo is None or time.utcoffset() is None:
        return f"time {time!r} must be an aware UTC datetime"
    if time.utcoffset().total_seconds() != 0:
        return f"time {time.isoformat()} must be in UTC"
    for name, value in (("open", o), ("high", h), ("low", l), ("close", c)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return f"{name} {value!r} is not a finite number"
    if v is not None:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            return f"volume {v!r} is not a finite number"
        if v < 0:
            return f"volume {v!r} is negative"
    if h < l:
        return f"high {h!r} < low {l!r}"
    if not (l <= min(o, c) and max(o, c) <= h):
        return f"open {o!r}/close {c!r} outside low {l!r}..high {h!r}"
    return None


def bars_to_frame(bars: Sequence[Bar]) -> pd.DataFrame:
    """Bars of one (symbol, interval) to a DataFrame indexed by UTC start time."""
    frame = pd.DataFrame(
        {
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [math.nan if b.volume is None else b.volume for b in bars],
        },
        index=pd.DatetimeIndex([b.time for b in bars], name="time").tz_convert("UTC")
        if bars
        else pd.DatetimeIndex([], name="time", tz="UTC"),
        dtype="float64",
    )
    return frame


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series([], dtype="float64") for c in OHLCV_COLUMNS},
        index=pd.DatetimeIndex([], name="time", tz="UTC"),
    )


def bars_from_frame(symbol: str, interval: Interval, frame: pd.DataFrame) -> list[Bar]:
    """The inverse of :func:`bars_to_frame`; validates every row (errors name the row)."""
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise InvalidBarError("frame index must be a tz-aware DatetimeIndex (UTC bar start times)")
    out: list[Bar] = []
    cols = [frame[c].to_numpy(dtype="float64") for c in OHLCV_COLUMNS]
    for i, ts in enumerate(index.tz_convert("UTC")):
        v = cols[4][i]
        out.append(
            Bar(symbol, interval, ts.to_pydatetime(), float(cols[0][i]), float(cols[1][i]),
                float(cols[2][i]), float(cols[3][i]), None if math.isnan(v) else float(v))
        )
    return out


def bar_to_dict(bar: Bar) -> dict:
    """JSON-able form used on pub/sub channels, in the live cache and by `--format json`."""
    return {
        "symbol": bar.symbol,
        "interval": bar.interval.value,
        "time": bar.time.isoformat(),
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
    }


def bar_from_dict(data: dict) -> Bar:
    return Bar(
        data["symbol"], Interval.parse(data["interval"]), datetime.fromisoformat(data["time"]),
        float(data["open"]), float(data["high"]), float(data["low"]), float(data["close"]),
        None if data.get("volume") is None else float(data["volume"]),
    )
