"""The Python API for strategies and notebooks: bars, quotes, live subscriptions, symbols.

    from pocketquant_pipelines import api

    df = api.bars("NASDAQ:AAPL", "1d", start="2024-01-01")       # pandas, UTC index
    table = api.bars_arrow("BINANCE:BTCUSDT", "1m")               # the same as an Arrow table
    q = api.latest_quote("BINANCE:BTCUSDT")                       # Quote(price=..., age_s=...)
    for bar in api.subscribe_bars(["BINANCE:BTCUSDT"], ["1m"]):   # completed bars, blocking
        ...
    async for quote in api.asubscribe_quotes(["BINANCE:BTCUSDT"]):
        ...

Everything works on whatever the settings configure (the environment and ``.env``: embedded
files by default, MongoDB and Redis when ``MONGODB_URL`` / ``REDIS_URL`` are set). The
module-level functions share one :class:`PocketQuant` opened on first use; open your own
``PocketQuant(settings)`` to choose settings explicitly or to close the connections. Errors are
the project's own (``pocketquant_pipelines.errors``): bad symbols, intervals and ranges raise
``InvalidInputError`` with a one-line message, unreachable servers ``StoreUnavailableError``, damaged data ``StoreDamagedError``.
"""

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.market.bars import Bar, bar_from_dict
from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval
from pocketquant_pipelines.market.symbols import normalize_symbol
from pocketquant_pipelines.settings import Settings, load_settings

__all__ = [
    "CurrentBars", "PocketQuant", "Quote", "asubscribe_bars", "asubscribe_quotes", "bars",
    "bars_arrow", "current_bars", "latest_quote", "subscribe_bars", "subscribe_quotes", "symbols",
]


@dataclass(frozen=True, slots=True)
class Quote:
    """The latest quote of a symbol, as the streamer received it."""

    symbol: str
    price: float | None
    time: datetime | None           # the exchange's time of the last trade (UTC)
    volume: float | None            # volume of this update
    bid: float | None
    ask: float | None
    cumulative_volume: float | None  # the session's volume so far, as TradingView reports it
    received_at: datetime | None    # when the streamer received it (UTC)

    @property
    def age_s(self) -> float | None:
        """Seconds since the streamer received it (None when the stamp is missing)."""
        if self.received_at is None:
            return None
        return max(0.0, time.time() - self.received_at.timestamp())

    @classmethod
    def from_payload(cls, data: dict) -> "Quote":
        received = data.get("received_at")
        stamp = data.get("time")
        return cls(
            symbol=str(data.get("symbol")), price=_float(data.get("price")),
            time=datetime.fromisoformat(stamp) if isinstance(stamp, str) else None,
            volume=_float(data.get("volume")), bid=_float(data.get("bid")), ask=_float(data.get("ask")),
            cumulative_volume=_float(data.get("cumulative_volume")),
            received_at=datetime.fromtimestamp(received, UTC) if isinstance(received, int | float) else None,
        )


