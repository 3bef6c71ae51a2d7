"""Ticks -> bars at many intervals at once (CONTRACT — helper A implements).

One ``BarAggregator`` per symbol. It keeps the in-progress bar of each interval, closes a bar
when a tick of a later bucket arrives (or ``close_due`` finds its end passed), drops and counts
late ticks, and never does I/O.
"""

from collections.abc import Iterable
from datetime import datetime

from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval
from pocketquant_pipelines.market.sessions import SESSION_24X7, Session
from pocketquant_pipelines.market.ticks import Tick


class BarAggregator:
    def __init__(
        self, symbol: str, session: Session = SESSION_24X7,
        intervals: Iterable[Interval] = ALL_INTERVALS,
    ) -> None:
        raise NotImplementedError

    late_ticks: int            # ticks older than the current bar of the finest interval, dropped
    out_of_session_ticks: int  # ticks outside every session, dropped

    def on_tick(self, tick: Tick) -> list[Bar]:
        """Apply one tick; return the bars it completed (oldest first)."""
        raise NotImplementedError

    def close_due(self, now: datetime) -> list[Bar]:
        """Close and return in-progress bars whose end is <= now (quiet symbols still close)."""
        raise NotImplementedError

    def current_bars(self) -> dict[Interval, Bar]:
        """In-progress bar per interval (only intervals that have seen a tick)."""
        raise NotImplementedError

    def flush(self) -> list[Bar]:
        """Return every in-progress bar and forget them (shutdown: stored as partial)."""
        raise NotImplementedError
