"""Faults against the real client, the real simulator and real backends (in-process service):
a disconnect storm, malformed frames, a store outage and a real redis-server stopped and
restarted mid-stream. Complete bars must stay exact; nothing accepted may be lost."""

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from pocketquant_pipelines.market.intervals import ALL_INTERVALS
from pocketquant_pipelines.settings import load_settings
from pocketquant_pipelines.storage.bars import Source
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.storage.factory import open_bar_store, open_live_cache
from pocketquant_pipelines.tradingview.client import TradingViewClient
from tradingview_simulator.server import run_simulator_in_thread
from streamer.service import StreamerService
from streamer_helpers import compare_with_history

BTC = "BINANCE:BTCUSDT"
T0 = datetime(2026, 1, 30, 10, 0, tzinfo=UTC)
SPEED = 1500  # one simulated hour in 2.4 s


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture
def env(tmp_path, monkeypatch):
    for var in ("MONGODB_URL", "REDIS_URL", "TRADINGVIEW_WS_URL", "TRADINGVIEW_AUTH_TOKEN",
                "TRADINGVIEW_USERNAME", "TRADINGVIEW_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("POCKETQUANT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def sim():
    with run_simulator_in_thread(seed=9, speed=SPEED, sim_start=T0, resolve_delay_s=0.0) as server:
        yield server


class FlakyStore:
    """The real store; ``failing=True`` makes upserts raise (a store outage)."""

    def __init__(self, store):
        self._store = store
        self.failing = False
        self.failed = 0

    def upsert_bars(self, bars, source=Source.HISTORY, partial=False):
        if self.failing:
            self.failed += 1
            raise ConnectionError("bar store unavailable (injected)")
        return self._store.upsert_bars(bars, source=source, partial=partial)

    def __getattr__(self, name):
        return getattr(self._store, name)


def make_service(settings, server, store=None, cache=None):
    store = store or open_bar_store(settings)
    store.add_symbol(SymbolInfo(BTC, timezone="Etc/UTC", session="24x7", stream=True))
    client = TradingViewClient(url=server.url, backoff_initial_s=0.05, backoff_max_s=0.3)
    return StreamerService(settings, store=store, cache=cache or open_live_cache(settings), client=client,
                           health_port=0, registry_poll_s=0.2, store_batch_ms=100, cache_flush_ms=50)


async def run_until(service, server, end, hooks=()):
    hooks = sorted(hooks, key=lambda h: h[0])
    task = asyncio.create_task(service.run())
    await asyncio.wait_for(service.started.wait(), 10)
    while server.sim_now() < end and not task.done():
        while hooks and server.sim_now() >= hooks[0][0]:
            result = hooks.pop(0)[1]()
            if asyncio.iscoroutine(result):
                await result
        await asyncio.sleep(0.02)
    service.request_stop()
    await asyncio.wait_for(task, 20)


def test_disconnect_storm_then_resync_store_equals_history(env, sim):
    settings = load_settings(dict(os.environ))
    service = make_service(settings, sim)
    drops = [(at(0.5 + 0.25 * k), sim.drop_all_connections) for k in range(6)]
    refuse = [(at(1.2), lambda: sim.refuse_next(2))]
    asyncio.run(run_until(service, sim, at(3), drops + refuse))
    store = service.store
    stats = service.source_stats()
    assert stats.reconnects >= 6 and sim.stats.refused == 2
    state = service.symbols[BTC]
    # every bar the streamer called complete is exact, gaps or not
    compare_with_history(store, sim.market, BTC, state.last_t)
    frame = store.read_bars(BTC, "1m")
    assert frame["partial"].sum() >= 6  # bars cut by a disconnect are flagged for the re-sync

    # a historical sync over the period heals every gap: the store then equals history
    async def resync():
        client = TradingViewClient(url=sim.url)
        try:
            for interval in ALL_INTERVALS:
                result = await client.fetch_history(BTC, interval, 400)
                store.upsert_bars(result.bars, source=Source.HISTORY)
        finally:
            await client.close()

    sim.clock.set_speed(1e-9)  # freeze simulated time: the oracle and the sync see one instant
    frozen = sim.sim_now()
    asyncio.run(resync())
    for interval in ("1m", "5m", "1h", "1d"):
        stored = store.read_bars(BTC, interval, start=T0)
        history = sim.market.bars_between(BTC, interval, T0, frozen)
        expect = [(b.time, b.open, b.high, b.low, b.close, b.volume) for b in history[:-1]]
        got = [(ts.to_pydatetime(), r.open, r.high, r.low, r.close, r.volume)
               for ts, r in stored.iterrows()][: len(expect)]
        assert got == expect, interval


def test_malformed_frames_are_skipped_and_counted(env, sim):
    settings = load_settings(dict(os.environ))
    sim.faults.malformed_every = 25
    service = make_service(settings, sim)
    asyncio.run(run_until(service, sim, at(1.5)))
    assert sim.stats.malformed_sent > 10
    assert service.source_stats().decode_errors > 10
    assert "pocketquant_streamer_malformed_frames_total" in service.metrics.registry.render()
    state = service.symbols[BTC]
    counts = compare_with_history(service.store, sim.market, BTC, state.last_t, feed_start_epoch=state.anchor)
    assert counts["1m"] > 60  # the stream went on


def _get(url: str) -> str:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()
    except urllib.error.HTTPError as exc:  # /health answers 503 with the same body when unhealthy
        return exc.read().decode()


def test_a_year_3000_tick_is_rejected_counted_and_the_next_ticks_aggregate(env, sim, capsys):
    from tradingview_simulator.faults import FUTURE_TICK_PRICE_FACTOR

    settings = load_settings(dict(os.environ))
    service = make_service(settings, sim)
    seen = {}

    def inject():
        seen["at"] = sim.sim_now().timestamp()
        seen["ticks_before"] = service.pipeline.ticks
        seen["price_before"] = service.symbols[BTC].aggregator.current_bars()[ALL_INTERVALS[0]].close
        sim.faults.future_tick_symbol = BTC
        sim.faults.future_ticks = 1

    async def probe():
        base = f"http://127.0.0.1:{service.health.port}"
        seen["health"] = json.loads(await asyncio.to_thread(_get, base + "/health"))
        seen["metrics"] = await asyncio.to_thread(_get, base + "/metrics")
        seen["ticks_probe"] = service.pipeline.ticks

    asyncio.run(run_until(service, sim, at(2.5), [(at(0.5), inject), (at(2.2), probe)]))
    assert sim.stats.future_ticks_sent == 1
    fault_price = seen["price_before"] * FUTURE_TICK_PRICE_FACTOR
    end = sim.sim_now().timestamp()

    # rejected and counted: the metric, /health over HTTP, one log line
    assert service.metrics.rejected_ticks.as_dict() == {"future": 1, "before_epoch": 0}
    assert seen["health"]["rejected_ticks"] == {"future": 1, "before_epoch": 0}
    assert 'pocketquant_streamer_rejected_ticks_total{reason="future"} 1' in seen["metrics"]
    out = capsys.readouterr()
    assert (out.out + out.err).count("tick_rejected_implausible_time") == 1

    # no year-3000 bar at any interval, in the store or the live cache; no trace of its price
    for interval in ALL_INTERVALS:
        for frame in (service.store.read_bars(BTC, interval), service.store.read_stream_bars(BTC, interval)):
            assert len(frame) and frame.index.max().timestamp() <= end, interval
            assert (frame["high"] < fault_price / 10).all(), interval
    current = service.cache.get_current_bars(BTC)
    assert set(current) == set(ALL_INTERVALS)
    assert all(b.time.timestamp() <= end and b.high < fault_price / 10 for b in current.values())
    quote = service.cache.get_quote(BTC)
    assert datetime.fromisoformat(quote["time"]).timestamp() <= end and quote["price"] < fault_price / 10

    # the ticks after it aggregate: none dropped as late, bars keep completing, exactly
    assert seen["ticks_probe"] - seen["ticks_before"] > 500
    assert sum(s.aggregator.late_ticks for s in service.symbols.values()) == 0
    assert 'pocketquant_streamer_late_ticks_total 0' in seen["metrics"]
    minutes = service.store.read_stream_bars(BTC, "1m")
    after = minutes[minutes.index.map(lambda ts: ts.timestamp() > seen["at"])]
    assert len(after) >= 100 and not after["partial"].iloc[:-1].any()  # the last: flushed at the stop
    state = service.symbols[BTC]
    counts = compare_with_history(service.store, sim.market, BTC, state.last_t, feed_start_epoch=state.anchor)
    assert counts["1m"] > 100 and counts["1h"] >= 1


def test_store_outage_is_retried_and_nothing_is_lost(env, sim):
    settings = load_settings(dict(os.environ))
    flaky = FlakyStore(open_bar_store(settings))
    service = make_service(settings, sim, store=flaky)
    seen = {}

    def down():
        flaky.failing = True

    def check_unhealthy():
        seen["health"] = service.health_report()

    def up():
        flaky.failing = False

    asyncio.run(run_until(service, sim, at(2.5), [(at(0.5), down), (at(1.2), check_unhealthy), (at(1.5), up)]))
    healthy, body = seen["health"]
    assert not healthy and body["store"]["reachable"] is False and body["store"]["pending_bars"] > 0
    assert flaky.failed > 0 and service.metrics.store_errors.value == flaky.failed
    assert service.store_writer.depth == 0 and service.metrics.bars_dropped.value == 0
    state = service.symbols[BTC]
    counts = compare_with_history(flaky, sim.market, BTC, state.last_t, feed_start_epoch=state.anchor)
    assert counts["1m"] > 100


def test_redis_stopped_and_restarted_mid_stream(env, sim, redis_server, redis_server_proc, capsys):
    settings = load_settings({**os.environ, "REDIS_URL": redis_server})
    cache = open_live_cache(settings)
    service = make_service(settings, sim, cache=cache)
    seen = {}

    def stop():
        redis_server_proc.stop()
        seen["ticks_at_stop"] = service.pipeline.ticks

    def during():
        seen["health"] = service.health_report()
        seen["ticks_during"] = service.pipeline.ticks

    def start():
        redis_server_proc.start()

    async def wait_caught_up():
        # the writer re-pings with backoff capped at 5 s; allow for a loaded machine
        for _ in range(600):
            if service.cache_writer.available:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)

    try:
        asyncio.run(run_until(service, sim, at(2.5), [(at(0.5), stop), (at(1.0), during), (at(1.3), start),
                                                        (at(1.35), wait_caught_up)]))
    finally:
        if redis_server_proc.proc is None:
            redis_server_proc.start()
    healthy, body = seen["health"]
    assert not healthy and body["cache"]["reachable"] is False
    assert seen["ticks_during"] > seen["ticks_at_stop"]      # aggregation went on without Redis
    assert service.metrics.cache_outages.value == 1
    out = capsys.readouterr()
    logs = out.out + out.err
    assert logs.count("live_cache_unavailable") == 1 and logs.count("live_cache_recovered") == 1
    # caught up: the latest quote and in-progress bars are in Redis again
    quote = cache.get_quote(BTC)
    state = service.symbols[BTC]
    assert quote is not None and datetime.fromisoformat(quote["time"]).timestamp() == state.last_t
    assert len(cache.get_current_bars(BTC)) == 13
    # and the bars themselves never depended on Redis
    compare_with_history(service.store, sim.market, BTC, state.last_t, feed_start_epoch=state.anchor)
    cache.close()


