"""The bar store role: durable bars keyed by (symbol, interval, start time).

Each stored bar also records its ``source``, ``written_at`` and whether it was ``partial``
(an in-progress bar flushed at streamer shutdown; only the stream writes partial bars).

Precedence -- which write may replace the canonical row of a key that already exists:

* a history write replaces anything (TradingView's own bars are the final word);
* a stream write never replaces a row history wrote;
* a partial stream write never replaces a complete stream row;
* a complete stream write replaces any stream row, and a partial one replaces a partial
  one (the later flush ends later in the bar: its close is the newer price).

A write that loses is counted ``refused``, writes nothing and logs nothing. Bars written
with source=STREAM are also kept in a separate stream shadow copy (the same precedence
among stream rows), whatever the canonical row says, so the reconciliation check can
compare what the stream said with what history wrote for the same key.

Beside the bars, each series has a history coverage record (first and last bar start
history wrote, how many keys, where the server said history begins), kept with the
history writes, so the sync planner can tell a first sync from an incremental one
without reading bars, and without mistaking stream bars for history.
"""

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

import pandas as pd
import pyarrow as pa

from pocketquant_pipelines.market.bar_columns import BarColumns
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import Interval


class Source(str, Enum):
    HISTORY = "history"  # written by a historical sync (TradingView chart session)
    STREAM = "stream"    # written by the streamer from live ticks

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class UpsertResult:
    inserted: int = 0
    updated: int = 0    # key existed, values differed and were overwritten
    unchanged: int = 0  # key existed with identical values (and flags)
    refused: int = 0    # key held a row that outranks the write (see BarStore): nothing written

    @property
    def written(self) -> int:
        return self.inserted + self.updated

    def __add__(self, other: "UpsertResult") -> "UpsertResult":
        return UpsertResult(self.inserted + other.inserted, self.updated + other.updated,
                            self.unchanged + other.unchanged, self.refused + other.refused)


@dataclass(frozen=True, slots=True)
class HistoryCoverage:
    """What history has written of one series: the keys whose canonical row a historical sync
    wrote (a history row is never replaced by the stream, so these only grow)."""

    first_time: datetime            # earliest bar start history wrote
    last_time: datetime             # latest bar start history wrote
    bars: int                       # keys whose canonical row is history's
    # The server said the series' history begins here (a fetch ran out of bars before the
    # count asked for); None until a fetch has said so.
    history_start: datetime | None = None


class BarStore(Protocol):
    """Bars, their stream shadow copy and the history coverage of each series (see the module
    docstring for the precedence rule every backend applies)."""

    @abstractmethod
    def upsert_bars(
        self, bars: Sequence[Bar] | BarColumns, source: Source = Source.HISTORY, partial: bool = False
    ) -> UpsertResult:
        """Idempotent batch upsert; atomic per call; appends one ingest entry per
        (symbol, interval) that had inserts or updates. ``bars`` is a list of Bars (any mix
        of series) or one series' validated :class:`BarColumns` (what a history fetch returns).
        Keys whose row outranks the write are counted ``refused``. ``partial=True`` is for
        stream writes only (InvalidInputError with source=HISTORY)."""

    @abstractmethod
    def read_bars_table(
        self, symbol: str, interval: Interval | str, start: datetime | None = None,
        end: datetime | None = None, limit: int | None = None,
    ) -> pa.Table:
        """Canonical bars with start in [start, end), ascending, as an Arrow table in
        ``frames.BARS_SCHEMA`` (the Parquet dataset's schema). ``limit`` keeps the *latest*
        N of that range."""

    def read_bars(
        self, symbol: str, interval: Interval | str, start: datetime | None = None,
        end: datetime | None = None, limit: int | None = None,
    ) -> pd.DataFrame:
        """:meth:`read_bars_table` as pandas: index ``time`` (UTC), float64
        open/high/low/close/volume (NaN = no volume), plus columns ``source`` (str) and
        ``partial`` (bool)."""
        from pocketquant_pipelines.storage.frames import table_to_frame  # frames imports this module

        return table_to_frame(self.read_bars_table(symbol, interval, start, end, limit))

    @abstractmethod
    def read_stream_bars(
        self, symbol: str, interval: Interval | str, start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """The stream shadow copy, same frame shape as read_bars (for reconciliation)."""

    @abstractmethod
    def last_bar_time(self, symbol: str, interval: Interval | str) -> datetime | None:
        """Start of the latest stored canonical bar (any source)."""

    @abstractmethod
    def history_coverage(
        self, symbol: str, interval: Interval | str, start: datetime | None = None,
        end: datetime | None = None,
    ) -> HistoryCoverage | None:
        """What history has written of the series, counting only keys with start in
        [start, end); None when history has written none there (a series only the stream
        wrote has no coverage). Without a range, or when the whole record lies inside it,
        one record lookup; otherwise computed from the bars of the range (a store holding
        implausible keys, e.g. dated in the year 3000, asked for the plausible ones)."""

    @abstractmethod
    def record_history_start(self, symbol: str, interval: Interval | str,
                             first_time: datetime) -> bool:
        """Note that the server said the series' history begins at ``first_time`` (a fetch
        ran out of bars before the count it asked for). Kept in the coverage record, so a
        series short because its market is young is not taken for a shallow sync. The
        latest statement wins. False (nothing recorded) when history has written no bar of
        the series yet."""

    @abstractmethod
    def count_bars(self, symbol: str, interval: Interval | str) -> int: ...

    @abstractmethod
    def bar_stats(self) -> list[dict]:
        """One dict per (symbol, interval) with stored bars: symbol, interval, count,
        first_time, last_time (for `pocketquant status`)."""

    @abstractmethod
    def delete_bars(self, symbol: str, interval: Interval | str | None = None) -> int: ...
