"""The Dagster side against a real embedded bar store and a real (temporary) Dagster instance:
the sensor reports streamed_bars and requests ohlcv_dataset; the reconciliation check."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from pocketquant_pipelines.defs.datasets import streamed_dataset_refresh
from pocketquant_pipelines.defs.history import HISTORICAL_BARS
from pocketquant_pipelines.defs.resources import BarStoreResource
from pocketquant_pipelines.defs.streaming import streamed_bars_sensor, streamed_vs_history
from pocketquant_pipelines.defs.streaming_spec import STREAMED_BARS
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.storage.bars import Source
from pocketquant_pipelines.storage.sqlite_store import SQLiteBarStore
from pocketquant_pipelines.quality.reconcile import reconcile

T0 = datetime(2026, 1, 26, tzinfo=UTC)
BTC, AAPL, ETH = "BINANCE:BTCUSDT", "NASDAQ:AAPL", "BINANCE:ETHUSDT"


def mk(symbol, interval, i, close=100.0, volume=5.0) -> Bar:
    step = timedelta(minutes=Interval.parse(interval).minutes or 1440)
    return Bar(symbol, Interval.parse(interval), T0 + i * step, close, close + 1, close - 1, close, volume)


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def store(data_dir):
    data_dir.mkdir(parents=True, exist_ok=True)
    s = SQLiteBarStore(data_dir / "bars.sqlite3")
    yield s
    s.close()


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def refresh_keys(request) -> list[str]:
    return request.run_config["ops"]["rebuild_streamed_datasets"]["config"]["partitions"]


def evaluate(instance, data_dir, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor,
                                 resources={"bar_store": BarStoreResource(data_dir=str(data_dir))}) as ctx:
        return streamed_bars_sensor(ctx)


def test_sensor_reports_stream_writes_and_requests_datasets(instance, store, data_dir):
    instance.add_dynamic_partitions("symbols", [BTC, AAPL])
    store.upsert_bars([mk(BTC, "1m", i) for i in range(3)], source=Source.STREAM)
    store.upsert_bars([mk(BTC, "5m", 0)], source=Source.STREAM)
    store.upsert_bars([mk(ETH, "1m", 0)], source=Source.STREAM)          # not a partition: skipped
    store.upsert_bars([mk(AAPL, "1d", 0)], source=Source.HISTORY)        # history: not ours

    result = evaluate(instance, data_dir)
    events = {e.partition: e for e in result.asset_events}
    assert set(events) == {"1m|BINANCE:BTCUSDT", "5m|BINANCE:BTCUSDT"}
    assert all(e.asset_key == STREAMED_BARS for e in events.values())
    assert events["1m|BINANCE:BTCUSDT"].metadata["bars_written"].value == 3
    # one folded refresh run covers every changed partition
    [request] = result.run_requests
    requests = refresh_keys(request)
    assert set(requests) == set(events)
    assert request.tags["pocketquant/symbol"] == BTC and request.tags["pocketquant/trigger"] == "streamer"
    assert result.cursor

    # the same cursor again (a retried tick) yields the same run key: nothing runs twice
    again = evaluate(instance, data_dir)
    assert [r.run_key for r in again.run_requests] == [request.run_key]

    # nothing new after the committed cursor
    idle = evaluate(instance, data_dir, cursor=result.cursor)
    assert not getattr(idle, "run_requests", None) and not getattr(idle, "asset_events", None)

    # a new write within the rebuild period: reported at once, its rebuild waits in the cursor
    store.upsert_bars([mk(BTC, "1m", 3)], source=Source.STREAM)
    later = evaluate(instance, data_dir, cursor=result.cursor)
    assert [e.partition for e in later.asset_events] == ["1m|BINANCE:BTCUSDT"]
    assert not later.run_requests
    assert json.loads(later.cursor)["dirty"] == ["1m|BINANCE:BTCUSDT"]
    # once the period has passed, the waiting key gets its own refresh run with a new run key
    aged = json.loads(later.cursor)
    aged["rebuilt_at"] -= 3600
    due = evaluate(instance, data_dir, cursor=json.dumps(aged))
    [rebuild] = due.run_requests
    assert refresh_keys(rebuild) == ["1m|BINANCE:BTCUSDT"] and rebuild.run_key != request.run_key

    # the refresh run materialises every requested partition of ohlcv_dataset
    res = streamed_dataset_refresh.execute_in_process(
        run_config=request.run_config, instance=instance, tags=request.tags,
        resources={"bar_store": BarStoreResource(data_dir=str(data_dir))})
    assert res.success
    mats = {m.partition: m for m in res.asset_materializations_for_node("rebuild_streamed_datasets")}
    assert set(mats) == set(requests)
    assert all(m.asset_key == dg.AssetKey("ohlcv_dataset") for m in mats.values())
    assert mats["1m|BINANCE:BTCUSDT"].metadata["rows"].value == 4
    assert instance.get_latest_materialization_event(dg.AssetKey("ohlcv_dataset")) is not None


def test_reconcile_compares_stream_copy_with_history(store):
    stream = [mk(BTC, "1m", i, close=100 + i, volume=5) for i in range(6)]
    store.upsert_bars(stream[:5], source=Source.STREAM)
    store.upsert_bars(stream[5:], source=Source.STREAM, partial=True)
    history = [mk(BTC, "1m", i, close=100 + i, volume=5) for i in range(6)]
    history[2] = mk(BTC, "1m", 2, close=102, volume=7)   # volume differs
    history[5] = mk(BTC, "1m", 5, close=999, volume=1)   # the partial bar: expected to differ
    store.upsert_bars(history, source=Source.HISTORY)
    r = reconcile(store, BTC, "1m")
    assert (r.compared, r.differing, r.partial_skipped) == (5, 1, 1)
    assert r.worst_volume_deviation == pytest.approx(2 / 7)
    assert r.worst_price_deviation == 0.0
    assert r.worst_time == (T0 + timedelta(minutes=2)).isoformat()


def test_reconciliation_check_warns_after_a_sync_that_disagrees(instance, store, data_dir, monkeypatch):
    """historical_bars (synced from the simulator) + the check, in one real Dagster run."""
    from pocketquant_pipelines.defs.history import historical_bars
    from pocketquant_pipelines.defs.resources import TradingViewResource
    from pocketquant_pipelines.storage.registry import SymbolInfo
    from tradingview_simulator.server import run_simulator_in_thread

    monkeypatch.setenv("SYNC_FIRST_BARS", "50")
    with run_simulator_in_thread(seed=3, sim_start=datetime(2026, 2, 2, 12, tzinfo=UTC), resolve_delay_s=0.0) as server:
        resources = {"bar_store": BarStoreResource(data_dir=str(data_dir)),
                     "tradingview": TradingViewResource(data_dir=str(data_dir), tradingview_ws_url=server.url)}
        store.add_symbol(SymbolInfo(BTC))
        instance.add_dynamic_partitions("symbols", [BTC])
        truth = server.market.history(BTC, "1h", end=server.sim_now(), count=20)[:-1]  # complete ones
        streamed = list(truth)
        bad = streamed[5]
        streamed[5] = Bar(bad.symbol, bad.interval, bad.time, bad.open, bad.high * 1.01, bad.low, bad.close, bad.volume)
        store.upsert_bars(streamed, source=Source.STREAM)

        def run():
            res = dg.materialize([historical_bars, streamed_vs_history], partition_key="1h|BINANCE:BTCUSDT",
                                 instance=instance, resources=resources)
            [ev] = [e for e in res.get_asset_check_evaluations() if e.check_name == "streamed_vs_history"]
            return ev

        ev = run()
        assert not ev.passed and ev.severity == dg.AssetCheckSeverity.WARN
        md = {k: v.value for k, v in ev.metadata.items()}
        assert md["compared"] == 19 and md["differing"] == 1
        assert md["worst_price_deviation"] == pytest.approx(bad.high * 0.01 / bad.high)
        assert md["worst_time"] == bad.time.isoformat()
        # the stream writes the corrected bar (as it would for a live bar): the check passes
        store.upsert_bars([bad], source=Source.STREAM)
        ev = run()
        assert ev.passed and ev.metadata["differing"].value == 0


def test_reconcile_reports_stream_keys_history_lacks_inside_its_range(store):
    week = lambda d: Bar(BTC, Interval.W1, d, 100.0, 101.0, 99.0, 100.0, 5.0)  # noqa: E731
    mon, holiday, mon3, mon4 = (datetime(2026, 1, 26, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC),
                                datetime(2026, 2, 9, tzinfo=UTC), datetime(2026, 2, 16, tzinfo=UTC))
    tuesday = holiday + timedelta(days=1)  # history starts that week at its first trading day
    store.upsert_bars([week(mon), week(holiday), week(mon4)], source=Source.STREAM)
    store.upsert_bars([week(holiday + timedelta(days=1, hours=1))], source=Source.STREAM, partial=True)
    r = reconcile(store, BTC, "1w")
    assert (r.orphans, r.history_first) == (0, None)  # no history yet: nothing is an orphan
    store.upsert_bars([week(mon), week(tuesday), week(mon3)])
    r = reconcile(store, BTC, "1w")
    # the holiday-Monday key and the odd partial one lie inside history's range; the week of
    # the 16th is after history's last bar (not an orphan, history has not got there)
    assert r.orphans == 2 and not r.passed
    assert r.orphan_examples == (holiday.isoformat(), (tuesday + timedelta(hours=1)).isoformat())
    assert (r.compared, r.differing) == (1, 0)
    assert (r.history_first, r.history_last) == (mon.isoformat(), mon3.isoformat())
    # the orphan is what a reader of the canonical bars sees: two bars for one week
    canon = store.read_bars(BTC, "1w")
    assert canon.loc[holiday, "source"] == "stream" and canon.loc[tuesday, "source"] == "history"


def test_reconciliation_check_warns_about_orphans(instance, store, data_dir, monkeypatch):
    """historical_bars + streamed_vs_history in one real Dagster run, the orphan planted
    between two historical keys."""
    from pocketquant_pipelines.defs.history import historical_bars
    from pocketquant_pipelines.defs.resources import TradingViewResource
    from pocketquant_pipelines.storage.registry import SymbolInfo
    from tradingview_simulator.server import run_simulator_in_thread

    monkeypatch.setenv("SYNC_FIRST_BARS", "50")
    with run_simulator_in_thread(seed=3, sim_start=datetime(2026, 2, 2, 12, tzinfo=UTC), resolve_delay_s=0.0) as server:
        resources = {"bar_store": BarStoreResource(data_dir=str(data_dir)),
                     "tradingview": TradingViewResource(data_dir=str(data_dir), tradingview_ws_url=server.url)}
        store.add_symbol(SymbolInfo(BTC))
        instance.add_dynamic_partitions("symbols", [BTC])
        truth = server.market.history(BTC, "1h", end=server.sim_now(), count=20)[:-1]
        odd = truth[7]
        orphan = Bar(BTC, Interval.H1, odd.time + timedelta(minutes=30), odd.open, odd.high, odd.low,
                     odd.close, odd.volume)  # a key no hourly history has
        store.upsert_bars([*truth, orphan], source=Source.STREAM)
        res = dg.materialize([historical_bars, streamed_vs_history], partition_key="1h|BINANCE:BTCUSDT",
                             instance=instance, resources=resources)
        [ev] = [e for e in res.get_asset_check_evaluations() if e.check_name == "streamed_vs_history"]
    assert not ev.passed and ev.severity == dg.AssetCheckSeverity.WARN
    md = {k: v.value for k, v in ev.metadata.items()}
    assert md["orphans"] == 1 and md["differing"] == 0 and md["compared"] == 19
    assert md["orphan_examples"] == [f"1h|{BTC}@{orphan.time.isoformat()}"]
    assert "1 streamed bar(s) under keys history lacks" in ev.description
