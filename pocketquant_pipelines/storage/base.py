"""The two storage roles: ``BarStore`` (durable) and ``LiveCache`` (fast, ephemeral).

Every backend passes tests/storage/test_conformance.py unchanged. Backends may be opened by
several processes at once (Dagster runs, the streamer, the CLI).
"""

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

import pandas as pd

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


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """A registry entry. Metadata fields come from TradingView's ``symbol_resolved``."""

    symbol: str                      # canonical EXCHANGE:CODE
    name: str | None = None
    description: str | None = None
    type: str | None = None          # "stock", "crypto", "index", "futures", ...
    currency: str | None = None
    timezone: str | None = None      # IANA; None until the first sync resolves it
    session: str | None = None       # TradingView session string, e.g. "0930-1600", "24x7"
    pricescale: int | None = None
    stream: bool = False             # the streamer subscribes to it
    added_at: datetime | None = None
    updated_at: datetime | None = None
    extra: Mapping[str, object] = field(default_factory=dict)  # JSON-able leftovers
    # The exchange calendar, JSON-able (see market.calendar for the meaning of each key):
    # {"holidays": ["YYYYMMDD", ...], "corrections": "SESSION:YYYYMMDD,...;...",
    #  "resolved_at": ISO-8601 UTC of the symbol_resolved it came from,
    #  "history": {"first": "YYYYMMDD", "last": "YYYYMMDD", "closed": [...], "open": [...]}}
    # Empty until symbol_resolved (or synced daily history) says something.
    calendar: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IngestEntry:
    """One write batch for one (symbol, interval, source): what a sensor needs to react to."""

    seq: int
    symbol: str
    interval: Interval
    source: Source
    first_time: datetime  # earliest bar start in the batch
    last_time: datetime   # latest bar start in the batch
    count: int            # bars inserted or updated (unchanged bars are not logged)
    written_at: datetime


@dataclass(frozen=True, slots=True)
class IngestPage:
    entries: list[IngestEntry]
    cursor: str  # pass back to ingest_since to continue; opaque, monotonic