@dataclass(frozen=True, slots=True)
class CurrentBars:
    """The bars still in progress (partial until they close), one per interval, with the age
    of the quote that last updated them."""

    symbol: str
    bars: dict[str, Bar]            # interval ("1m", "1h", ...) -> in-progress bar
    as_of: datetime | None          # receipt time of the latest quote (None: no quote cached)

    @property
    def age_s(self) -> float | None:
        if self.as_of is None:
            return None
        return max(0.0, time.time() - self.as_of.timestamp())


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _time(value: datetime | str | None, what: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value
    try:
        parsed = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise InvalidInputError(f"{what}={value!r} is not a date/time (ISO 8601, UTC unless an offset)") from None
    return (parsed.tz_localize(UTC) if parsed.tzinfo is None else parsed.tz_convert(UTC)).to_pydatetime()


def _intervals(intervals: Iterable[str | Interval] | None) -> list[Interval]:
    if intervals is None:
        return list(ALL_INTERVALS)
    if isinstance(intervals, str | Interval):
        intervals = [intervals]
    return [Interval.parse(i) for i in intervals]


def _symbols(symbols: Iterable[str] | str) -> list[str]:
    if isinstance(symbols, str):
        symbols = [symbols]
    out = [normalize_symbol(s) for s in symbols]
    if not out:
        raise InvalidInputError("no symbols given: pass at least one EXCHANGE:CODE")
    return out


class PocketQuant:
    """A handle on the bar store and the live cache the settings configure."""

    def __init__(self, settings: Settings | None = None, *, store=None, cache=None):
        """``store``/``cache``: already open connections to use (closed by :meth:`close`);
        by default they open from the settings on first use."""
        self.settings = settings if settings is not None else load_settings()
        self._store = store
        self._cache = cache
        self._lock = threading.Lock()

    # ---- connections (opened on first use) ----
    @property
    def store(self):
        from pocketquant_pipelines.storage.factory import open_bar_store

        return self._opened("_store", open_bar_store)

    @property
    def cache(self):
        from pocketquant_pipelines.storage.factory import open_live_cache

        return self._opened("_cache", open_live_cache)

    def _opened(self, attribute: str, opener):
        with self._lock:
            if getattr(self, attribute) is None:
                setattr(self, attribute, opener(self.settings))
            return getattr(self, attribute)

    def close(self) -> None:
        with self._lock:
            for conn in (self._store, self._cache):
                if conn is not None:
                    conn.close()
            self._store = self._cache = None

    def __enter__(self) -> "PocketQuant":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- stored bars ----
    def bars(self, symbol: str, interval: str | Interval, start: datetime | str | None = None,
             end: datetime | str | None = None, limit: int | None = None) -> pd.DataFrame:
        """Stored bars with start in [start, end), ascending; ``limit`` keeps the latest N.

        Index ``time`` (UTC); columns open/high/low/close/volume (float64, NaN = no volume),
        ``source`` ("history" or "stream") and ``partial`` (True for a bar the stream wrote
        before it closed)."""
        symbol, interval = normalize_symbol(symbol), Interval.parse(interval)
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise InvalidInputError(f"limit={limit!r}: expected a positive integer")
        return self.store.read_bars(symbol, interval, _time(start, "start"), _time(end, "end"), limit)

    def bars_arrow(self, symbol: str, interval: str | Interval, start: datetime | str | None = None,
                   end: datetime | str | None = None, limit: int | None = None) -> pa.Table:
        """The same bars as :meth:`bars`, as an Arrow table (``time`` a UTC timestamp column)."""
        frame = self.bars(symbol, interval, start, end, limit)
        return pa.Table.from_pandas(frame.reset_index(), preserve_index=False)

    def symbols(self, search: str | None = None, streamed: bool | None = None) -> list:
        """Registered symbols with their metadata (``SymbolInfo``); ``search`` matches the code,
        name or description (case-insensitive); ``streamed`` keeps only streamed (True) or
        not streamed (False) ones."""
        infos = self.store.list_symbols()
        if streamed is not None:
            infos = [i for i in infos if i.stream == streamed]
        if search:
            needle = search.casefold()
            infos = [i for i in infos if any(needle in (v or "").casefold()
                                             for v in (i.symbol, i.name, i.description))]
        return infos

    # ---- the live cache ----
    def latest_quote(self, symbol: str) -> Quote | None:
        """The latest cached quote (None when the symbol is not streamed or its quote expired)."""
        data = self.cache.get_quote(normalize_symbol(symbol))
        return Quote.from_payload(data) if data is not None else None

    def current_bars(self, symbol: str) -> CurrentBars:
        """The in-progress bar of each interval the streamer holds for ``symbol``."""
        symbol = normalize_symbol(symbol)
        bars = self.cache.get_current_bars(symbol)
        quote = self.latest_quote(symbol)
        ordered = {i.value: bars[i] for i in ALL_INTERVALS if i in bars}
        return CurrentBars(symbol, ordered, quote.received_at if quote else None)

    # ---- live subscriptions ----
    def _patterns(self, kind: str, symbols: list[str], intervals: list[Interval]) -> list[str]:
        from pocketquant_pipelines.storage.live import bar_channel, quote_channel

        if kind == "quote":
            return [quote_channel(s) for s in symbols]
        return [bar_channel(s, i) for s in symbols for i in intervals]

    def _iterate(self, patterns: list[str], decode, timeout: float | None,
                 limit: int | None) -> Iterator:
        for message in follow(self.cache, patterns, timeout, limit):
            yield decode(message.data)

    def subscribe_quotes(self, symbols: Iterable[str] | str, timeout: float | None = None,
                         limit: int | None = None) -> Iterator[Quote]:
        """Quotes as the streamer publishes them (blocking iterator). Stops after ``limit``
        quotes, or after ``timeout`` seconds without one; otherwise runs until closed."""
        return self._iterate(self._patterns("quote", _symbols(symbols), []), Quote.from_payload,
                             timeout, limit)

    def subscribe_bars(self, symbols: Iterable[str] | str, intervals: Iterable[str] | str | None = None,
                       timeout: float | None = None, limit: int | None = None) -> Iterator[Bar]:
        """Completed bars as the streamer publishes them (blocking iterator), at ``intervals``
        (default all 13)."""
        return self._iterate(self._patterns("bar", _symbols(symbols), _intervals(intervals)),
                             bar_from_dict, timeout, limit)

    async def asubscribe_quotes(self, symbols: Iterable[str] | str, timeout: float | None = None,
                                limit: int | None = None) -> AsyncIterator[Quote]:
        """:meth:`subscribe_quotes` as an async iterator (the wait runs off the event loop)."""
        async for item in _in_thread(self.subscribe_quotes(symbols, timeout, limit)):
            yield item

    async def asubscribe_bars(self, symbols: Iterable[str] | str, intervals: Iterable[str] | str | None = None,
                              timeout: float | None = None, limit: int | None = None) -> AsyncIterator[Bar]:
        """:meth:`subscribe_bars` as an async iterator (the wait runs off the event loop)."""
        async for item in _in_thread(self.subscribe_bars(symbols, intervals, timeout, limit)):
            yield item


def follow(cache, patterns: list[str], timeout: float | None = None, limit: int | None = None,
           on_subscribed=None) -> Iterator:
    """Messages published on ``patterns`` (LiveMessage: channel, data), as they come: at most
    ``limit`` of them, ending after ``timeout`` seconds without one (None: no end).
    ``on_subscribed()`` runs once the subscription is in place (nothing published after it is
    missed)."""
    seen = 0
    with cache.subscribe(*patterns) as sub:
        if on_subscribed is not None:
            on_subscribed()
        while limit is None or seen < limit:
            msg = sub.get(timeout=timeout if timeout is not None else 1.0)
            if msg is None:
                if timeout is not None:
                    return
                continue
            seen += 1
            yield msg


_DONE = object()


async def _in_thread(iterator: Iterator) -> AsyncIterator:
    """Drive a blocking iterator in a worker thread, one item at a time."""
    try:
        while True:
            item = await asyncio.to_thread(next, iterator, _DONE)
            if item is _DONE:
                return
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


_default: PocketQuant | None = None
_default_lock = threading.Lock()


def _client() -> PocketQuant:
    global _default
    with _default_lock:
        if _default is None:
            _default = PocketQuant()
        return _default


def bars(symbol: str, interval: str | Interval, start: datetime | str | None = None,
         end: datetime | str | None = None, limit: int | None = None) -> pd.DataFrame:
    return _client().bars(symbol, interval, start, end, limit)


def bars_arrow(symbol: str, interval: str | Interval, start: datetime | str | None = None,
               end: datetime | str | None = None, limit: int | None = None) -> pa.Table:
    return _client().bars_arrow(symbol, interval, start, end, limit)


def latest_quote(symbol: str) -> Quote | None:
    return _client().latest_quote(symbol)


def current_bars(symbol: str) -> CurrentBars:
    return _client().current_bars(symbol)


def symbols(search: str | None = None, streamed: bool | None = None) -> list:
    return _client().symbols(search, streamed)


def subscribe_quotes(symbols: Iterable[str] | str, timeout: float | None = None,
                     limit: int | None = None) -> Iterator[Quote]:
    return _client().subscribe_quotes(symbols, timeout, limit)


def subscribe_bars(symbols: Iterable[str] | str, intervals: Iterable[str] | str | None = None,
                   timeout: float | None = None, limit: int | None = None) -> Iterator[Bar]:
    return _client().subscribe_bars(symbols, intervals, timeout, limit)


def asubscribe_quotes(symbols: Iterable[str] | str, timeout: float | None = None,
                      limit: int | None = None) -> AsyncIterator[Quote]:
    return _client().asubscribe_quotes(symbols, timeout, limit)


def asubscribe_bars(symbols: Iterable[str] | str, intervals: Iterable[str] | str | None = None,
                    timeout: float | None = None, limit: int | None = None) -> AsyncIterator[Bar]:
    return _client().asubscribe_bars(symbols, intervals, timeout, limit)
