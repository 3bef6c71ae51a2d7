"""Stream first, then an automatic sync: the real streamer (in-process, real client, simulator)
writes BINANCE:BTCUSDT for a few seconds; then historical_bars runs the way Dagster runs it
(an in-process materialization, bars=None). The sync is a first sync: the store then holds
the full first-sync depth, history's bars, and the streamed copy agrees with them."""

import asyncio
import os
import warnings
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from pocketquant_pipelines.defs.checks import historical_bars_checks
from pocketquant_pipelines.defs.datasets import ohlcv_dataset
from pocketquant_pipelines.defs.history import historical_bars
from pocketquant_pipelines.defs.resources import BarStoreResource, TradingViewResource
from pocketquant_pipelines.defs.streaming import streamed_vs_history
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.settings import load_settings
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.storage.factory import open_bar_store, open_live_cache
from pocketquant_pipelines.sync import plan_request
from pocketquant_pipelines.tradingview.client import TradingViewClient
from tradingview_simulator.server import run_simulator_in_thread
from streamer.service import StreamerService

warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

BTC = "BINANCE:BTCUSDT"
SIM_START = datetime(2026, 2, 4, 9, 0, 5, tzinfo=UTC)
FIRST_BARS = 120


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    path = tmp_path / "data"
    path.mkdir()
    for var in ("MONGODB_URL", "REDIS_URL", "TRADINGVIEW_WS_URL", "TRADINGVIEW_AUTH_TOKEN",
                "TRADINGVIEW_USERNAME", "TRADINGVIEW_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("POCKETQUANT_DATA_DIR", str(path))
    monkeypatch.setenv("SYNC_FIRST_BARS", str(FIRST_BARS))
    monkeypatch.setenv("SYNC_OVERLAP_BARS", "2")
    monkeypatch.chdir(path)
    return path


async def stream_for(service, server, sim_minutes: float):
    task = asyncio.create_task(service.run())
    await asyncio.wait_for(service.started.wait(), 10)
    end = server.sim_now() + timedelta(minutes=sim_minutes)
    while server.sim_now() < end and not task.done():
        await asyncio.sleep(0.05)
    service.request_stop()
    await asyncio.wait_for(task, 20)


def md(event) -> dict:
    return {k: v.value for k, v in event.metadata.items()}


@pytest.mark.e2e
def test_stream_first_then_an_automatic_sync_stores_the_full_first_sync_depth(data_dir):
    settings = load_settings(dict(os.environ))
    with run_simulator_in_thread(seed=8, speed=60, sim_start=SIM_START, resolve_delay_s=0.0) as server:
        store, cache = open_bar_store(settings), open_live_cache(settings)
        spec = server.market.spec(BTC)
        store.add_symbol(SymbolInfo(BTC, timezone=spec.timezone, session=spec.session, stream=True))
        client = TradingViewClient(url=server.url, backoff_initial_s=0.05, backoff_max_s=0.5)
        service = StreamerService(settings, store=store, cache=cache, client=client, health_port=0,
                                  registry_poll_s=0.2, store_batch_ms=100)
        asyncio.run(stream_for(service, server, sim_minutes=5))

        streamed = {iv: store.read_bars(BTC, iv) for iv in ("1m", "1h")}
        assert len(streamed["1m"]) >= 4 and set(streamed["1m"]["source"]) == {"stream"}
        assert streamed["1m"]["partial"].iloc[-1]  # the bar in progress at the stop
        assert store.history_coverage(BTC, "1m") is None  # the stream alone covers nothing

        resources = {"bar_store": BarStoreResource(data_dir=str(data_dir)),
                     "tradingview": TradingViewResource(data_dir=str(data_dir), tradingview_ws_url=server.url)}
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("symbols", [BTC])
            # the Parquet dataset of the streamed series says how many bars are partial
            res = dg.materialize([ohlcv_dataset], partition_key="1m|BINANCE:BTCUSDT", instance=instance,
                                 resources=resources)
            [ds] = res.asset_materializations_for_node("ohlcv_dataset")
            assert md(ds)["partial_rows"] == int(streamed["1m"]["partial"].sum()) >= 1
            assert md(ds)["stream_rows"] == len(streamed["1m"])

            for interval in ("1m", "1h"):
                key = f"{interval}|{BTC}"
                res = dg.materialize([historical_bars, historical_bars_checks, streamed_vs_history],
                                     partition_key=key, instance=instance, resources=resources)
                [mat] = res.asset_materializations_for_node("historical_bars")
                m = md(mat)
                assert m["mode"] == "first", (interval, m)
                assert m["requested_bars"] == m["first_sync_bars"] == FIRST_BARS
                assert m["bars_fetched"] == FIRST_BARS == m["history_bars"]
                frame = store.read_bars(BTC, interval)
                # the full depth, all of it history's (it replaced every streamed bar)
                assert len(frame) == FIRST_BARS == m["stored_bars"]
                assert set(frame["source"]) == {"history"} and not frame["partial"].any()
                assert m["stored_stream_bars"] == 0 and m["stored_partial_bars"] == 0
                checks = {e.check_name: e for e in res.get_asset_check_evaluations()}
                assert checks["history_depth"].passed
                rec = checks["streamed_vs_history"]
                assert rec.passed, rec.metadata
                assert rec.metadata["orphans"].value == 0
                if interval == "1m":  # the stream's complete minutes equal the simulator's history
                    assert rec.metadata["compared"].value >= 3

            # the next automatic sync is incremental from history's last bar (asked at the
            # simulator's now: the asset itself would use the wall clock, months later)
            mode, count = plan_request(store, BTC, Interval.M1, None, first_bars=FIRST_BARS,
                                       overlap_bars=2, now=server.sim_now())
            assert mode == "incremental" and count < 10
        store.close()
        cache.close()
