"""The streamer service: TradingView quotes -> multi-interval bars -> live cache + bar store.

One asyncio loop owns the tick path (client -> aggregator -> in-memory state); two worker
threads do the blocking I/O (``StoreWriter`` for the bar store, ``CacheWriter`` for the live
cache), so a slow or dead backend never stalls tick intake. Background tasks:

* ``_timer_loop`` (every STREAMER_CACHE_FLUSH_MS): closes bars whose end has passed on the
  market clock (quiet symbols still close) and hands the in-progress bars of symbols that
  ticked to the cache writer -- coalesced, at most once per period per symbol.
* ``_registry_loop`` (every STREAMER_REGISTRY_POLL_S): re-reads the symbols marked stream=True
  and subscribes/unsubscribes without a restart; rebuilds an aggregator whose session was
  filled in by a historical sync.

Bars close on each symbol's *own market clock*: its newest tick time, extrapolated at
real-time speed while it is quiet (``SymbolState.clock``). Wall-clock ``now`` would be wrong
for delayed feeds (lp_time 15 min behind) and for the simulator's accelerated time, and a
clock shared across symbols would close one symbol's bar while its ticks are still queued
behind another's. Extrapolating at speed 1 closes a bar late rather than early.
"""

import asyncio
import inspect
import os
import signal
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.clock import EPOCH_FLOOR, implausible_reason
from pocketquant_pipelines.settings import Settings
from pocketquant_pipelines.storage.durable import DurableStore
from pocketquant_pipelines.storage.live import LiveCache
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.sync import record_metadata
from streamer.cache_writer import CacheWriter
from streamer.health import HealthServer
from streamer.metrics import StreamerMetrics
from streamer.store_writer import StoreWriter
from streamer.symbols import SymbolState

log = get_logger("streamer")

CLOSE_GRACE_S = 2.0  # market seconds a bar stays open past its end for straggling ticks
HEALTH_SYMBOLS_LISTED = 100  # /health lists this many subscribed symbols (the count is separate)
SWITCH_INTERVAL_S = 0.001  # GIL switch interval while the service runs (see run_service)


async def _maybe_await(value):
    if inspect.isawaitable(value):
        return await value
    return value


