"""Latest quotes, in-progress bars and pub/sub messages -> live cache, from a worker thread.

The event loop only records state (a dict assignment and a list append per tick); this thread
writes it. Coalescing is natural: while one round is being written the next tick of a symbol
replaces its pending latest quote, so under load each round carries at most one SET per symbol
while every quote is still *published* (subscribers see every tick). A round is one call: the
cache's ``write_trusted_batch`` where it has one (Redis: one hand-packed round trip; the
payloads come from ``storage.payloads`` via the tick path, so re-checking them adds nothing),
else ``LiveCache.write_batch`` (one transaction embedded).

Outages: the first failed round logs ``live_cache_unavailable`` once and counts one outage;
pub/sub messages produced while the cache is down are dropped and counted (there is nobody
to deliver them to, and the bars are in the store), but the *latest* quotes and bars are kept.
The thread pings with backoff; when the cache answers it logs ``live_cache_recovered`` once
and writes the latest state of every symbol that changed during the outage (catch-up).

``hold`` (the store writer's ``disk_full``): while the bar store cannot write for lack of
space, the cache writes nothing -- the embedded cache shares the disk, and space an operator
frees must go to the durable bars, not to the WAL of ephemeral quotes. Messages meanwhile are
dropped and counted, the latest state is kept and written when the hold ends.
"""

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.storage.live import bar_channel, LiveCache, quote_channel
from pocketquant_pipelines.storage.payloads import completed_bar_payload
from streamer.metrics import StreamerMetrics

log = get_logger("streamer.cache")

_MAX_PENDING_MESSAGES = 200_000


@runtime_checkable
class TrustedBatchWriter(Protocol):
    """A live cache that can write a round of payloads built by ``storage.payloads`` without
    re-checking each item (``RedisLiveCache``)."""

    def write_trusted_batch(self, quotes: Mapping[str, dict], current_bars: Mapping[str, Sequence[Bar]],
                            messages: Sequence[tuple[str, Mapping]]) -> None: ...