@pytest.mark.parametrize("symbol, aligned_minute", [("NASDAQ:AAPL", 30), (BTC, 0)],
                         ids=["exchange-session", "24x7"])
def test_a_symbol_without_a_session_is_resolved_by_the_streamer(env, symbol, aligned_minute):
    # Registered for streaming before any historical sync: no session in the registry. The
    # streamer asks TradingView (symbol_resolved), records the session, and stores its bars from
    # then on: for AAPL after rebuilding on the 09:30 New York session; for BTC the 24x7 it
    # assumed was right, so the same aggregator's bars simply start reaching the store.
    start = datetime(2026, 1, 29, 14, 0, tzinfo=UTC)  # 09:00 New York, before the open
    settings = load_settings(dict(os.environ))
    with run_simulator_in_thread(seed=9, speed=SPEED, sim_start=start, resolve_delay_s=0.0) as server:
        store = open_bar_store(settings)
        store.add_symbol(SymbolInfo(symbol, stream=True))
        client = TradingViewClient(url=server.url, backoff_initial_s=0.05, backoff_max_s=0.3)
        service = StreamerService(settings, store=store, cache=open_live_cache(settings), client=client,
                                  health_port=0, registry_poll_s=30, store_batch_ms=100, cache_flush_ms=50)
        asyncio.run(run_until(service, server, start + timedelta(hours=3)))
        spec = server.market.spec(symbol)
        info = store.get_symbol(symbol)
        assert (info.timezone, info.session) == (spec.timezone, spec.session)
        assert service.symbols[symbol].session_known
        hours = store.read_bars(symbol, "1h")
        assert len(hours) >= 2 and set(hours.index.minute) == {aligned_minute}
        state = service.symbols[symbol]
        counts = compare_with_history(store, server.market, symbol, state.last_t, feed_start_epoch=state.anchor)
        assert counts["1m"] > 60