class BarStore(ABC):
    """Durable bars keyed by (symbol, interval, start time), plus registry and ingest log.

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

    # --- bars -------------------------------------------------------------------------------
    @abstractmethod
    def upsert_bars(
        self, bars: Sequence[Bar] | BarColumns, source: Source = Source.HISTORY, partial: bool = False
    ) -> UpsertResult:
        """Idempotent batch upsert; atomic per call; appends one IngestEntry per
        (symbol, interval) that had inserts or updates. ``bars`` is a list of Bars (any mix
        of series) or one series' validated :class:`BarColumns` (what a history fetch returns).
        Keys whose row outranks the write (see the class docstring) are counted ``refused``.
        ``partial=True`` is for stream writes only (InvalidInputError with source=HISTORY)."""

    @abstractmethod
    def read_bars(
        self, symbol: str, interval: Interval | str, start: datetime | None = None,
        end: datetime | None = None, limit: int | None = None,
    ) -> pd.DataFrame:
        """Canonical bars with start in [start, end), ascending. ``limit`` keeps the *latest*
        N of that range. Index ``time`` (UTC), float64 open/high/low/close/volume (NaN = no
        volume), plus columns ``source`` (str) and ``partial`` (bool)."""

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

    # --- ingest cursor ----------------------------------------------------------------------
    @abstractmethod
    def ingest_since(self, cursor: str | None, limit: int = 1000,
                     source: Source | None = None) -> IngestPage:
        """Entries written after ``cursor`` (None = from the beginning), oldest first."""

    @abstractmethod
    def latest_ingest_cursor(self) -> str:
        """Cursor of the newest entry (a sensor starting fresh may skip history with it)."""

    # --- symbol registry --------------------------------------------------------------------
    @abstractmethod
    def add_symbol(self, info: SymbolInfo) -> bool:
        """Insert; returns False (and changes nothing) when the symbol is already registered."""

    @abstractmethod
    def get_symbol(self, symbol: str) -> SymbolInfo | None: ...

    @abstractmethod
    def list_symbols(self, stream_only: bool = False) -> list[SymbolInfo]: ...

    @abstractmethod
    def update_symbol(self, symbol: str, **fields: object) -> SymbolInfo:
        """Update the given SymbolInfo fields; UnknownSymbolError if not registered."""

    @abstractmethod
    def remove_symbol(self, symbol: str) -> bool: ...

    # --- lifecycle --------------------------------------------------------------------------
    @abstractmethod
    def ping(self) -> bool: ...

    def close(self) -> None:  # noqa: B027 - optional for backends
        pass

    def __enter__(self) -> "BarStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class LiveMessage:
    channel: str
    data: dict


class Subscription(ABC):
    @abstractmethod
    def get(self, timeout: float | None = None) -> LiveMessage | None:
        """Next message, or None after ``timeout`` seconds."""

    @abstractmethod
    def close(self) -> None: ...

    def __iter__(self) -> Iterator[LiveMessage]:
        while True:
            msg = self.get(timeout=1.0)
            if msg is not None:
                yield msg

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


QUOTE_TTL_S = 60
CURRENT_BAR_TTL_S = 300


def quote_channel(symbol: str) -> str:
    return f"pq:quotes:{symbol}"


def bar_channel(symbol: str, interval: Interval | str) -> str:
    return f"pq:bars:{symbol}:{Interval.parse(interval).value}"


QUOTES_PATTERN = "pq:quotes:*"
BARS_PATTERN = "pq:bars:*"


class LiveCache(ABC):
    """Latest quote per symbol (TTL 60 s), in-progress bar per (symbol, interval) (TTL 300 s),
    and pub/sub of quotes and completed bars. Quote dicts are Tick.to_dict()-shaped JSON."""

    @abstractmethod
    def set_quote(self, symbol: str, quote: Mapping[str, object], ttl_s: float = QUOTE_TTL_S) -> None: ...

    @abstractmethod
    def get_quote(self, symbol: str) -> dict | None: ...

    @abstractmethod
    def all_quotes(self) -> dict[str, dict]: ...

    @abstractmethod
    def set_current_bars(self, symbol: str, bars: Sequence[Bar],
                         ttl_s: float = CURRENT_BAR_TTL_S) -> None:
        """Write several in-progress bars of one symbol in one round trip."""

    @abstractmethod
    def get_current_bars(self, symbol: str) -> dict[Interval, Bar]: ...

    @abstractmethod
    def publish(self, channel: str, data: Mapping[str, object]) -> None: ...

    @abstractmethod
    def subscribe(self, *patterns: str) -> Subscription:
        """Glob patterns, e.g. QUOTES_PATTERN or quote_channel("NASDAQ:AAPL")."""

    def write_batch(
        self,
        quotes: Mapping[str, Mapping[str, object]] | None = None,
        current_bars: Mapping[str, Sequence[Bar]] | None = None,
        messages: Sequence[tuple[str, Mapping[str, object]]] = (),
        quote_ttl_s: float = QUOTE_TTL_S,
        bar_ttl_s: float = CURRENT_BAR_TTL_S,
    ) -> None:
        """Quotes (symbol -> quote), in-progress bars (symbol -> bars) and then messages
        ((channel, data), published in order), in as few round trips as the backend allows
        (one pipeline on Redis, one transaction embedded). Values are written before messages
        go out, so a subscriber that reacts to a message reads the new state."""
        for symbol, quote in (quotes or {}).items():
            self.set_quote(symbol, quote, quote_ttl_s)
        for symbol, bars in (current_bars or {}).items():
            self.set_current_bars(symbol, bars, bar_ttl_s)
        for channel, data in messages:
            self.publish(channel, data)

    @abstractmethod
    def ping(self) -> bool: ...

    def close(self) -> None:  # noqa: B027
        pass
