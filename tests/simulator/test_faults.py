"""Every fault the simulator can inject, switched at run time, and the counters tests read."""

import asyncio
import time
from datetime import UTC, datetime

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tradingview_simulator import FaultConfig, SimulatorServer, run_simulator_in_thread

from tests.simulator.rawclient import RawClient, method_is, qsd_values, run

START = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


def server(**kw) -> SimulatorServer:
    kw.setdefault("sim_start", START)
    kw.setdefault("pump_interval_s", 0.05)
    return SimulatorServer(**kw)


async def subscribe(c: RawClient, *symbols: str) -> None:
    await c.send("quote_create_session", "qs_f")
    await c.send("quote_add_symbols", "qs_f", *symbols)


@run
async def test_drop_after_n_frames_resets_the_connection():
    async with server(speed=60) as srv:
        srv.faults.drop_after_frames = 5
        async with RawClient(srv.url) as c:
            await subscribe(c, "BINANCE:BTCUSDT")
            assert await c.wait_closed() == 1006  # abnormal: no close frame, like a network failure
            assert sum(1 for f in c.frames if f.kind != "error") == 5
        assert srv.stats.dropped == 1
        srv.faults.drop_after_frames = None
        async with RawClient(srv.url) as again:  # the server itself is fine
            await subscribe(again, "BINANCE:BTCUSDT")
            await again.until(method_is("quote_completed"))


@run
async def test_drop_every_t_seconds():
    async with server(faults=FaultConfig(drop_every_s=0.3)) as srv:
        async with RawClient(srv.url) as c:
            assert await c.wait_closed() == 1006
        assert srv.stats.dropped == 1


@run
async def test_drop_all_connections_on_demand():
    async with server() as srv:
        async with RawClient(srv.url) as a, RawClient(srv.url) as b:
            await a.recv()
            await b.recv()
            assert srv.connection_count == 2
            srv.drop_all_connections()
            assert await a.wait_closed() == await b.wait_closed() == 1006
        assert srv.stats.dropped == 2 and srv.stats.connections == 2


@run
async def test_silent_server_sends_nothing_but_keeps_the_socket_open():
    async with server(heartbeat_s=0.1, speed=60) as srv, RawClient(srv.url) as c:
        await c.recv()
        srv.go_silent(True)
        await subscribe(c, "BINANCE:BTCUSDT")
        assert await c.collect(1.0) == []
        assert c.ws.close_code is None  # open: silence is not a close
        assert srv.stats.heartbeat_timeouts == 0  # nothing sent, so nothing to echo
        srv.go_silent(False)
        frames = await c.until(lambda f: f.kind == "heartbeat")
        frames += await c.until(method_is("qsd"))
        assert qsd_values(frames, "BINANCE:BTCUSDT")  # the stream resumes (the snapshot was lost)


@run
async def test_malformed_frames_now_and_then_without_losing_real_ones():
    async with server(speed=60, faults=FaultConfig(malformed_every=3)) as srv, RawClient(srv.url) as c:
        await subscribe(c, "BINANCE:BTCUSDT")
        await c.until(method_is("quote_completed"))
        frames = await c.until(lambda f: sum(x.kind == "error" for x in c.frames) >= 4)
        frames += await c.collect(0.5)
        errors = [f for f in c.frames if f.kind == "error"]
        assert len(errors) >= 3 and srv.stats.malformed_sent >= 3
        reasons = {e.error.split(" (")[0].split(" at ")[0] for e in errors}
        assert any("length" in r for r in reasons) and any("JSON" in r for r in reasons)
        # Every tick still arrives: lp_time advances by exactly one tick (10 s) each time.
        times = [v["lp_time"] for v in qsd_values(frames, "BINANCE:BTCUSDT") if "lp_time" in v]
        assert len(times) > 5 and all(b - a == 10 for a, b in zip(times, times[1:]))


