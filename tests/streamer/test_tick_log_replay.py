"""The tick audit trail end to end: a real ``python -m streamer`` streams a whole simulated UTC
day from the simulator; ``pocketquant rebuild`` re-aggregates that day from the log and finds
every stream bar of the day, at all 13 intervals, equal to its rebuild. Then a streamer is
SIGKILLed: the log names the writer that did not close, and it lost at most one batch."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from pocketquant_pipelines.api import PocketQuant
from pocketquant_pipelines.market.intervals import ALL_INTERVALS
from pocketquant_pipelines.settings import PROJECT_ROOT, load_settings
from pocketquant_pipelines.storage.factory import open_bar_store
from tradingview_simulator import run_simulator_in_thread
from streamer_helpers import as_synced
from tests.support import cli, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

BTC = "BINANCE:BTCUSDT"
DAY = "2026-06-01"  # a Monday, the first of a month: its 1w and 1M bars start on it too
SIM_START = datetime(2026, 5, 31, 23, 58, 0, tzinfo=UTC)
BATCH_MS = 200


def start_streamer(env):
    return subprocess.Popen([sys.executable, "-m", "streamer"], env=env, cwd=PROJECT_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def test_a_streamed_day_rebuilds_from_the_tick_log_and_a_kill_is_accounted(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "TRADINGVIEW_", "REDIS_"))}
    env.update({"POCKETQUANT_DATA_DIR": str(tmp_path / "data"), "STREAMER_HEALTH_PORT": "0",
                "STREAMER_REGISTRY_POLL_S": "0.2", "STREAMER_STORE_BATCH_MS": str(BATCH_MS),
                "STREAMER_CACHE_FLUSH_MS": "50", "TICK_LOG_RETENTION_DAYS": "3650"})
    settings = load_settings(env, dotenv_path=tmp_path / "none.env")
    with run_simulator_in_thread(seed=7, speed=1.0, sim_start=SIM_START, resolve_delay_s=0.0) as sim, \
            PocketQuant(settings) as pq:
        env["TRADINGVIEW_WS_URL"] = sim.url
        with open_bar_store(settings) as store:
            store.add_symbol(as_synced(sim.market, BTC))
        streamer = start_streamer(env)
        try:
            wait_for(lambda: pq.latest_quote(BTC), 120, "the streamer's first quote")
            sim.clock.set_speed(2500)  # the day passes in about 35 s
            wait_for(lambda: sim.clock.now_epoch() > datetime(2026, 6, 2, 0, 10, tzinfo=UTC).timestamp(),
                     300, "the simulated day to pass")
            sim.clock.set_speed(1.0)
            time.sleep(2 * BATCH_MS / 1000 + 1)
        finally:
            streamer.send_signal(signal.SIGTERM)
            _, err = streamer.communicate(timeout=60)
        assert streamer.returncode == 0, err[-2000:]

        with open_bar_store(settings) as store:
            day_start = datetime(2026, 6, 1, tzinfo=UTC)
            streamed = {i.value: store.read_stream_bars(BTC, i, start=day_start) for i in ALL_INTERVALS}
        assert all(len(frame) for frame in streamed.values()), {k: len(v) for k, v in streamed.items()}
        assert len(streamed["1m"]) >= 1400  # the whole day, minute by minute

        rebuilt = cli(env, "rebuild", BTC, "--date", DAY, "-f", "json")
        assert rebuilt.returncode == 0, rebuilt.stdout[-3000:] + rebuilt.stderr[-2000:]
        assert rebuilt.stdout == "" and "0 difference(s)" in rebuilt.stderr, rebuilt.stderr
        assert "did not close" not in rebuilt.stderr

        # the same day with one stored bar altered: the rebuild names it and exits 1
        with open_bar_store(settings) as store:
            bar = store.read_stream_bars(BTC, "1h", start=day_start).iloc[5]
        from pocketquant_pipelines.market.bars import Bar
        from pocketquant_pipelines.market.intervals import Interval
        from pocketquant_pipelines.storage.bars import Source

        with open_bar_store(settings) as store:
            store.upsert_bars([Bar(BTC, Interval.H1, bar.name.to_pydatetime(), bar.open, bar.high + 5.0,
                                   bar.low, bar.close, bar.volume)], source=Source.STREAM)
        changed = cli(env, "rebuild", BTC, "--date", DAY, "-f", "json")
        diffs = [json.loads(line) for line in changed.stdout.splitlines()]
        assert changed.returncode == 1 and [(d["interval"], d["what"]) for d in diffs] == [("1h", "values")]

        # a streamer killed mid-stream: the log says so, and lost at most one batch
        killed = start_streamer(env)
        ticks_day = datetime.fromtimestamp(sim.clock.now_epoch(), UTC).date().isoformat()
        journal = tmp_path / "data" / "ticks" / ticks_day / "_journal.jsonl"

        def second_writer_wrote():
            assert killed.poll() is None, killed.stderr.read()[-2000:]
            lines = journal.read_text().splitlines() if journal.exists() else []
            return sum('"start"' in line for line in lines) >= 2 and '"batch"' in lines[-1]

        wait_for(second_writer_wrote, 120, "the second streamer's first batch")
        time.sleep(1.5)
        os.killpg(killed.pid, signal.SIGKILL)
        killed_at = time.time()
        killed.wait(timeout=30)
        listing = cli(env, "ticks", BTC, "--date", ticks_day, "-f", "json")
        assert listing.returncode == 0, listing.stderr
        notes = [line for line in listing.stderr.splitlines() if line.startswith("note:")]
        assert len(notes) == 1 and "did not close" in notes[0], listing.stderr
        last_received = max(json.loads(line)["received_at"] for line in listing.stdout.splitlines())
        gap = killed_at - datetime.fromisoformat(last_received).timestamp()
        # one batch period, plus the time a loaded machine takes to run the flush and the kill
        assert gap < BATCH_MS / 1000 + 3.0, gap
