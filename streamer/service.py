"""The streamer service: TradingView quotes -> multi-interval bars -> live cache + bar store.

This module wires the parts and runs them:

* ``streamer.tick_pipeline`` -- the tick path on the event loop (aggregators, bar routing);
* ``streamer.registry_follower`` -- which symbols to stream, re-read without a restart;
* ``streamer.store_writer`` / ``streamer.cache_writer`` -- two worker threads doing the
  blocking I/O, so a slow or dead backend never stalls tick intake;
* ``streamer.status`` / ``streamer.health`` -- gauges, /health and /metrics.

Background tasks: the quote consumer; the timer (every STREAMER_CACHE_FLUSH_MS: closes bars
whose end has passed on the market clock, so quiet symbols still close, and hands the
in-progress bars of symbols that ticked to the cache writer, at most once per period per
symbol); the registry poll (every STREAMER_REGISTRY_POLL_S).
"""

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterable

from pocketquant_pipelines.errors import ConfigError
from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.replicas import ReplicaShare
from pocketquant_pipelines.settings import Settings
from pocketquant_pipelines.storage.durable import DurableStore
from pocketquant_pipelines.storage.live import LiveCache
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.storage.tick_log import TickLogWriter
from pocketquant_pipelines.tradingview.errors import AuthError
from pocketquant_pipelines.tradingview.models import ClientStats
from streamer import exit_codes
from streamer.cache_writer import CacheWriter
from streamer.disk import DiskFullError, is_disk_full
from streamer.downtime import DowntimeTracker
from streamer.health import HealthServer
from streamer.metrics import StreamerMetrics
from streamer.quote_source import QuoteClient, QuoteSource
from streamer.registry_follower import RegistryFollower
from streamer.status import bind_gauges, health_report
from streamer.store_writer import RESERVATION_NAME, StoreWriter
from streamer.symbols import SymbolState
from streamer.tick_pipeline import CLOSE_GRACE_S, TickPipeline

log = get_logger("streamer")

SWITCH_INTERVAL_S = 0.001  # GIL switch interval while the service runs (see run_service)
CLOSE_TIMEOUT_S = 2.0      # for closing the quote source and the client on shutdown


