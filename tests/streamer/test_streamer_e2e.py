"""Simulator -> real TradingView client -> streamer (in-process) -> bar store + live cache ->
Dagster sensor -> ohlcv_dataset, with accelerated simulated time over a week that crosses a
month end. Every complete streamed bar at all 13 intervals must equal the simulator's
historical bar of the same key; the historical sync then reconciles without differences."""

import asyncio
import os
import warnings
from datetime import UTC, datetime

import dagster as dg
import pytest

from pocketquant_pipelines.defs.datasets import ohlcv_dataset
from pocketquant_pipelines.defs.history import historical_bars
from pocketquant_pipelines.defs.resources import BarStoreResource, TradingViewResource
from pocketquant_pipelines.defs.streaming import streamed_bars_sensor, streamed_vs_history
from pocketquant_pipelines.defs.streaming_spec import STREAMED_BARS
from pocketquant_pipelines.market.intervals import ALL_INTERVALS
from pocketquant_pipelines.settings import load_settings
from pocketquant_pipelines.storage.factory import open_bar_store, open_live_cache
from pocketquant_pipelines.tradingview.client import TradingViewClient
from tradingview_simulator.server import run_simulator_in_thread
from streamer.service import StreamerService
from streamer_helpers import as_synced, compare_with_history, stream_until

warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

BTC, AAPL = "BINANCE:BTCUSDT", "NASDAQ:AAPL"
SIM_START = datetime(2026, 1, 27, 20, 0, tzinfo=UTC)   # Tuesday evening
SIM_END = datetime(2026, 2, 3, 22, 0, tzinfo=UTC)      # a week later, across Jan 31 -> Feb 1
SPEED = 12_000                                          # a simulated week in ~50 s
# At 12,000x the simulator packs several ticks of a symbol into one WebSocket message, as the
# real server packs bursts: the client must turn each of them into its own tick.


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    path = tmp_path / "data"
    path.mkdir()
    for var in ("MONGODB_URL", "REDIS_URL", "TRADINGVIEW_WS_URL", "TRADINGVIEW_AUTH_TOKEN",
                "TRADINGVIEW_USERNAME", "TRADINGVIEW_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("POCKETQUANT_DATA_DIR", str(path))
    monkeypatch.chdir(path)
    return path


def registered(store, market, *symbols):
    """The registry as a first historical sync leaves it: session/timezone/calendar from symbol_resolved."""
    for symbol in symbols:
        store.add_symbol(as_synced(market, symbol))


@pytest.mark.e2e
def test_week_across_month_end_every_bar_exact_then_dagster(data_dir):
    settings = load_settings(dict(os.environ))
    with run_simulator_in_thread(seed=5, speed=SPEED, sim_start=SIM_START, resolve_delay_s=0.0) as server:
        market = server.market
        store, cache = open_bar_store(settings), open_live_cache(settings)
        registered(store, market, BTC, AAPL)
        client = TradingViewClient(url=server.url, backoff_initial_s=0.05, backoff_max_s=0.5)
        service = StreamerService(settings, store=store, cache=cache, client=client, health_port=0,
                                  registry_poll_s=0.2)
        asyncio.run(stream_until(service, server, SIM_END))

        assert service.metrics.store_errors.value == 0 and service.store_writer.depth == 0
        for symbol in (BTC, AAPL):
            state = service.symbols[symbol]
            counts = compare_with_history(store, market, symbol, state.last_t, feed_start_epoch=state.anchor)
            assert all(counts[i.value] > 0 for i in ALL_INTERVALS if i.value not in ("1w", "1M")), counts
        # the week of Jan 26 and January itself began before the stream: partial, never "complete"
        frame = store.read_bars(BTC, "1M")
        assert frame["partial"].tolist() == [True, True]  # Jan (seen in part) and Feb (in progress)
        assert store.read_bars(BTC, "1w")["partial"].all()
        late = sum(s.aggregator.late_ticks for s in service.symbols.values())
        assert late == 0

        # --- Dagster: the sensor sees the writes, the datasets materialise ------------------
        resources = {"bar_store": BarStoreResource(data_dir=str(data_dir)),
                     "tradingview": TradingViewResource(data_dir=str(data_dir), tradingview_ws_url=server.url)}
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("symbols", [BTC, AAPL])
            with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
                result = streamed_bars_sensor(ctx)
            keys = {f"{i.value}|{s}" for i in ALL_INTERVALS for s in (BTC, AAPL)}
            assert {e.partition for e in result.asset_events} == keys
            assert all(e.asset_key == STREAMED_BARS for e in result.asset_events)
            [refresh] = result.run_requests  # one folded dataset refresh for every changed key
            assert set(refresh.run_config["ops"]["rebuild_streamed_datasets"]["config"]["partitions"]) == keys
            for key in ("1m|BINANCE:BTCUSDT", "1h|NASDAQ:AAPL", "1M|NASDAQ:AAPL"):
                res = dg.materialize([ohlcv_dataset], partition_key=key, instance=instance, resources=resources)
                [mat] = res.asset_materializations_for_node("ohlcv_dataset")
                assert mat.partition == key and mat.metadata["rows"].value == store.count_bars(*key.split("|")[::-1])

            # --- a historical sync of the same period: streamed and historical agree ----------
            for key in ("1m|BINANCE:BTCUSDT", "1h|NASDAQ:AAPL", "1d|NASDAQ:AAPL"):
                res = dg.materialize([historical_bars, streamed_vs_history], partition_key=key,
                                     instance=instance, resources=resources)
                [check] = [e for e in res.get_asset_check_evaluations() if e.check_name == "streamed_vs_history"]
                assert check.passed, check.metadata
                assert check.metadata["compared"].value > 0 and check.metadata["differing"].value == 0
        store.close()
        cache.close()
