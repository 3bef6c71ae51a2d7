"""What the running service says about itself: the gauges read at scrape time and the
``/health`` body. Both read the service's live state; neither changes it."""

import time
from datetime import UTC, datetime

HEALTH_SYMBOLS_LISTED = 100  # /health lists this many subscribed symbols (the count is separate)


def bind_gauges(service) -> None:
    r = service.metrics.registry
    pipeline = service.pipeline
    r.counter_fn("ticks_total", "Ticks taken from the quote stream and aggregated.", lambda: pipeline.ticks)
    r.counter_fn("late_ticks_total", "Ticks older than the current bar, dropped by the aggregator.",
                 lambda: pipeline.late_ticks)
    r.counter_fn("out_of_session_ticks_total", "Ticks outside the symbol's session, dropped.",
                 lambda: pipeline.out_of_session_ticks)
    r.counter_fn("reconnects_total", "TradingView reconnections.", lambda: _stat(service, "reconnects"))
    r.counter_fn("malformed_frames_total", "Frames that failed to decode (skipped).",
                 lambda: _stat(service, "decode_errors"))
    r.gauge("store_queue_depth", "Bars waiting to be written to the bar store.", lambda: service.store_writer.depth)
    r.gauge("cache_queue_depth", "Pub/sub messages waiting for the live cache.", lambda: service.cache_writer.depth)
    r.gauge("subscribed_symbols", "Symbols currently streamed.", lambda: len(pipeline.symbols))
    r.gauge("connected", "1 when the TradingView quote socket is up.", lambda: 1 if _connected(service) else 0)
    r.gauge("last_tick_age_seconds", "Seconds since the last tick (absent before the first).",
            lambda: None if pipeline.last_tick_mono is None else time.monotonic() - pipeline.last_tick_mono)
    r.gauge("store_up", "1 when the last bar store write succeeded.", lambda: 1 if service.store_writer.healthy else 0)
    r.gauge("cache_up", "1 when the live cache is reachable.", lambda: 1 if service.cache_writer.available else 0)


def _stat(service, name: str) -> float:
    stats = service.source_stats()
    return float(getattr(stats, name)) if stats is not None else 0.0


def _connected(service) -> bool:
    stats = service.source_stats()
    return bool(stats.connected) if stats is not None else False


def health_report(service) -> tuple[bool, dict]:
    pipeline = service.pipeline
    symbols = pipeline.symbols
    connected = _connected(service)
    store_ok = service.store_writer.healthy
    cache_ok = service.cache_writer.available
    streaming_ok = connected or not symbols
    healthy = streaming_ok and store_ok and cache_ok and not service.stopping
    age = None if pipeline.last_tick_mono is None else round(time.monotonic() - pipeline.last_tick_mono, 3)
    body = {
        "status": "ok" if healthy else "unhealthy",
        "connection": "connected" if connected else ("idle" if not symbols else "disconnected"),
        "subscribed": sorted(symbols)[:HEALTH_SYMBOLS_LISTED],
        "subscribed_count": len(symbols),
        "last_tick_age_s": age,
        "ticks": pipeline.ticks,
        "reconnects": int(_stat(service, "reconnects")),
        "rejected_ticks": service.metrics.rejected_ticks.as_dict(),
        "store": {"reachable": store_ok, "pending_bars": service.store_writer.depth,
                  "last_error": service.store_writer.last_error},
        "cache": {"reachable": cache_ok, "pending_messages": service.cache_writer.depth,
                  "last_error": service.cache_writer.last_error},
        "market_time": None if pipeline.market_t is None else datetime.fromtimestamp(pipeline.market_t, UTC).isoformat(),
        "uptime_s": round(time.monotonic() - service.started_mono, 3),
        "replica": {"index": service.follower.share.index, "count": service.follower.share.count},
    }
    return healthy, body
