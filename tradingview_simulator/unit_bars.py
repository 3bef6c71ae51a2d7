"""Bars in integer units while they are being aggregated, and their hand-over as BarColumns.

Prices are integers in units of ``1/pricescale`` (so OHLC are pure selections) and volumes
integers in units of ``volume_unit``, a power of two: every sum of tick volumes is exact in
float64 in any order, so the aggregator's running sum, the client's cumulative-volume
differences and numpy's pairwise sums agree exactly. Aggregation works on an ``(n, 6)`` int64
matrix of rows ``time, open, high, low, close, volume``; what leaves the model is the market
core's :class:`BarColumns` (prices ``units / pricescale``, volume NaN for no-volume symbols).
"""

from __future__ import annotations

import numpy as np

from pocketquant_pipelines.market.bar_columns import BarColumns
from pocketquant_pipelines.market.intervals import Interval
from tradingview_simulator.symbol_specs import SymbolSpec

__all__ = ["C", "H", "L", "O", "T", "V", "columns_of", "concat_rows", "empty_rows", "group_rows", "take"]

T, O, H, L, C, V = range(6)  # noqa: E741 - the columns of a row matrix


def empty_rows() -> np.ndarray:
    return np.empty((0, 6), dtype=np.int64)


def concat_rows(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return empty_rows()
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts)


def group_rows(times: np.ndarray, o, h, l, c, vol, keys: np.ndarray) -> np.ndarray:  # noqa: E741
    """Group consecutive rows with equal ``keys`` into bars stamped with the key."""
    n = keys.shape[0]
    if n == 0:
        return empty_rows()
    first = np.concatenate(([0], np.flatnonzero(np.diff(keys)) + 1))
    last = np.append(first[1:], n) - 1
    return np.column_stack((
        keys[first].astype(np.int64),
        o[first],
        np.maximum.reduceat(h, first),
        np.minimum.reduceat(l, first),
        c[last],
        np.add.reduceat(vol, first),
    ))


def columns_of(spec: SymbolSpec, interval: Interval, rows: np.ndarray) -> BarColumns:
    """The rows as the market core's bar columns. Valid by construction (ascending unique
    starts, low <= open, close <= high), so the checked constructor is not needed."""
    ps = spec.pricescale
    volume = rows[:, V] * spec.volume_unit if spec.has_volume else np.full(rows.shape[0], np.nan)
    return BarColumns(spec.symbol, interval, rows[:, T].astype(np.float64), rows[:, O] / ps,
                      rows[:, H] / ps, rows[:, L] / ps, rows[:, C] / ps, volume.astype(np.float64))


def take(bars: BarColumns, index) -> BarColumns:
    """The bars at ``index`` (a slice, mask or index array)."""
    return BarColumns(bars.symbol, bars.interval, bars.time[index], bars.open[index], bars.high[index],
                      bars.low[index], bars.close[index], bars.volume[index])