class StreamerService:
    def __init__(
        self, settings: Settings, *, store: DurableStore | None = None, cache: LiveCache | None = None,
        client=None, health_host: str = "127.0.0.1", health_port: int | None = None,
        registry_poll_s: float | None = None, cache_flush_ms: int | None = None,
        store_batch_ms: int | None = None, max_bar_symbols_per_flush: int = 100,
    ) -> None:
        self.settings = settings
        self._owns = {"store": store is None, "cache": cache is None, "client": client is None}
        if store is None:
            from pocketquant_pipelines.storage.factory import open_bar_store

            store = open_bar_store(settings)
        if cache is None:
            from pocketquant_pipelines.storage.factory import open_live_cache

            cache = open_live_cache(settings)
        if client is None:
            from pocketquant_pipelines.tradingview.client import TradingViewClient

            client = TradingViewClient.from_settings(settings)
        self.store, self.cache, self.client = store, cache, client
        self.metrics = StreamerMetrics()
        self.store_writer = StoreWriter(
            store, self.metrics,
            batch_interval_s=(store_batch_ms or settings.streamer_store_batch_ms) / 1000,
            spill_dir=settings.data_dir,
        )
        self._round_writer = None
        if type(cache).__name__ == "RedisLiveCache" and settings.redis_url:
            from streamer.redis_rounds import RedisRoundWriter

            self._round_writer = RedisRoundWriter(settings.redis_url.get_secret_value())
        self.cache_writer = CacheWriter(cache, self.metrics, writer=self._round_writer)
        self.flush_s = (cache_flush_ms or settings.streamer_cache_flush_ms) / 1000
        self.registry_poll_s = registry_poll_s or settings.streamer_registry_poll_s
        self.health = HealthServer(
            self.health_report, self.metrics.registry.render, host=health_host,
            port=settings.streamer_health_port if health_port is None else health_port,
        )
        self.symbols: dict[str, SymbolState] = {}
        self._dirty: dict[str, None] = {}  # symbols with unpushed in-progress bars, oldest first
        self.max_bar_symbols_per_flush = max_bar_symbols_per_flush
        self._stream = None
        self._stop = asyncio.Event()
        self._ticks = 0
        self._late_base = 0       # late/out-of-session counts of aggregators already retired
        self._oos_base = 0
        self._market_t: float | None = None
        self._stamps: dict[datetime, tuple[float, str]] = {}  # tick time -> (epoch, ISO UTC)
        self._resolving: set[str] = set()  # symbols whose session is being asked for
        self.clock_skew_s = float(settings.clock_skew_s)
        self._rejected_logged: set[tuple[str, str]] = set()  # (symbol, reason) already warned about
        self._market_mono = 0.0
        self._last_tick_mono: float | None = None
        self._seen_reconnects = 0
        self._started_mono = time.monotonic()
        self._tasks: list[asyncio.Task] = []
        self.started = asyncio.Event()  # set once the health port is bound and writers run
        self._bind_gauges()

    # --- metrics and health ------------------------------------------------------------------
    def _bind_gauges(self) -> None:
        r = self.metrics.registry
        r.counter_fn("ticks_total", "Ticks taken from the quote stream and aggregated.", lambda: self._ticks)
        r.counter_fn("late_ticks_total", "Ticks older than the current bar, dropped by the aggregator.",
                     lambda: self._late_base + sum(s.aggregator.late_ticks for s in self.symbols.values()))
        r.counter_fn("out_of_session_ticks_total", "Ticks outside the symbol's session, dropped.",
                     lambda: self._oos_base + sum(s.aggregator.out_of_session_ticks for s in self.symbols.values()))
        r.counter_fn("reconnects_total", "TradingView reconnections.", lambda: self._client_stat("reconnects"))
        r.counter_fn("malformed_frames_total", "Frames that failed to decode (skipped).",
                     lambda: self._client_stat("decode_errors"))
        r.gauge("store_queue_depth", "Bars waiting to be written to the bar store.", lambda: self.store_writer.depth)
        r.gauge("cache_queue_depth", "Pub/sub messages waiting for the live cache.", lambda: self.cache_writer.depth)
        r.gauge("subscribed_symbols", "Symbols currently streamed.", lambda: len(self.symbols))
        r.gauge("connected", "1 when the TradingView quote socket is up.", lambda: 1 if self._connected() else 0)
        r.gauge("last_tick_age_seconds", "Seconds since the last tick (absent before the first).",
                lambda: None if self._last_tick_mono is None else time.monotonic() - self._last_tick_mono)
        r.gauge("store_up", "1 when the last bar store write succeeded.", lambda: 1 if self.store_writer.healthy else 0)
        r.gauge("cache_up", "1 when the live cache is reachable.", lambda: 1 if self.cache_writer.available else 0)

    def _client_stats(self):
        for owner in (self._stream, self.client):
            stats = getattr(owner, "stats", None)
            if stats is not None:
                return stats() if callable(stats) else stats
        return None

    def _client_stat(self, name: str) -> float:
        stats = self._client_stats()
        return float(getattr(stats, name, 0) or 0) if stats is not None else 0.0

    def _connected(self) -> bool:
        stats = self._client_stats()
        return bool(getattr(stats, "connected", False)) if stats is not None else False

    def health_report(self) -> tuple[bool, dict]:
        connected = self._connected()
        store_ok = self.store_writer.healthy
        cache_ok = self.cache_writer.available
        streaming_ok = connected or not self.symbols
        healthy = streaming_ok and store_ok and cache_ok and not self._stop.is_set()
        age = None if self._last_tick_mono is None else round(time.monotonic() - self._last_tick_mono, 3)
        return healthy, {
            "status": "ok" if healthy else "unhealthy",
            "connection": "connected" if connected else ("idle" if not self.symbols else "disconnected"),
            "subscribed": sorted(self.symbols)[:HEALTH_SYMBOLS_LISTED],
            "subscribed_count": len(self.symbols),
            "last_tick_age_s": age,
            "ticks": self._ticks,
            "reconnects": int(self._client_stat("reconnects")),
            "rejected_ticks": self.metrics.rejected_ticks.as_dict(),
            "store": {"reachable": store_ok, "pending_bars": self.store_writer.depth,
                      "last_error": self.store_writer.last_error},
            "cache": {"reachable": cache_ok, "pending_messages": self.cache_writer.depth,
                      "last_error": self.cache_writer.last_error},
            "market_time": None if self._market_t is None else datetime.fromtimestamp(self._market_t, UTC).isoformat(),
            "uptime_s": round(time.monotonic() - self._started_mono, 3),
        }

    # --- tick path (hot) -----------------------------------------------------------------------
    def on_tick(self, tick) -> None:
        self.on_ticks((tick,))

    def on_ticks(self, ticks: Iterable) -> None:
        """Aggregate the ticks of one client message, in order, and hand their quotes to the
        cache writer. What does not change within a message is done once per call: the
        reconnect check, the clocks, the ``received_at`` stamp (the message's ticks arrived
        together).

        Clock sanity: a tick dated after wall-clock now + ``clock_skew_s``, or before the
        epoch, is dropped here, before it can touch the aggregator (one year-3000 tick would
        open a year-3000 bar and make every later tick late), the symbol's clock or its quote.
        One wall-clock read per message, two float comparisons per tick."""
        stats = self._client_stats()
        if stats is not None and stats.reconnects != self._seen_reconnects:
            self._on_reconnect(stats.reconnects)
        now_mono = time.monotonic()
        received_at = time.time()
        horizon = received_at + self.clock_skew_s
        symbols = self.symbols
        stamps = self._stamps
        dirty = self._dirty
        market_t = self._market_t
        quotes: list[tuple[str, dict]] = []
        n = 0
        for tick in ticks:
            symbol = tick.symbol
            state = symbols.get(symbol)
            if state is None:  # a straggler after unsubscribe
                continue
            when = tick.time
            stamp = stamps.get(when)
            if stamp is None:
                stamp = self._stamp(when)
            t = stamp[0]
            if not EPOCH_FLOOR <= t <= horizon:  # also False for NaN
                self._reject_tick(symbol, t, received_at)
                continue
            if state.anchor is None:
                state.anchor = t
            try:
                completed = state.aggregator.on_tick_values(t, tick.price, tick.volume)
            except InvalidInputError as exc:
                self.metrics.bad_ticks.inc()
                log.warning("tick_rejected", symbol=symbol, error=str(exc))
                continue
            n += 1
            state.ticks += 1
            if not state.dirty:
                state.dirty = True
                dirty[symbol] = None
            last_t = state.last_t
            if last_t is None or t >= last_t:
                state.last_t, state.last_mono = t, now_mono
            if market_t is None or t > market_t:
                market_t = self._market_t = t
                self._market_mono = now_mono
            if completed:
                if quotes:  # publish order as per tick: earlier quotes before these bars
                    self.cache_writer.on_quotes(quotes)
                    quotes = []
                self._completed(state, completed)
            # Tick.to_dict() + received_at (docs/streamer.md "Quote payload"), built directly:
            # the time string comes from the stamp cache instead of an isoformat() per tick.
            quotes.append((symbol, {
                "symbol": symbol, "time": stamp[1], "price": tick.price, "volume": tick.volume,
                "bid": tick.bid, "ask": tick.ask, "cumulative_volume": tick.cumulative_volume,
                "received_at": received_at,
            }))
        if n:
            self._ticks += n
            self._last_tick_mono = now_mono
        if quotes:
            self.cache_writer.on_quotes(quotes)

    def _reject_tick(self, symbol: str, t: float, now: float) -> None:
        """Count a tick with an implausible time; warn once per (symbol, reason), not per
        tick: a feed stuck on a bad clock would otherwise flood the log."""
        reason = implausible_reason(t, now, self.clock_skew_s) or "future"
        self.metrics.rejected_ticks.inc(reason)
        key = (symbol, reason)
        if key not in self._rejected_logged:
            self._rejected_logged.add(key)
            try:
                when = datetime.fromtimestamp(t, UTC).isoformat()
            except (OverflowError, OSError, ValueError):
                when = repr(t)
            log.warning("tick_rejected_implausible_time", symbol=symbol, reason=reason, tick_time=when,
                        now=datetime.fromtimestamp(now, UTC).isoformat(), skew_s=self.clock_skew_s,
                        note="dropped before aggregation; counted in rejected_ticks_total, "
                             "logged once per symbol and reason")

    def _stamp(self, when: datetime) -> tuple[float, str]:
        """(epoch seconds, ISO text in UTC) of a tick time, cached: the ticks of a message mostly
        share a few seconds (the client shares their datetime objects too), and isoformat()
        alone costs more than aggregating a tick."""
        stamps = self._stamps
        if len(stamps) >= 4096:
            stamps.clear()
        stamp = stamps[when] = (when.timestamp(), when.astimezone(UTC).isoformat())
        return stamp

    def _completed(self, state: SymbolState, bars: Iterable[Bar]) -> None:
        bars = list(bars)
        anchor = state.anchor if state.anchor is not None else float("inf")
        complete = [b for b in bars if b.time.timestamp() > anchor]
        partial = [b for b in bars if b.time.timestamp() <= anchor]
        self.metrics.bars_completed.inc(len(bars))
        if not state.session_known:
            self._hold_unaligned(state, bars)
        else:
            if complete:
                self.store_writer.put(complete, partial=False)
            if partial:
                self.store_writer.put(partial, partial=True)
        # published either way: the bucket is closed; ``partial`` tells subscribers that the
        # streamer did not watch it from its start
        self.cache_writer.on_completed(complete, partial=False)
        self.cache_writer.on_completed(partial, partial=True)

    def _hold_unaligned(self, state: SymbolState, bars: list[Bar]) -> None:
        """Bars of a symbol whose session is not in the registry yet were bucketed as 24x7;
        for an exchange session they would sit under keys history never produces (a 1h bar
        at 14:00 instead of 14:30), and no later sync would replace them. So they go to the
        live cache only, counted and warned about once per symbol, until a historical sync
        records the session and the registry poll rebuilds the aggregator."""
        self.metrics.bars_unaligned.inc(len(bars))
        if not state.extra.get("warned_unaligned"):
            state.extra["warned_unaligned"] = True
            log.warning("bars_not_stored_session_unknown", symbol=state.symbol,
                        hint="run a historical sync of the symbol; it records its session")

    def _to_store_partial(self, state: SymbolState, bars: list[Bar]) -> None:
        if not bars:
            return
        if state.session_known:
            self.store_writer.put(bars, partial=True)
        else:
            self._hold_unaligned(state, bars)

    def _on_reconnect(self, count: int) -> None:
        log.info("stream_reconnected", reconnects=count, note="bars in progress across the gap are stored partial")
        self._seen_reconnects = count
        for state in self.symbols.values():
            state.anchor = None

    # --- periodic work -------------------------------------------------------------------------
    def close_due_bars(self, grace_s: float = CLOSE_GRACE_S) -> int:
        """Close bars whose end has passed on their symbol's own clock (minus a grace for
        straggling ticks). Returns how many bars closed."""
        now_mono = time.monotonic()
        n = 0
        for state in list(self.symbols.values()):
            clock = state.clock(now_mono)
            if clock is None:
                continue
            closed = self._close_due(state, clock - grace_s)
            if closed:
                n += len(closed)
                self._completed(state, closed)
        return n

    @staticmethod
    def _close_due(state: SymbolState, cutoff_epoch: float) -> list[Bar]:
        agg = state.aggregator
        fast = getattr(agg, "close_due_epoch", None)
        if fast is not None:
            return fast(cutoff_epoch)
        return agg.close_due(datetime.fromtimestamp(cutoff_epoch, UTC))

    def push_current_bars(self) -> int:
        """Hand the in-progress bars of symbols that ticked since their last push to the cache
        writer, oldest first, at most ``max_bar_symbols_per_flush`` per flush period (building
        13 bars costs ~20 us; 1000 busy symbols every 250 ms would be 80 ms of loop time per
        second, plus their writing). A symbol left over keeps its place and goes first next period."""
        budget = self.max_bar_symbols_per_flush
        if self.cache_writer.bar_symbols_pending >= budget:
            return 0  # the writer is behind: snapshots now would only be overwritten
        pushed = 0
        for symbol in list(self._dirty):
            if pushed >= budget:
                break
            del self._dirty[symbol]
            state = self.symbols.get(symbol)
            if state is None:
                continue
            state.dirty = False
            self.cache_writer.on_current_bars(symbol, state.aggregator.current_bars().values())
            pushed += 1
        return pushed

    async def _timer_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            try:
                self.close_due_bars()
                self.push_current_bars()
            except Exception:  # noqa: BLE001 - keep the service alive; the error is logged
                log.exception("timer_failed")

    async def _registry_loop(self) -> None:
        while True:
            try:
                infos = await asyncio.to_thread(self.store.list_symbols, True)
                await self.apply_registry(infos)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - store down: keep streaming what we have
                log.warning("registry_poll_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.registry_poll_s)

    async def apply_registry(self, infos: Iterable[SymbolInfo]) -> None:
        wanted = {i.symbol: i for i in infos if i.stream}
        added = [s for s in wanted if s not in self.symbols]
        removed = [s for s in self.symbols if s not in wanted]
        for symbol in removed:
            self._retire(symbol)
        for symbol in wanted:
            if symbol in self.symbols and self.symbols[symbol].session_confirmed(wanted[symbol]):
                log.info("symbol_session_confirmed", symbol=symbol, session=wanted[symbol].session)
                # bars completed until now were held back; the store's view of this stream
                # starts here, so bars already in progress are written partial (a sync completes them)
                self.symbols[symbol].session_known = True
                self.symbols[symbol].anchor = None
            if symbol in self.symbols and self.symbols[symbol].session_changed(wanted[symbol]):
                log.info("symbol_session_updated", symbol=symbol, session=wanted[symbol].session,
                         timezone=wanted[symbol].timezone)
                self._retire(symbol)
                added.append(symbol)
        for symbol in added:
            self.symbols[symbol] = SymbolState.create(wanted[symbol])
            if not self.symbols[symbol].session_known:
                self._resolve_session_soon(symbol)
        new = [s for s in added if s not in removed]
        gone = [s for s in removed if s not in wanted]
        if gone and self._stream is not None:
            await _maybe_await(self._stream.unsubscribe(*gone))
        if new:
            if self._stream is None:
                self._start_stream(sorted(self.symbols))
            else:
                # resubscribing a symbol whose session changed is harmless (a fresh snapshot)
                await _maybe_await(self._stream.subscribe(*sorted(new)))
        if added or removed:
            log.info("subscriptions_changed", added=sorted(set(added) - set(removed)), removed=gone,
                     total=len(self.symbols))

    def _resolve_session_soon(self, symbol: str) -> None:
        """A symbol streamed before any historical sync has no session in the registry, so its
        bars would be bucketed 24x7 and kept out of the store. The quote snapshot carries no
        session string; ``symbol_resolved`` does. So ask TradingView once
        (``client.resolve_symbol``, the same call ``symbols add`` makes), record timezone/session in the registry as a sync would, and
        re-apply the registry: the aggregator is rebuilt with the real session at once instead
        of after the first sync. On failure the symbol stays unaligned until a sync runs."""
        resolve = getattr(self.client, "resolve_symbol", None)
        if resolve is None or symbol in self._resolving:
            return
        self._resolving.add(symbol)
        task = asyncio.create_task(self._resolve_session(symbol, resolve), name=f"resolve-{symbol}")
        self._tasks.append(task)

    async def _resolve_session(self, symbol: str, resolve) -> None:
        try:
            meta = await resolve(symbol)
            if not (meta.session and meta.timezone):
                log.warning("symbol_session_unresolved", symbol=symbol, reason="symbol_resolved had no session")
                return
            await asyncio.to_thread(record_metadata, self.store, symbol, meta)
            log.info("symbol_session_resolved", symbol=symbol, session=meta.session, timezone=meta.timezone)
            await self.apply_registry(await asyncio.to_thread(self.store.list_symbols, True))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - unknown symbol, network, store: a sync fixes it later
            log.warning("symbol_session_unresolved", symbol=symbol, reason=f"{type(exc).__name__}: {exc}")
        finally:
            self._resolving.discard(symbol)

    def _retire(self, symbol: str) -> None:
        """Stop aggregating a symbol: complete bars go to the store as usual, the in-progress
        ones as partial (a later historical sync completes them)."""
        state = self.symbols.pop(symbol)
        clock = state.clock(time.monotonic())
        if clock is not None:
            closed = self._close_due(state, clock)
            if closed:
                self._completed(state, closed)
        self._to_store_partial(state, state.aggregator.flush())
        self._late_base += state.aggregator.late_ticks
        self._oos_base += state.aggregator.out_of_session_ticks

    # --- stream --------------------------------------------------------------------------------
    def _start_stream(self, symbols: list[str]) -> None:
        self._stream = self.client.quote_stream(symbols)
        self._tasks.append(asyncio.create_task(self._consume(), name="consume-ticks"))
        log.info("stream_started", symbols=len(symbols))

    async def _consume(self) -> None:
        try:
            batches = getattr(self._stream, "batches", None)
            if batches is not None:  # the client's QuoteStream: one list per WebSocket message
                on_ticks = self.on_ticks
                async for ticks in batches():
                    on_ticks(ticks)
            else:
                on_tick = self.on_tick
                async for tick in self._stream:
                    on_tick(tick)
        except asyncio.CancelledError:
            raise
        except Exception:
            # the client already retries transient failures; reaching here is fatal
            log.exception("quote_stream_failed")
            self.request_stop()

    # --- lifecycle -----------------------------------------------------------------------------
    def request_stop(self) -> None:
        if not self._stop.is_set():
            log.info("streamer_stopping")
            self._stop.set()

    async def run(self) -> int:
        """Run until ``request_stop()``; then flush and close. Returns an exit code."""
        self._stop = asyncio.Event() if self._stop.is_set() else self._stop
        try:
            await self.health.start()
        except OSError as exc:
            log.error("health_port_unavailable", host=self.health.host, port=self.health.port, error=str(exc),
                      hint="set STREAMER_HEALTH_PORT to a free port (0 = any)")
            return 2
        self.store_writer.start()
        self.cache_writer.start()
        self._tasks += [
            asyncio.create_task(self._timer_loop(), name="timer"),
            asyncio.create_task(self._registry_loop(), name="registry"),
        ]
        self.started.set()
        log.info("streamer_started", health_port=self.health.port, flush_ms=int(self.flush_s * 1000),
                 registry_poll_s=self.registry_poll_s)
        try:
            await self._stop.wait()
        finally:
            await self.shutdown()
        return 0

    async def shutdown(self, deadline_s: float = 5.0) -> None:
        started = time.monotonic()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._stream is not None:
            closer = getattr(self._stream, "aclose", None) or getattr(self._stream, "close", None)
            if closer is not None:
                try:
                    await asyncio.wait_for(_maybe_await(closer()), timeout=2)
                except Exception:  # noqa: BLE001 - shutting down anyway
                    log.warning("stream_close_failed")
        closed = self.close_due_bars(grace_s=0.0)
        partial = 0
        for state in self.symbols.values():
            rest = state.aggregator.flush()
            partial += len(rest)
            self._to_store_partial(state, rest)
        self.cache_writer.stop()
        unwritten = await asyncio.to_thread(self.store_writer.stop, max(1.0, deadline_s - (time.monotonic() - started)))
        await self.health.close()
        if self._owns["client"]:
            closer = getattr(self.client, "close", None)
            if closer is not None:
                try:
                    await asyncio.wait_for(_maybe_await(closer()), timeout=2)
                except Exception:  # noqa: BLE001
                    pass
        if self._round_writer is not None:
            self._round_writer.close()
        for name in ("store", "cache"):
            if self._owns[name]:
                try:
                    getattr(self, name).close()
                except Exception:  # noqa: BLE001
                    pass
        log.info("streamer_stopped", closed_bars=closed, partial_bars=partial, unwritten=unwritten,
                 ticks=self._ticks, took_s=round(time.monotonic() - started, 3))


def install_signal_handlers(service: StreamerService) -> None:
    """SIGTERM/SIGINT: graceful stop (flush in-progress bars as partial). A second signal
    exits at once -- an operator who insists gets their terminal back."""
    loop = asyncio.get_running_loop()
    hits = {"n": 0}

    def handler(signame: str) -> None:
        hits["n"] += 1
        if hits["n"] > 1:
            log.warning("streamer_forced_exit", signal=signame)
            os._exit(130)
        log.info("signal_received", signal=signame)
        service.request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handler, sig.name)


async def run_service(settings: Settings, **kwargs) -> int:
    service = StreamerService(settings, **kwargs)
    install_signal_handlers(service)
    # The cache and store writer threads release the GIL at every socket / SQLite call and must
    # take it back from tick intake; the default 5 ms switch interval makes each such hand-over
    # cost up to 5 ms (tick -> cache latency p99 ~100 ms at 20k ticks/s). 1 ms: p99 ~25 ms.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        return await service.run()
    finally:
        sys.setswitchinterval(previous)


def main(argv: list[str] | None = None) -> int:
    from pocketquant_pipelines.logging import configure_logging
    from pocketquant_pipelines.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    log.info("streamer_config", **{k: v for k, v in settings.redacted().items()
                                   if k.startswith(("streamer_", "tradingview_ws", "data_dir", "redis", "mongodb"))})
    return asyncio.run(run_service(settings))
