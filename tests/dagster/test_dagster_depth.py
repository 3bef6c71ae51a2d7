"""First syncs are first syncs, depth is visible, and implausible times never steer a sync:
the planner against real stores, the sync against the simulator, the checks in real Dagster
runs."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from pocketquant_pipelines.defs.checks import evaluate_depth, evaluate_plausible_times, historical_bars_checks
from pocketquant_pipelines.defs.history import historical_bars
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.storage.bars import HistoryCoverage, Source
from pocketquant_pipelines.sync import plan_request, sync_history
from pocketquant_pipelines.tradingview.client import TradingViewClient
from tradingview_simulator.server import run_simulator_in_thread

from dagster_helpers import register

BTC, AAPL = "BINANCE:BTCUSDT", "NASDAQ:AAPL"
YEAR_3000 = datetime(3000, 1, 1, tzinfo=UTC)


def md(mat) -> dict:
    return {k: v.value for k, v in mat.metadata.items()}


def materialize(key, instance, resources, bars=None, raise_on_error=True):
    config = (dg.RunConfig(ops={"historical_bars": {"config": {"bars": bars}}})
              if bars is not None else None)
    result = dg.materialize([historical_bars, historical_bars_checks], partition_key=key,
                            instance=instance, resources=resources, run_config=config,
                            raise_on_error=raise_on_error)
    [mat] = result.asset_materializations_for_node("historical_bars")
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    return md(mat), checks


def bar_at(t: datetime, close: float = 100.0) -> Bar:
    return Bar(BTC, Interval.H1, t, close, close + 1, close - 1, close, 5.0)


# --------------------------------------------------------------------------- the planner
def test_the_planner_decides_from_history_never_from_stream_bars(store):
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    plan = dict(first_bars=500, overlap_bars=2, now=now)
    hours = [now - timedelta(hours=h) for h in range(30, 0, -1)]
    store.upsert_bars([bar_at(t) for t in hours[-6:]], source=Source.STREAM)
    assert plan_request(store, BTC, Interval.H1, None, **plan) == ("first", 500)
    store.upsert_bars([bar_at(t) for t in hours[:10]])  # history up to 21 hours ago
    # incremental from history's last bar, not the stream's (which is an hour old)
    assert plan_request(store, BTC, Interval.H1, None, **plan) == ("incremental", 21 + 2)
    assert plan_request(store, BTC, Interval.H1, 7, **plan) == ("explicit", 7)


def test_the_planner_ignores_bars_dated_beyond_now_plus_the_skew(store):
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    plan = dict(first_bars=500, overlap_bars=2, now=now, clock_skew_s=300.0)
    store.upsert_bars([bar_at(YEAR_3000)])  # a store written before clock checks existed
    assert plan_request(store, BTC, Interval.H1, None, **plan) == ("first", 500)
    store.upsert_bars([bar_at(now - timedelta(hours=h)) for h in range(10, 4, -1)])
    assert store.history_coverage(BTC, "1h").last_time == YEAR_3000
    assert plan_request(store, BTC, Interval.H1, None, **plan) == ("incremental", 5 + 2)
    # within the skew is plausible: a bar starting 4 minutes "early" is not ignored
    store.upsert_bars([bar_at(now + timedelta(minutes=4))])
    assert plan_request(store, BTC, Interval.H1, None, **plan) == ("incremental", 3)


# --------------------------------------------------------------------------- the checks' judgements
def test_depth_judgement():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    deep = evaluate_depth(HistoryCoverage(t0, t0, 300), first_bars=300)
    assert deep.passed
    shallow = evaluate_depth(HistoryCoverage(t0, t0, 18), first_bars=300)
    assert not shallow.passed and shallow.severity == "WARN" and not shallow.blocking
    assert shallow.description.startswith("shallow: 18 history bars")
    assert shallow.metadata["history_bars"] == 18 and shallow.metadata["first_sync_bars"] == 300
    young = evaluate_depth(HistoryCoverage(t0, t0, 18, history_start=t0), first_bars=300)
    assert young.passed and young.metadata["history_ended"] is True
    assert not evaluate_depth(None, first_bars=300).passed


def test_plausible_times_judgement():
    import pandas as pd

    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    times = [datetime(1969, 12, 31, tzinfo=UTC), now - timedelta(hours=1), now + timedelta(minutes=4),
             now + timedelta(minutes=6), YEAR_3000]
    frame = pd.DataFrame({"close": range(5)}, index=pd.DatetimeIndex(times, name="time"))
    out = evaluate_plausible_times(frame, now, 300.0)
    assert not out.passed and out.severity == "ERROR" and not out.blocking
    assert (out.metadata["future_bars"], out.metadata["before_epoch_bars"]) == (2, 1)
    assert out.metadata["examples"].data == [times[0].isoformat(), times[3].isoformat(), times[4].isoformat()]
    assert evaluate_plausible_times(frame.iloc[1:3], now, 300.0).passed


# --------------------------------------------------------------------------- real syncs
def test_a_stored_year_3000_bar_does_not_stop_the_next_sync_from_filling_the_gap(settings, store):
    # the clock jumps 5 h below and never passes the wall clock: start a day back
    start = datetime.now(UTC) - timedelta(days=1)
    with run_simulator_in_thread(seed=5, resolve_delay_s=0.0, sim_start=start) as sim:
        cfg = settings.model_copy(update={"tradingview_ws_url": sim.url})

        def sync(**kw):
            client = TradingViewClient.from_settings(cfg, clock=lambda: sim.sim_now().timestamp())
            return sync_history(store, client, BTC, "1h", first_bars=100, overlap_bars=2,
                                now=sim.sim_now(), **kw)

        assert sync().mode == "first"
        # year-3000 bars from an earlier bug, written by history and by the stream
        store.upsert_bars([bar_at(YEAR_3000)])
        store.upsert_bars([bar_at(YEAR_3000 + timedelta(hours=1))], source=Source.STREAM)
        sim.clock.jump(5 * 3600)
        second = sync()
        assert second.mode == "incremental" and 7 <= second.requested_bars <= 8
        assert second.inserted == 5 and second.stored_implausible_bars == 2
        assert second.history_bars == 105 and second.history_last_time < YEAR_3000
        assert "2 stored bar(s) dated beyond now + skew" in second.summary()
        plausible = store.read_bars(BTC, "1h", end=YEAR_3000)
        steps = plausible.index.to_series().diff().dropna().dt.total_seconds().unique()
        assert len(plausible) == 105 and list(steps) == [3600.0]  # no hole


def test_dagster_flags_stored_year_3000_bars_and_a_shallow_series(instance, resources, store):
    register(store, instance, BTC)
    key = "1d|BINANCE:BTCUSDT"
    m, checks = materialize(key, instance, resources, bars=20)  # a shallow explicit sync
    assert m["mode"] == "explicit" and m["history_bars"] == 20 and m["first_sync_bars"] == 300
    assert not checks["history_depth"].passed
    assert checks["history_depth"].severity == dg.AssetCheckSeverity.WARN
    assert checks["history_depth"].description.startswith("shallow: 20 history bars")
    assert checks["plausible_bar_times"].passed

    store.upsert_bars([Bar(BTC, Interval.D1, YEAR_3000, 1.0, 2.0, 0.5, 1.5, 1.0)], source=Source.STREAM)
    m, checks = materialize(key, instance, resources)
    assert m["mode"] == "incremental" and m["requested_bars"] <= 4  # from history's last bar
    assert m["stored_implausible_bars"] == 1 and m["stored_stream_bars"] == 1
    bad = checks["plausible_bar_times"]
    assert not bad.passed and bad.severity == dg.AssetCheckSeverity.ERROR
    assert bad.metadata["future_bars"].value == 1
    assert bad.metadata["examples"].data == [YEAR_3000.isoformat()]


def test_a_series_as_deep_as_the_server_goes_is_not_shallow(instance, resources, store):
    register(store, instance, BTC)
    # the simulator's monthly history starts in 2019: fewer bars than the first-sync depth
    m, checks = materialize("1M|BINANCE:BTCUSDT", instance, resources)
    assert m["mode"] == "first" and m["depth_reached"] is True
    assert m["history_bars"] < m["first_sync_bars"] and m["history_ended"] is True
    assert m["history_start"] == m["history_first_time"]
    assert checks["history_depth"].passed
    # later incremental syncs (which the server fully serves) keep knowing it
    m, checks = materialize("1M|BINANCE:BTCUSDT", instance, resources)
    assert m["mode"] == "incremental" and m["depth_reached"] is False and m["history_ended"] is True
    assert checks["history_depth"].passed


def test_history_rows_dated_in_the_year_3000_are_rejected_and_reported(instance, resources, store, simulator):
    register(store, instance, AAPL)
    simulator.faults.history_extra_times = (YEAR_3000.timestamp(),)
    try:
        m, checks = materialize("1h|NASDAQ:AAPL", instance, resources)
    finally:
        simulator.faults.history_extra_times = ()
    assert m["rejected_times"] == 1 and m["bars_fetched"] == 300 == m["history_bars"]
    assert m["stored_implausible_bars"] == 0 and checks["plausible_bar_times"].passed
    assert store.read_bars(AAPL, "1h").index[-1].year < 3000
