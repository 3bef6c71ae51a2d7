"""The simulator's clock never runs ahead of the wall clock: TradingView sends no ticks from the
future, and the streamer rejects them (POCKETQUANT_CLOCK_SKEW_S)."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from pocketquant_pipelines.errors import InvalidInputError
from tradingview_simulator import SimulatorServer
from tradingview_simulator.clock import ACCELERATED_RUN_S, SimClock
from tests.simulator.rawclient import RawClient, method_is, qsd_values, run


def test_an_accelerated_clock_catches_up_then_runs_at_real_time():
    clock = SimClock(datetime.now(UTC) - timedelta(seconds=20), speed=3600)  # 20 s behind: caught up in ~6 ms
    time.sleep(0.05)
    t1, wall1 = clock.now_epoch(), time.time()
    assert wall1 - 0.05 <= t1 <= wall1
    time.sleep(0.3)
    t2, wall2 = clock.now_epoch(), time.time()
    assert t2 <= wall2
    assert 0.25 <= t2 - t1 <= 0.4  # real-time speed now, not 3600x


def test_behind_the_wall_clock_it_runs_at_its_speed():
    start = datetime(2026, 3, 10, 15, tzinfo=UTC)
    clock = SimClock(start, speed=1000)
    time.sleep(0.2)
    elapsed = clock.now_epoch() - start.timestamp()
    assert 150 <= elapsed <= 400


def test_a_start_in_the_future_is_refused_naming_it():
    future = datetime.now(UTC) + timedelta(days=2)
    with pytest.raises(InvalidInputError, match="in the future") as info:
        SimClock(future)
    assert future.isoformat()[:16] in str(info.value)
    with pytest.raises(InvalidInputError, match="in the future"):
        SimulatorServer(sim_start=future)


def test_default_start_real_time_now_accelerated_in_the_past():
    now = time.time()
    assert abs(SimClock(speed=1).now_epoch() - now) < 1
    clock = SimClock(speed=60)  # without sim_start: early enough for an hour of accelerated time
    assert abs(clock.now_epoch() - (now - 59 * ACCELERATED_RUN_S)) < 60


def test_jumps_stop_at_the_wall_clock():
    clock = SimClock(datetime.now(UTC) - timedelta(hours=3), speed=1)
    clock.jump(3600)
    assert abs(clock.now_epoch() - (time.time() - 7200)) < 2
    with pytest.raises(InvalidInputError, match="pass the wall clock"):
        clock.jump(3 * 3600)
    with pytest.raises(InvalidInputError, match="back in time"):
        clock.jump(-1)


def test_slowing_down_a_caught_up_clock_resumes_from_the_wall_clock():
    clock = SimClock(datetime.now(UTC) - timedelta(seconds=5), speed=10_000)
    time.sleep(0.05)
    clock.set_speed(1e-9)  # frozen
    frozen = clock.now_epoch()
    assert abs(frozen - time.time()) < 0.1
    time.sleep(0.1)
    assert clock.now_epoch() - frozen < 1e-3


@run
async def test_an_accelerated_server_sends_no_tick_from_the_future():
    start = datetime.now(UTC) - timedelta(seconds=90)  # 90 s behind at 3000x: caught up in 30 ms
    async with SimulatorServer(sim_start=start, speed=3000, pump_interval_s=0.02) as srv, RawClient(srv.url) as c:
        await c.recv()
        await c.send("quote_create_session", "qs_c")
        await c.send("quote_add_symbols", "qs_c", "BINANCE:BTCUSDT")
        frames = await c.until(method_is("quote_completed"))
        frames += await c.collect(1.5)  # long enough for 75 simulated minutes at 3000x
        stamps = [v["lp_time"] for v in qsd_values(frames, "BINANCE:BTCUSDT") if "lp_time" in v]
        now = time.time()
        # The feed starts where the simulated clock stood when the symbol was added (the clock
        # races at 3000x meanwhile, so how far back that is depends on the machine) and then
        # catches up: a tick every 10 s, no hole, up to the wall clock and never past it.
        assert len(stamps) >= 2 and all(b - a == 10 for a, b in zip(stamps, stamps[1:])), stamps
        assert max(stamps) <= now and max(stamps) >= now - 15
        assert srv.clock.now_epoch() <= time.time()