class StreamerService:
    def __init__(
        self, settings: Settings, *, store: DurableStore | None = None, cache: LiveCache | None = None,
        client: QuoteClient | None = None, health_host: str = "127.0.0.1", health_port: int | None = None,
        registry_poll_s: float | None = None, cache_flush_ms: int | None = None,
        store_batch_ms: int | None = None, max_bar_symbols_per_flush: int = 100, downtime_log=None,
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
        if downtime_log is None and self._owns["store"]:
            from pocketquant_pipelines.storage.downtime import open_downtime_log

            downtime_log = open_downtime_log(settings)
        self._owns["downtime_log"] = self._owns["store"]
        self.downtime = None if downtime_log is None else DowntimeTracker(downtime_log)
        self.store, self.cache, self.client = store, cache, client
        self.metrics = StreamerMetrics()
        self.store_writer = StoreWriter(
            store, self.metrics,
            batch_interval_s=(store_batch_ms or settings.streamer_store_batch_ms) / 1000,
            spill_dir=settings.data_dir,
            reservation_name=(f"streamer-spill-{settings.streamer_replica_index}-of-"
                              f"{settings.streamer_replica_count}.reserve"
                              if settings.streamer_replica_count > 1 else RESERVATION_NAME),
        )
        # a full disk holds the cache back, so freed space goes to the bar store first
        self.cache_writer = CacheWriter(cache, self.metrics, hold=lambda: self.store_writer.disk_full)
        self.tick_log = (TickLogWriter(settings.tick_log_dir, settings.tick_log_retention_days)
                         if settings.tick_log_enabled else None)
        self.tick_log_flush_s = (store_batch_ms or settings.streamer_store_batch_ms) / 1000
        self.pipeline = TickPipeline(self.metrics, self.store_writer, self.cache_writer,
                                     clock_skew_s=float(settings.clock_skew_s),
                                     max_bar_symbols_per_flush=max_bar_symbols_per_flush,
                                     tick_log=self.tick_log)
        self._tasks: list[asyncio.Task] = []
        self.follower = RegistryFollower(
            store, client, self.pipeline, subscribe=self._subscribe, unsubscribe=self._unsubscribe,
            poll_s=registry_poll_s or settings.streamer_registry_poll_s, tasks=self._tasks,
            share=ReplicaShare(settings.streamer_replica_index, settings.streamer_replica_count),
        )
        self.flush_s = (cache_flush_ms or settings.streamer_cache_flush_ms) / 1000
        self.health = HealthServer(
            self.health_report, self.metrics.registry.render, host=health_host,
            port=settings.streamer_health_port if health_port is None else health_port,
        )
        self._stream: QuoteSource | None = None
        self._stop = asyncio.Event()
        self.started_mono = time.monotonic()
        self.started = asyncio.Event()  # set once the health port is bound and writers run
        self.exit_code = exit_codes.OK   # set by a fatal error before it requests the stop
        bind_gauges(self)

    # --- what the parts share ----------------------------------------------------------------------
    @property
    def symbols(self) -> dict[str, SymbolState]:
        return self.pipeline.symbols

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def source_stats(self) -> ClientStats | None:
        return None if self._stream is None else self._stream.stats

    def health_report(self) -> tuple[bool, dict]:
        return health_report(self)

    def on_tick(self, tick) -> None:
        self.pipeline.on_ticks((tick,))

    def on_ticks(self, ticks: Iterable) -> None:
        self.pipeline.on_ticks(ticks)

    def close_due_bars(self, grace_s: float = CLOSE_GRACE_S) -> int:
        return self.pipeline.close_due_bars(grace_s)

    def push_current_bars(self) -> int:
        return self.pipeline.push_current_bars()

    async def apply_registry(self, infos: Iterable[SymbolInfo]) -> None:
        await self.follower.apply(infos)

    # --- the quote source --------------------------------------------------------------------------
    async def _subscribe(self, symbols: list[str]) -> None:
        if self._stream is None:
            self._stream = self.client.quote_stream(sorted(self.pipeline.symbols))
            self.pipeline.source_stats = self._stream.stats
            self._tasks.append(asyncio.create_task(self._consume(self._stream), name="consume-ticks"))
            log.info("stream_started", symbols=len(self.pipeline.symbols))
        else:
            await self._stream.subscribe(*symbols)

    async def _unsubscribe(self, symbols: list[str]) -> None:
        if self._stream is not None:
            await self._stream.unsubscribe(*symbols)

    async def _consume(self, stream: QuoteSource) -> None:
        on_ticks = self.pipeline.on_ticks
        try:
            async for ticks in stream.batches():
                on_ticks(ticks)
        except asyncio.CancelledError:
            raise
        except AuthError as exc:
            # permanent: restarting with the same token is rejected the same way
            log.error("tradingview_auth_rejected", reason=exc.reason or str(exc),
                      hint="check TRADINGVIEW_AUTH_TOKEN (or TRADINGVIEW_USERNAME/PASSWORD)")
            self.exit_code = exit_codes.AUTH
            self.request_stop()
        except Exception as exc:  # noqa: BLE001 - the client already retries transient failures
            log.error("quote_stream_failed", error=f"{type(exc).__name__}: {exc}")
            self.exit_code = exit_codes.STREAM_FAILED
            self.request_stop()

    async def _timer_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            try:
                self.pipeline.close_due_bars()
                self.pipeline.push_current_bars()
            except Exception:  # noqa: BLE001 - keep the service alive; the error is logged
                log.exception("timer_failed")

    async def _tick_log_loop(self) -> None:
        """Write the tick log's batches off the event loop; a crash loses at most one period."""
        tick_log = self.tick_log
        while True:
            await asyncio.sleep(self.tick_log_flush_s)
            batches = tick_log.take()
            if batches:
                try:
                    _, failed = await asyncio.to_thread(tick_log.write, batches)
                except Exception:  # noqa: BLE001 - the audit trail never stops the stream
                    log.exception("tick_log_failed")
                    failed = batches
                tick_log.requeue(failed)

    # --- lifecycle ---------------------------------------------------------------------------------
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
            return exit_codes.CONFIG
        try:
            await asyncio.to_thread(self.store_writer.prepare)
        except DiskFullError as exc:
            log.error("streamer_disk_full", error=str(exc), data_dir=str(self.settings.data_dir),
                      hint="free space on the disk of POCKETQUANT_DATA_DIR; nothing was streamed")
            await self.health.close()
            return exit_codes.DISK_FULL
        self.store_writer.start()
        self.cache_writer.start()
        self._tasks += [
            asyncio.create_task(self._timer_loop(), name="timer"),
            asyncio.create_task(self.follower.poll_forever(), name="registry"),
        ]
        if self.downtime is not None:
            self._tasks.append(asyncio.create_task(self.downtime.run(self), name="heartbeat"))
        if self.tick_log is not None:
            self._tasks.append(asyncio.create_task(self._tick_log_loop(), name="tick-log"))
        self.started.set()
        share = self.follower.share
        log.info("streamer_started", health_port=self.health.port, flush_ms=int(self.flush_s * 1000),
                 registry_poll_s=self.follower.poll_s, replica_index=share.index, replica_count=share.count)
        try:
            await self._stop.wait()
        finally:
            await self.shutdown()
        return self.exit_code

    async def shutdown(self, deadline_s: float = 5.0) -> None:
        started = time.monotonic()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._stream is not None:
            try:
                await asyncio.wait_for(self._stream.close(), timeout=CLOSE_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - shutting down anyway
                log.warning("stream_close_failed")
        closed = self.pipeline.close_due_bars(grace_s=0.0)
        partial = self.pipeline.flush_in_progress()
        self.cache_writer.stop()
        if self.tick_log is not None:
            await asyncio.to_thread(self.tick_log.close)
        unwritten = await asyncio.to_thread(self.store_writer.stop, max(1.0, deadline_s - (time.monotonic() - started)))
        await self.health.close()
        if self._owns["client"]:
            try:
                await asyncio.wait_for(self.client.close(), timeout=CLOSE_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - shutting down anyway
                pass
        if self.downtime is not None and self._owns["downtime_log"]:
            self.downtime.log.close()
        for name in ("store", "cache"):
            if self._owns[name]:
                try:
                    getattr(self, name).close()
                except Exception:  # noqa: BLE001 - shutting down anyway
                    pass
        log.info("streamer_stopped", closed_bars=closed, partial_bars=partial, unwritten=unwritten,
                 ticks=self.pipeline.ticks, took_s=round(time.monotonic() - started, 3))


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
    try:
        service = StreamerService(settings, **kwargs)
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        # opening the store on a full disk (creating the file, its schema or its WAL)
        log.error("streamer_disk_full", error=f"{type(exc).__name__}: {exc}", data_dir=str(settings.data_dir),
                  hint="free space on the disk of POCKETQUANT_DATA_DIR; nothing was streamed")
        return exit_codes.DISK_FULL
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

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    log.info("streamer_config", **{k: v for k, v in settings.redacted().items()
                                   if k.startswith(("streamer_", "tradingview_ws", "data_dir", "redis", "mongodb"))})
    return asyncio.run(run_service(settings))
