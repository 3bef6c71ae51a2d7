"""Crash and restart: the real streamer (``python -m streamer``) streams from the simulator, is
SIGKILLed mid-stream, stays down a few market minutes and is started again. The restart
records the downtime hole; ``downtime_healing_sensor`` (evaluated with build_sensor_context)
requests a sync of the symbol's partitions tagged with the hole, the runs go through Dagster
(``materialize`` on a real instance), and afterwards the store holds every bar of the
period, once, equal to TradingView's (the simulator's) history."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from pocketquant_pipelines.defs.healing import (
    HEALING_TRIGGER, HOLE_FROM_TAG, HOLE_SYMBOL_TAG, HOLE_TO_TAG, downtime_healing_sensor,
)
from pocketquant_pipelines.defs.history import historical_bars
from pocketquant_pipelines.defs.keys import TRIGGER_TAG
from pocketquant_pipelines.defs.partitions import SYMBOLS_PARTITIONS_NAME
from pocketquant_pipelines.defs.resources import BarStoreResource, TradingViewResource
from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval
from pocketquant_pipelines.market.sessions import bar_end
from pocketquant_pipelines.settings import load_settings
from pocketquant_pipelines.storage.downtime import open_downtime_log
from pocketquant_pipelines.storage.factory import open_bar_store
from tradingview_simulator import run_simulator_in_thread
from streamer_helpers import as_synced
from tests.support import free_port, wait_for

BTC = "BINANCE:BTCUSDT"
SIM_START = datetime(2026, 1, 30, 15, 0, 5, tzinfo=UTC)


def _default_signals():
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.e2e
def test_sigkill_restart_then_healing_sync_leaves_every_bar_once(tmp_path, monkeypatch):
    data = tmp_path / "data"
    port = free_port()
    with run_simulator_in_thread(seed=4, speed=60, sim_start=SIM_START, resolve_delay_s=0.0) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "TRADINGVIEW_", "REDIS_"))}
        env.update({"POCKETQUANT_DATA_DIR": str(data), "TRADINGVIEW_WS_URL": sim.url,
                    "STREAMER_HEALTH_PORT": str(port), "STREAMER_REGISTRY_POLL_S": "0.2",
                    "STREAMER_STORE_BATCH_MS": "200", "STREAMER_CACHE_FLUSH_MS": "50", "LOG_FORMAT": "json",
                    "SYNC_FIRST_BARS": "300", "SYNC_OVERLAP_BARS": "2", "PYTHONUNBUFFERED": "1"})
        for key in ("POCKETQUANT_DATA_DIR", "TRADINGVIEW_WS_URL", "SYNC_FIRST_BARS", "SYNC_OVERLAP_BARS"):
            monkeypatch.setenv(key, env[key])
        for key in ("MONGODB_URL", "REDIS_URL", "TRADINGVIEW_AUTH_TOKEN"):
            monkeypatch.delenv(key, raising=False)
        settings = load_settings(env, dotenv_path=tmp_path / "none.env")
        with open_bar_store(settings) as store:
            store.add_symbol(as_synced(sim.market, BTC))

        def start(name: str) -> subprocess.Popen:
            with open(tmp_path / f"{name}.log", "w") as fh:
                return subprocess.Popen([sys.executable, "-m", "streamer"], env=env, cwd=tmp_path, stdout=fh,
                                        stderr=subprocess.STDOUT, preexec_fn=_default_signals,
                                        start_new_session=True)

        def written() -> float:
            return _metric(port, "pocketquant_streamer_bars_written_total")

        def beats():
            with open_downtime_log(settings) as log:
                return log.last_beats()

        first = start("first")
        try:
            wait_for(lambda: written() >= 13 * 3, 60, "bars stored by the first streamer")
            wait_for(lambda: BTC in beats(), 30, "a heartbeat")
            wait_for(lambda: written() >= 13 * 6, 60, "more bars")
            first.kill()  # SIGKILL: no flush, no spill, no last heartbeat
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
        killed_at = sim.sim_now()
        time.sleep(5)  # five market minutes nobody streams

        second = start("second")
        try:
            with open_downtime_log(settings) as log:
                holes = wait_for(lambda: log.open_holes(), 60, "the downtime hole recorded")
            base = written()
            wait_for(lambda: written() >= base + 13 * 3, 60, "bars stored after the restart")
            market_at_stop = sim.sim_now()
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
        finally:
            if second.poll() is None:
                second.kill()
        for name in ("first", "second"):
            assert "Traceback" not in (tmp_path / f"{name}.log").read_text()

        [hole] = holes
        assert hole.symbol == BTC and hole.start <= killed_at <= hole.end
        assert (hole.end - hole.start) >= timedelta(minutes=4)

        # the period: from the first stored 1m bar to shortly before the stop
        with open_bar_store(settings) as store:
            period_start = store.read_bars(BTC, Interval.M1).index[0].to_pydatetime()
        cutoff = market_at_stop - timedelta(seconds=10)
        session = sim.market.session(BTC)

        def expected(interval):
            return [b for b in sim.market.bars_between(BTC, interval, period_start.timestamp(), cutoff.timestamp())
                    if b.time >= period_start and bar_end(b.time, interval, session) <= cutoff]

        def stored(interval):
            with open_bar_store(settings) as store:
                frame = store.read_bars(BTC, interval, start=period_start,
                                        end=cutoff)
            return frame

        missing_before = [b.time for b in expected(Interval.M1) if b.time not in set(stored(Interval.M1).index)]
        assert len(missing_before) >= 3, "the kill left no hole: the test would prove nothing"

        # Dagster: the sensor requests the healing, the runs sync through the real asset
        resources = {"bar_store": BarStoreResource(data_dir=str(data)),
                     "tradingview": TradingViewResource(data_dir=str(data), tradingview_ws_url=sim.url)}
        (tmp_path / "dagster_home").mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
            instance.add_dynamic_partitions(SYMBOLS_PARTITIONS_NAME, [BTC])
            with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
                result = downtime_healing_sensor(ctx)
            [request] = result.run_requests
            assert request.tags[TRIGGER_TAG] == HEALING_TRIGGER and request.tags[HOLE_SYMBOL_TAG] == BTC
            assert datetime.fromisoformat(request.tags[HOLE_FROM_TAG]) == hole.start
            assert datetime.fromisoformat(request.tags[HOLE_TO_TAG]) == hole.end
            keys = sorted(request.asset_graph_subset.partitions_subsets_by_asset_key[
                historical_bars.key].get_partition_keys())
            assert keys == sorted(f"{i.value}|{BTC}" for i in ALL_INTERVALS)
            for key in keys:
                run = dg.materialize([historical_bars], partition_key=key, instance=instance,
                                     resources=resources, tags=request.tags)
                assert run.success
            runs = instance.get_runs(filters=dg.RunsFilter(tags={TRIGGER_TAG: HEALING_TRIGGER}))
            assert len(runs) == 13  # the healing is in the run history, tagged with the hole
            with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
                again = downtime_healing_sensor(ctx)
            assert isinstance(again, dg.SkipReason)  # marked requested: not asked twice

    compared = 0
    for interval in ALL_INTERVALS:
        want = expected(interval)
        frame = stored(interval)
        assert list(frame.index.duplicated()) == [False] * len(frame)
        got = {ts.to_pydatetime(): row for ts, row in frame.iterrows()
               if bar_end(ts.to_pydatetime(), interval, session) <= cutoff}
        assert sorted(got) == [b.time for b in want], f"{interval}: stored keys differ from history"
        for b in want:
            row = got[b.time]
            assert not row["partial"], f"{interval} {b.time} still partial"
            assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == \
                (b.open, b.high, b.low, b.close, b.volume), f"{interval} {b.time}"
        compared += len(want)
    assert len(expected(Interval.M1)) >= 15 and compared > len(expected(Interval.M1))
