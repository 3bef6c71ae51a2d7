"""Re-aggregating logged ticks, and comparing the result with the bars the stream stored.

The rebuild feeds the same aggregator the streamer runs with the ticks it accepted, in the
order it received them, one streamer run (writer) at a time: each run started with a fresh
aggregator, so its first bars were not watched from their start and are partial, as the
streamer marked them (a bar starting at or before the run's first tick). What a run still held
when it ended is flushed, as the streamer flushes at shutdown (partial too).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pocketquant_pipelines.market.aggregator import BarAggregator
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval
from pocketquant_pipelines.market.sessions import Session

PRICE_RTOL = 1e-9


@dataclass(frozen=True, slots=True)
class RebuiltBar:
    bar: Bar
    partial: bool
    in_progress: bool   # still open when the run's log ended (the streamer flushed it at stop)


def rebuild(symbol: str, session: Session,
            runs: Iterable[Sequence[tuple[float, float, float | None]]],
            intervals: Iterable[Interval] = ALL_INTERVALS) -> list[RebuiltBar]:
    """Bars from ``runs``: per streamer run, its accepted ticks as (epoch, price, volume)."""
    out: list[RebuiltBar] = []
    for ticks in runs:
        if not ticks:
            continue
        aggregator = BarAggregator(symbol, session, intervals)
        anchor = ticks[0][0]
        for t, price, volume in ticks:
            for bar in aggregator.on_tick_values(t, price, volume):
                out.append(RebuiltBar(bar, bar.time.timestamp() <= anchor, False))
        for bar in aggregator.flush():
            out.append(RebuiltBar(bar, True, True))
    return out


@dataclass(frozen=True, slots=True)
class Difference:
    interval: Interval
    time: datetime
    what: str        # "values", "missing_from_store", "missing_from_rebuild"
    detail: str


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= PRICE_RTOL * max(1.0, abs(a), abs(b))


def compare(rebuilt: Iterable[RebuiltBar], stored: dict[tuple[Interval, datetime], tuple],
            start: datetime, end: datetime) -> list[Difference]:
    """Differences between rebuilt bars and ``stored`` ((interval, time) -> (open, high, low,
    close, volume)) for bars starting in [start, end). A rebuilt bar still in progress when the
    log ends is compared only if the store has it (the streamer may still be running)."""
    diffs = []
    mine: dict[tuple[Interval, datetime], RebuiltBar] = {}
    for r in rebuilt:
        if start <= r.bar.time < end:
            mine[(r.bar.interval, r.bar.time)] = r  # a later run's bar under the same key wins
    for key, r in sorted(mine.items(), key=lambda kv: (kv[0][1], ALL_INTERVALS.index(kv[0][0]))):
        b = r.bar
        theirs = stored.get(key)
        if theirs is None:
            if not r.in_progress:
                diffs.append(Difference(b.interval, b.time, "missing_from_store",
                                        f"rebuilt O {b.open} H {b.high} L {b.low} C {b.close} V {b.volume}"))
            continue
        values = (b.open, b.high, b.low, b.close, b.volume)
        if not all(_close(x, y) for x, y in zip(values, theirs, strict=True)):
            diffs.append(Difference(b.interval, b.time, "values",
                                    f"stored {tuple(theirs)} rebuilt {values}"))
    for key in sorted(set(stored) - set(mine), key=lambda k: (k[1], ALL_INTERVALS.index(k[0]))):
        if start <= key[1] < end:
            diffs.append(Difference(key[0], key[1], "missing_from_rebuild",
                                    "the store has a stream bar no logged tick explains"))
    return diffs
