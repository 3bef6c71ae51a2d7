"""History rows dated beyond now + POCKETQUANT_CLOCK_SKEW_S or before the epoch: the real
client against the simulator serving them (fault ``history_extra_times``) rejects and counts
them; `pocketquant fetch` says so."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.tradingview.client import TradingViewClient, fetch_history_sync
from tradingview_simulator.faults import FaultConfig
from tradingview_simulator.server import run_simulator_in_thread

ROOT = Path(__file__).resolve().parents[2]
SIM_START = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)
YEAR_3000 = datetime(3000, 1, 1, tzinfo=UTC).timestamp()
BEFORE_EPOCH = -86_400.0
BTC = "BINANCE:BTCUSDT"
FAST = dict(backoff_initial_s=0.01, backoff_max_s=0.1, request_timeout_s=20)


def test_year_3000_and_pre_epoch_rows_are_rejected_and_counted():
    faults = FaultConfig(history_extra_times=(YEAR_3000, BEFORE_EPOCH))
    with run_simulator_in_thread(seed=7, sim_start=SIM_START, faults=faults, resolve_delay_s=0.0) as server:
        result = fetch_history_sync(BTC, "1h", 100, url=server.url, **FAST)
        assert server.stats.extra_history_rows == 2  # the server really sent them
        truth = {b.time for b in server.market.history(BTC, "1h", server.sim_now(), 101)}
    assert result.implausible_times == 2
    assert len(result.bars) == 100 and not result.depth_reached
    # the real bars, all of them (the newest may not have opened yet when the server answered)
    assert {b.time for b in result.bars} <= truth
    assert all(b.time.year == 2026 for b in result.bars)


def test_the_bound_is_the_clients_clock_plus_the_skew():
    # a client whose clock is 3 hours behind the server's: the newest bars are "future"
    mid_hour = SIM_START.replace(minute=30)  # the 15:00 bar has opened and traded
    with run_simulator_in_thread(seed=7, sim_start=mid_hour, resolve_delay_s=0.0) as server:
        behind = server.sim_now().timestamp() - 3 * 3600  # 12:30

        async def fetch(skew):
            async with TradingViewClient(url=server.url, clock=lambda: behind, clock_skew_s=skew,
                                         **FAST) as tv:
                return await tv.fetch_history(BTC, "1h", 50)

        import asyncio

        tight = asyncio.run(fetch(300.0))
        loose = asyncio.run(fetch(4 * 3600.0))
    bound = behind + 300.0
    assert loose.implausible_times == 0 and len(loose.bars) == 50
    assert loose.bars[-1].time == mid_hour.replace(minute=0)
    # 13:00, 14:00 and 15:00 start after 12:35
    assert tight.implausible_times == 3
    assert tight.bars == [b for b in loose.bars if b.time.timestamp() <= bound]


def test_a_bad_skew_is_refused_by_name():
    with pytest.raises(InvalidInputError, match="clock_skew_s=0"):
        TradingViewClient(clock_skew_s=0)


def test_fetch_command_says_how_many_rows_it_rejected(tmp_path):
    faults = FaultConfig(history_extra_times=(YEAR_3000,))
    with run_simulator_in_thread(seed=11, sim_start=SIM_START, faults=faults) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGVIEW_", "POCKETQUANT_"))}
        env["POCKETQUANT_DATA_DIR"] = str(tmp_path / "data")
        proc = subprocess.run(
            [sys.executable, "-m", "pocketquant_pipelines", "fetch", BTC, "--interval", "1d",
             "--bars", "20", "--format", "csv", "--ws-url", server.url],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 21 and not any(line.startswith("3000") for line in lines)
    assert proc.stderr.strip() == (
        f"note: {BTC} 1d: 1 bar(s) rejected: dated beyond now + 300 s "
        "(POCKETQUANT_CLOCK_SKEW_S) or before 1970")
