"""Streamed vs historical bars of the same keys (no Dagster; the asset check wraps it).

``judge_stream`` is the judgement: plain frames in, a ``Reconciliation`` out, no I/O.
``reconcile`` reads what it needs from a bar store and asks it.

A historical sync overwrites the canonical row of every key it returns, but the store keeps
the stream's own copy (``read_stream_bars``). For keys present in both, with the canonical
row now from history, we compare OHLCV. Stream bars flushed as ``partial`` (not watched from
their start) are expected to differ and are counted apart, not as differences.

Orphans: a stream key that history lacks although history covers its time (between the first
and last bar history wrote) is a bar TradingView never made -- e.g. a week keyed at a holiday
Monday while history starts the week on Tuesday. Comparing shared keys alone would never see
it, and the store would show two bars for one period. Orphans are counted (partial ones
included: a key is wrong whatever the bar's completeness) with a few examples. Stream keys
after history's last bar are not orphans: history has not got there yet.

Deviation is relative: |stream - history| / max(|history|, 1e-12) for prices, and for volume
|Δ| / max(history volume, 1) (volumes are counts; relative to 1 avoids dividing by zero on
empty bars). Floating-point re-summing of per-tick volume leaves ~1e-12 noise, so the default
tolerances are far above it and far below any real error.
"""

from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.storage.bars import BarStore, HistoryCoverage, Source

PRICE_TOLERANCE = 1e-9
VOLUME_TOLERANCE = 1e-6
MAX_ORPHAN_EXAMPLES = 5


@dataclass(frozen=True)
class Reconciliation:
    symbol: str
    interval: str
    stream_bars: int            # stream shadow rows in the window
    compared: int               # complete stream bars whose key history has also written
    differing: int
    partial_skipped: int        # partial stream bars with a history row (not compared)
    worst_price_deviation: float
    worst_volume_deviation: float
    worst_time: str | None      # key of the worst difference
    price_tolerance: float
    volume_tolerance: float
    orphans: int = 0            # stream keys inside history's covered range that history lacks
    orphan_examples: tuple[str, ...] = ()  # the first few of them (ISO)
    history_first: str | None = None       # the range history covers (ISO), None = no history
    history_last: str | None = None

    @property
    def passed(self) -> bool:
        return self.differing == 0 and self.orphans == 0

    def as_dict(self) -> dict:
        return asdict(self)


def reconcile(
    store: BarStore, symbol: str, interval: Interval | str, start: datetime | None = None,
    end: datetime | None = None, price_tolerance: float = PRICE_TOLERANCE,
    volume_tolerance: float = VOLUME_TOLERANCE,
) -> Reconciliation:
    interval = Interval.parse(interval)
    return judge_stream(
        symbol, interval, store.read_stream_bars(symbol, interval, start, end),
        store.read_bars(symbol, interval, start, end), store.history_coverage(symbol, interval),
        price_tolerance=price_tolerance, volume_tolerance=volume_tolerance,
    )


def judge_stream(
    symbol: str, interval: Interval | str, stream: pd.DataFrame, canon: pd.DataFrame,
    covered: HistoryCoverage | None, *, price_tolerance: float = PRICE_TOLERANCE,
    volume_tolerance: float = VOLUME_TOLERANCE,
) -> Reconciliation:
    """``stream``: the stream's own rows of the window (``read_stream_bars``); ``canon``: the
    canonical rows of the same window (``read_bars``); ``covered``: the range history wrote."""
    interval = Interval.parse(interval)
    hist = canon[canon["source"].astype(str) == Source.HISTORY.value] if len(canon) else canon
    orphan_times = pd.DatetimeIndex([], tz="UTC")
    if covered is not None and len(stream):
        inside = (stream.index >= covered.first_time) & (stream.index <= covered.last_time)
        orphan_times = stream.index[inside & ~stream.index.isin(hist.index)]
    both = stream.merge(hist, how="inner", left_index=True, right_index=True, suffixes=("_s", "_h"))
    if len(both) and "partial_s" in both:
        partial_mask = both["partial_s"].astype(bool).to_numpy()
    else:
        partial_mask = np.zeros(len(both), dtype=bool)
    full = both[~partial_mask]
    worst_p = 0.0
    worst_v = 0.0
    worst_time = None
    differing = 0
    if len(full):
        price_dev = np.zeros(len(full))
        for col in ("open", "high", "low", "close"):
            h = full[f"{col}_h"].to_numpy(dtype="float64")
            s = full[f"{col}_s"].to_numpy(dtype="float64")
            price_dev = np.maximum(price_dev, np.abs(s - h) / np.maximum(np.abs(h), 1e-12))
        hv = full["volume_h"].to_numpy(dtype="float64")
        sv = full["volume_s"].to_numpy(dtype="float64")
        both_nan = np.isnan(hv) & np.isnan(sv)
        one_nan = np.isnan(hv) ^ np.isnan(sv)
        vol_dev = np.where(both_nan, 0.0, np.abs(np.nan_to_num(sv) - np.nan_to_num(hv)) / np.maximum(np.nan_to_num(hv), 1.0))
        vol_dev = np.where(one_nan, np.inf, vol_dev)
        bad = (price_dev > price_tolerance) | (vol_dev > volume_tolerance)
        differing = int(bad.sum())
        worst_p = float(price_dev.max())
        worst_v = float(vol_dev.max())
        score = np.maximum(price_dev / price_tolerance, vol_dev / volume_tolerance)
        if differing:
            worst_time = pd.Timestamp(full.index[int(np.argmax(score))]).isoformat()
    return Reconciliation(
        symbol=symbol, interval=interval.value, stream_bars=int(len(stream)), compared=int(len(full)),
        differing=differing, partial_skipped=int(partial_mask.sum()), worst_price_deviation=worst_p,
        worst_volume_deviation=worst_v, worst_time=worst_time, price_tolerance=price_tolerance,
        volume_tolerance=volume_tolerance, orphans=int(len(orphan_times)),
        orphan_examples=tuple(t.isoformat() for t in orphan_times[:MAX_ORPHAN_EXAMPLES]),
        history_first=covered.first_time.isoformat() if covered else None,
        history_last=covered.last_time.isoformat() if covered else None,
    )