@run
async def test_future_tick_once_then_real_ticks_again():
    from tradingview_simulator.faults import FUTURE_TICK_PRICE_FACTOR, FUTURE_TICK_TIME

    async with server(speed=60) as srv, RawClient(srv.url) as c:
        await subscribe(c, "BINANCE:BTCUSDT", "NASDAQ:AAPL")
        await c.until(lambda f: f.method == "quote_completed" and f.params[1] == "NASDAQ:AAPL")
        srv.faults.future_tick_symbol = "BINANCE:BTCUSDT"
        srv.faults.future_ticks = 1
        await c.until(lambda f: f.method == "qsd" and f.params[1]["v"].get("lp_time") == FUTURE_TICK_TIME)
        await c.collect(1.0)  # ~6 more real BTC ticks at 60x
        btc = qsd_values(c.frames, "BINANCE:BTCUSDT")
        at = next(i for i, v in enumerate(btc) if v.get("lp_time") == FUTURE_TICK_TIME)
        last_real = [v["lp"] for v in btc[:at] if "lp" in v][-1]
        assert btc[at] == {"lp": last_real * FUTURE_TICK_PRICE_FACTOR, "lp_time": FUTURE_TICK_TIME}
        assert [v.get("lp_time") for v in btc].count(FUTURE_TICK_TIME) == 1
        assert srv.faults.future_ticks == 0 and srv.stats.future_ticks_sent == 1
        assert all(v.get("lp_time") != FUTURE_TICK_TIME for v in qsd_values(c.frames, "NASDAQ:AAPL"))
        # after the next real update a client's merged quote is the real last tick again
        merged: dict = {}
        for v in btc:
            merged.update(v)
        assert sum(1 for v in btc[at + 1:] if "lp" in v) >= 2
        [tick] = srv.market.ticks("BINANCE:BTCUSDT", merged["lp_time"], merged["lp_time"] + 1)
        assert merged["lp"] == tick.price


@run
async def test_send_malformed_on_demand():
    async with server() as srv, RawClient(srv.url) as c:
        await c.recv()
        srv.send_malformed()
        srv.send_malformed()
        frames = await c.until(lambda f: sum(x.kind == "error" for x in c.frames) >= 2)
        assert [f.kind for f in frames] == ["error", "error"]
        assert srv.stats.malformed_sent == 2


@run
async def test_refuse_next_k_upgrades_with_http_429():
    async with server() as srv:
        srv.refuse_next(2)
        for _ in range(2):
            with pytest.raises(InvalidStatus) as info:
                await connect(srv.url)
            assert info.value.response.status_code == 429
        async with RawClient(srv.url) as c:
            assert (await c.recv())[0].kind == "hello"
        assert srv.stats.refused == 2 and srv.stats.connections == 1


@run
async def test_slow_replies():
    async with server(faults=FaultConfig(reply_delay_s=0.6)) as srv, RawClient(srv.url) as c:
        await c.recv()
        sent = time.monotonic()
        await subscribe(c, "BINANCE:BTCUSDT")
        await c.until(method_is("quote_completed"))
        assert time.monotonic() - sent >= 0.6  # a lower bound: a slow machine only makes it larger


@run
async def test_echo_check_can_be_switched_off():
    async with server(heartbeat_s=0.1, faults=FaultConfig(check_heartbeats=False)) as srv:
        async with RawClient(srv.url, echo=False) as mute:
            await mute.until(lambda f: f.kind == "heartbeat" and f.raw == "~h~8")  # grace is 2 beats
            assert mute.ws.close_code is None
        assert srv.stats.heartbeat_timeouts == 0


@run
async def test_counters():
    async with server() as srv, RawClient(srv.url) as c:
        await c.recv()
        await c.send("set_auth_token", "unauthorized_user_token")
        await subscribe(c, "NASDAQ:AAPL")
        await c.send("no_such_method", 1, 2)  # ignored silently, still counted
        await c.send_raw("~m~5~m~{oops")      # malformed client frame: ignored
        await c.until(method_is("quote_completed"))
        assert srv.stats.commands == {"set_auth_token": 1, "quote_create_session": 1,
                                      "quote_add_symbols": 1, "no_such_method": 1}
        assert srv.stats.connections == srv.stats.active == 1
        assert srv.stats.frames_sent == len([f for f in c.frames if f.kind != "error"])
        assert srv.stats.messages_sent == len(c.messages)
        assert c.ws.close_code is None


def test_faults_switch_from_another_thread():
    with run_simulator_in_thread(sim_start=START, pump_interval_s=0.05, speed=60) as srv:
        async def scenario():
            async with RawClient(srv.url) as c:
                await subscribe(c, "BINANCE:BTCUSDT")
                await c.until(method_is("quote_completed"))
                srv.faults.drop_after_frames = srv.stats.frames_sent + 3  # set from this thread
                return await c.wait_closed()

        assert asyncio.run(scenario()) == 1006
        assert srv.stats.dropped == 1