class CacheWriter:
    def __init__(self, cache: LiveCache, metrics: StreamerMetrics, *, idle_wait_s: float = 0.05,
                 max_bar_symbols: int = 25, hold: Callable[[], bool] | None = None) -> None:
        self.cache = cache
        # the round writer: per-call SET/PUBLISH would cost a loopback round trip each and cap
        # near 10-20k writes/s, so a round is always one call
        self._write_round = (cache.write_trusted_batch if isinstance(cache, TrustedBatchWriter)
                             else cache.write_batch)
        self.max_bar_symbols = max_bar_symbols
        self.metrics = metrics
        self.idle_wait_s = idle_wait_s
        self._lock = threading.Lock()
        self._quotes: dict[str, dict] = {}
        self._bars: dict[str, list[Bar]] = {}
        self._messages: list[tuple[str, dict]] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.available = True
        self.hold = hold
        self.held = False
        self.outage_started: float | None = None
        self.last_error: str | None = None

    # --- producer side (event loop) ---------------------------------------------------------
    def on_quote(self, symbol: str, quote: dict) -> None:
        # no lock: dict/list single operations are atomic under the GIL, and the worker swaps
        # the containers under the lock before reading them
        self._quotes[symbol] = quote
        self._messages.append((quote_channel(symbol), quote))
        if not self._wake.is_set():
            self._wake.set()

    def on_quotes(self, items: Iterable[tuple[str, dict]]) -> None:
        """``on_quote`` for each (symbol, quote) of one message, in order, under one lock hold
        (a loop of several appends must not straddle the worker's swap)."""
        with self._lock:
            latest = self._quotes
            append = self._messages.append
            for symbol, quote in items:
                latest[symbol] = quote
                append((quote_channel(symbol), quote))
        if not self._wake.is_set():
            self._wake.set()

    def on_current_bars(self, symbol: str, bars: Iterable[Bar]) -> None:
        self._bars.pop(symbol, None)  # re-insert at the end: oldest pending is written first
        self._bars[symbol] = list(bars)
        if not self._wake.is_set():
            self._wake.set()

    def on_completed(self, bars: Iterable[Bar], partial: bool = False) -> None:
        for bar in bars:
            self._messages.append((bar_channel(bar.symbol, bar.interval), completed_bar_payload(bar, partial)))
        if not self._wake.is_set():
            self._wake.set()

    @property
    def depth(self) -> int:
        return len(self._messages)

    @property
    def bar_symbols_pending(self) -> int:
        return len(self._bars)

    # --- worker ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cache-writer", daemon=True)
        self._thread.start()

    def _swap(self):
        """Take everything pending, except that in-progress bars are taken at most
        ``max_bar_symbols`` symbols per round (oldest first): one symbol is 13 SETs (~15 us of
        packing with the Redis round writer, far more through write_batch), so a round of
        1000 symbols' bars would hold every quote behind it.
        Bounded rounds keep quotes fast; under load a symbol's bars refresh less often than
        the flush period, never its quotes."""
        with self._lock:
            quotes, self._quotes = self._quotes, {}
            messages, self._messages = self._messages, []
            if len(self._bars) <= self.max_bar_symbols:
                bars, self._bars = self._bars, {}
            else:
                keys = list(self._bars)[: self.max_bar_symbols]
                bars = {k: self._bars.pop(k) for k in keys}
        return quotes, bars, messages

    def _restore(self, quotes: dict, bars: dict) -> None:
        """Put back latest state not superseded since the swap (outage: keep it for catch-up)."""
        with self._lock:
            for symbol, quote in quotes.items():
                self._quotes.setdefault(symbol, quote)
            for symbol, symbol_bars in bars.items():
                self._bars.setdefault(symbol, symbol_bars)

    def _run(self) -> None:
        backoff = 0.25
        while not self._stopping.is_set():
            self._wake.wait(self.idle_wait_s)
            self._wake.clear()
            if self._held():
                self._drop_messages()
                self._stopping.wait(0.25)
                continue
            if not self.available:
                if not self._probe():
                    self._drop_messages()
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.25
            self.write_pending()

    def _held(self) -> bool:
        held = self.hold is not None and bool(self.hold())
        if held != self.held:
            self.held = held
            if held:
                log.warning("live_cache_held", reason="bar store disk full",
                            note="no cache writes until the bar store writes again")
            else:
                log.info("live_cache_resumed")
        return held

    def _probe(self) -> bool:
        try:
            return bool(self.cache.ping())
        except Exception:  # noqa: BLE001 - still down
            return False

    def _drop_messages(self) -> None:
        with self._lock:
            dropped, self._messages = len(self._messages), []
        if dropped:
            self.metrics.publishes_dropped.inc(dropped)

    def write_pending(self) -> bool:
        quotes, bars, messages = self._swap()
        if not (quotes or bars or messages):
            return True
        if self._bars and not self._wake.is_set():
            self._wake.set()  # bars left for the next round
        if len(messages) > _MAX_PENDING_MESSAGES:  # a stalled cache must not grow memory without bound
            self.metrics.publishes_dropped.inc(len(messages) - _MAX_PENDING_MESSAGES)
            messages = messages[-_MAX_PENDING_MESSAGES:]
        started = time.perf_counter()
        try:
            self._write_round(quotes=quotes, current_bars=bars, messages=messages)
            self.metrics.cache_round_seconds.observe(time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - any backend failure is an outage
            self.metrics.cache_errors.inc()
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.metrics.publishes_dropped.inc(len(messages))
            self._restore(quotes, bars)
            if self.available:
                self.available = False
                self.outage_started = time.monotonic()
                self.metrics.cache_outages.inc()
                log.warning("live_cache_unavailable", error=self.last_error,
                            note="aggregating on; latest quotes and bars are written when it returns")
            return False
        now = time.time()
        if not self.available:
            log.info("live_cache_recovered", outage_s=round(time.monotonic() - (self.outage_started or 0), 3),
                     caught_up_quotes=len(quotes), caught_up_symbols_bars=len(bars))
            self.available = True
            self.outage_started = None
            self.last_error = None
        # quotes of one message share their received_at: observe each stamp once, with its count
        stamps: dict[float, int] = {}
        for channel, data in messages:
            received = data.get("received_at")
            if received is not None and channel.startswith("pq:quotes:"):
                stamps[received] = stamps.get(received, 0) + 1
        hist = self.metrics.tick_to_cache_seconds
        for received, count in stamps.items():
            hist.observe(now - received, count)
        n_quotes = sum(stamps.values())
        self.metrics.quotes_published.inc(n_quotes)
        self.metrics.bars_published.inc(len(messages) - n_quotes)
        return True

    def stop(self, deadline_s: float = 2.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=deadline_s)
        if self.available:
            self.write_pending()
