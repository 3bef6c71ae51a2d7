"""Bars of one (symbol, interval) as numpy columns.

The history client decodes a 5000-bar page straight into columns: validating 5000 rows with
numpy costs about what building 500 ``Bar`` objects does, and the bar store writes columns
anyway. ``Bar`` objects are made only when someone asks for them (:meth:`BarColumns.to_bars`).

Invariants (checked by :func:`columns_problem`, guaranteed by every constructor here):
ascending start times in epoch seconds (UTC), unique to the microsecond (the key), within datetime's range, finite prices
with ``low <= open, close <= high``, volume finite and >= 0 or NaN for "no volume" — exactly
the rules of :func:`market.bars.bar_problem`, so :meth:`to_bars` can skip re-validating.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from pocketquant_pipelines.errors import InvalidBarError
from pocketquant_pipelines.market.bars import OHLCV_COLUMNS, Bar, unchecked_bar
from pocketquant_pipelines.market.intervals import Interval

# datetime's own range (years 1..9999): a start time outside it cannot become a Bar
MIN_EPOCH = datetime(1, 1, 2, tzinfo=UTC).timestamp()
MAX_EPOCH = datetime(9999, 12, 30, tzinfo=UTC).timestamp()

_fromtimestamp = datetime.fromtimestamp


def trusted_bar(symbol: str, interval: Interval, t: float, o: float, h: float, l: float, c: float,
                v: float | None) -> Bar:
    """A Bar from epoch seconds and values the caller has already checked by the rules of
    ``bar_problem``: skips the per-instance re-validation, which costs more than decoding the
    values did."""
    return unchecked_bar(symbol, interval, _fromtimestamp(t, UTC), o, h, l, c, v)


def first_per_key(time: np.ndarray) -> np.ndarray | None:
    """For ascending ``time``: a mask keeping the first row of each microsecond (a bar's key is
    its start to the microsecond), or None when every row already has a key of its own."""
    if len(time) < 2:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        us = np.rint(time * 1e6)
    # only a finite key can be shared: times too large for one are invalid rows, each rejected
    fresh = ~((us[1:] == us[:-1]) & np.isfinite(us[1:]))
    if fresh.all():
        return None
    return np.concatenate(([True], fresh))


def valid_rows(t: np.ndarray, o: np.ndarray, h: np.ndarray, l: np.ndarray, c: np.ndarray,
               v: np.ndarray) -> np.ndarray:
    """Row mask of ``bar_problem``'s rules, vectorised (NaN volume = no volume is valid)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return (
            np.isfinite(o) & np.isfinite(h) & np.isfinite(l) & np.isfinite(c)
            & (l <= o) & (o <= h) & (l <= c) & (c <= h)
            & (t >= MIN_EPOCH) & (t <= MAX_EPOCH)
            & ~(v < 0) & ~np.isinf(v)
        )


@dataclass(frozen=True, slots=True, eq=False)
class BarColumns:
    """Validated bars of one series; see the module docstring for the invariants."""

    symbol: str
    interval: Interval
    time: np.ndarray    # float64 epoch seconds of each bar's start (UTC)
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray  # NaN = no volume

    def __len__(self) -> int:
        return len(self.time)

    @property
    def time_us(self) -> np.ndarray:
        """int64 epoch microseconds of each start: the bar's key in every store."""
        return np.rint(self.time * 1e6).astype(np.int64)

    @classmethod
    def empty(cls, symbol: str, interval: Interval) -> BarColumns:
        z = np.empty(0, dtype=np.float64)
        return cls(symbol, interval, z, z, z, z, z, z)

    @classmethod
    def from_arrays(cls, symbol: str, interval: Interval, time, open_, high, low, close,
                    volume) -> BarColumns:
        """Checked construction: sorts by time, keeps the first of rows whose start times are
        the same to the microsecond (one key), and rejects anything ``bar_problem`` would,
        naming the first bad row."""
        cols = [np.asarray(x, dtype=np.float64) for x in (time, open_, high, low, close, volume)]
        order = np.argsort(cols[0], kind="stable")
        cols = [x[order] for x in cols]
        first = first_per_key(cols[0])
        if first is not None:
            cols = [x[first] for x in cols]
        made = cls(symbol, interval, *cols)
        problem = columns_problem(made)
        if problem:
            raise InvalidBarError(f"invalid bars {symbol} {interval}: {problem}")
        return made

    @classmethod
    def from_bars(cls, symbol: str, interval: Interval, bars: Sequence[Bar]) -> BarColumns:
        """Columns of Bars that are already valid (each Bar validated itself), ascending."""
        n = len(bars)
        return cls.from_arrays(
            symbol, interval,
            np.fromiter((b.time.timestamp() for b in bars), np.float64, n),
            *(np.fromiter((getattr(b, f) for b in bars), np.float64, n) for f in ("open", "high", "low", "close")),
            np.fromiter((math.nan if b.volume is None else b.volume for b in bars), np.float64, n),
        )

    def to_bars(self) -> list[Bar]:
        symbol, interval = self.symbol, self.interval
        return [
            trusted_bar(symbol, interval, t, o, h, l, c, None if v != v else v)  # v != v: NaN
            for t, o, h, l, c, v in zip(self.time.tolist(), self.open.tolist(), self.high.tolist(),
                                         self.low.tolist(), self.close.tolist(), self.volume.tolist())
        ]

    def to_frame(self) -> pd.DataFrame:
        """The ``bars_to_frame`` shape: index ``time`` (UTC), float64 OHLCV, NaN = no volume."""
        us = self.time_us.view("datetime64[us]")
        index = pd.DatetimeIndex(us, name="time").tz_localize("UTC")
        return pd.DataFrame(dict(zip(OHLCV_COLUMNS, (self.open, self.high, self.low, self.close, self.volume))),
                            index=index, dtype="float64")


def columns_problem(cols: BarColumns) -> str | None:
    """Why these columns break the invariants, naming the first bad row; None if they hold."""
    n = len(cols.time)
    if any(len(x) != n for x in (cols.open, cols.high, cols.low, cols.close, cols.volume)):
        return "columns have different lengths"
    ok = valid_rows(cols.time, cols.open, cols.high, cols.low, cols.close, cols.volume)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        row = [float(x[i]) for x in (cols.time, cols.open, cols.high, cols.low, cols.close, cols.volume)]
        return f"row {i} (time, open, high, low, close, volume) = {row} breaks the bar rules"
    steps = np.diff(np.rint(cols.time * 1e6))
    if n > 1 and not (steps > 0).all():
        i = int(np.flatnonzero(steps <= 0)[0]) + 1
        return f"row {i} time {float(cols.time[i])!r} repeats or goes back in time"
    return None
