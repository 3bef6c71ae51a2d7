"""historical_bars against the simulator on a real (temporary) Dagster instance."""

import dagster as dg
import pytest

from pocketquant_pipelines.defs.checks import historical_bars_checks
from pocketquant_pipelines.defs.history import historical_bars
from pocketquant_pipelines.defs.keys import HISTORICAL_BARS

from dagster_helpers import register

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def materialize_one(key, instance, resources, bars=None, raise_on_error=True):
    config = (dg.RunConfig(ops={"historical_bars": {"config": {"bars": bars}}})
              if bars is not None else None)
    return dg.materialize([historical_bars, historical_bars_checks], partition_key=key,
                          instance=instance, resources=resources, run_config=config,
                          raise_on_error=raise_on_error)


def md(mat) -> dict:
    return {k: v.value for k, v in mat.metadata.items()}


def test_first_incremental_and_resync_never_duplicate(instance, resources, store, simulator):
    register(store, instance, "NASDAQ:AAPL")
    key = "1d|NASDAQ:AAPL"

    first = materialize_one(key, instance, resources)
    [mat] = first.asset_materializations_for_node("historical_bars")
    m = md(mat)
    assert mat.partition == key
    assert m["mode"] == "first" and m["requested_bars"] == 300 and m["source"] == "simulator"
    assert m["bars_fetched"] == 300 and m["bars_inserted"] == 300 and m["bars_updated"] == 0
    assert m["stored_bars"] == m["dagster/row_count"] == 300 == store.count_bars("NASDAQ:AAPL", "1d")
    frame = store.read_bars("NASDAQ:AAPL", "1d")
    assert m["first_bar_time"] == frame.index[0].timestamp()
    assert m["last_bar_time"] == frame.index[-1].timestamp()
    # the simulator's bars are what its oracle says they are
    oracle = simulator.market.history("NASDAQ:AAPL", "1d", simulator.sim_now(), 300)
    assert [b.time for b in oracle][-1] == frame.index[-1].to_pydatetime()
    checks = {e.check_name: e.passed for e in first.get_asset_check_evaluations()}
    assert checks == {"ohlc_sanity": True, "no_duplicate_bars": True, "no_gaps": True,
                      "fresh_last_bar": True, "history_depth": True, "plausible_bar_times": True}
    # depth visible: history reaches the first-sync depth
    assert m["history_bars"] == m["first_sync_bars"] == 300 and m["history_ended"] is False
    assert m["history_first_time"] == frame.index[0].timestamp()
    assert m["rejected_times"] == 0 and m["stored_implausible_bars"] == 0
    assert m["stored_stream_bars"] == 0 and m["stored_partial_bars"] == 0
    # symbol_resolved metadata went into the registry (the gap check reads the session from it)
    info = store.get_symbol("NASDAQ:AAPL")
    assert info.timezone == "America/New_York" and info.session and info.type == "stock"

    second = materialize_one(key, instance, resources)
    m2 = md(second.asset_materializations_for_node("historical_bars")[0])
    assert m2["mode"] == "incremental"
    assert 3 <= m2["requested_bars"] < 10          # overlap (2) + the bars since the last one
    assert m2["bars_inserted"] == 0                # nothing new in the same minute for 1d
    assert m2["bars_updated"] + m2["bars_unchanged"] == m2["bars_fetched"]
    assert store.count_bars("NASDAQ:AAPL", "1d") == 300

    third = materialize_one(key, instance, resources, bars=50)
    m3 = md(third.asset_materializations_for_node("historical_bars")[0])
    assert m3["mode"] == "explicit" and m3["requested_bars"] == 50 and m3["bars_inserted"] == 0
    again = store.read_bars("NASDAQ:AAPL", "1d")
    assert len(again) == 300 and again.index.is_unique

    # run history is the sync status: three materializations of this partition
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=HISTORICAL_BARS, asset_partitions=[key]), limit=10).records
    assert [md(r.asset_materialization)["mode"] for r in records] == ["explicit", "incremental", "first"]


def test_unknown_symbol_fails_with_the_servers_reason(instance, resources, store):
    register(store, instance, "NASDAQ:NOSUCH")
    result = materialize_one("1d|NASDAQ:NOSUCH", instance, resources, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    text = failure.step_failure_data.user_failure_data.description
    assert "1d|NASDAQ:NOSUCH" in text and "SymbolNotFoundError" in text
    assert failure.step_failure_data.user_failure_data.metadata["failed_count"].value == 1
    # permanent: no retry
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    # the reason is kept per partition for `pocketquant status`
    obs = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=HISTORICAL_BARS, asset_partitions=["1d|NASDAQ:NOSUCH"]),
        limit=1).records
    assert "NOSUCH" in obs[0].asset_observation.metadata["sync_error"].value
    status = instance.get_status_by_partition(HISTORICAL_BARS, ["1d|NASDAQ:NOSUCH"],
                                              historical_bars.partitions_def)
    assert status["1d|NASDAQ:NOSUCH"].value == "FAILED"
    assert store.count_bars("NASDAQ:NOSUCH", "1d") == 0


@pytest.mark.parametrize("bars", [0, -5, 10**9])
def test_bad_bar_count_is_rejected_naming_the_value(instance, resources, store, bars):
    register(store, instance, "NASDAQ:AAPL")
    result = materialize_one("1d|NASDAQ:AAPL", instance, resources, bars=bars, raise_on_error=False)
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert f"bars={bars} is out of range" in failure.step_failure_data.error.message
    assert store.count_bars("NASDAQ:AAPL", "1d") == 0


def test_range_run_gives_every_partition_its_own_metadata(instance, resources, store):
    symbols = ["NASDAQ:AAPL", "BINANCE:BTCUSDT", "SP:SPX"]
    register(store, instance, *symbols)
    result = dg.materialize(
        [historical_bars, historical_bars_checks], instance=instance, resources=resources,
        tags={RANGE_START: "1h|NASDAQ:AAPL", RANGE_END: "1h|SP:SPX"},
        run_config=dg.RunConfig(ops={"historical_bars": {"config": {"bars": 120}}}),
    )
    assert result.success
    mats = {m.partition: md(m) for m in result.asset_materializations_for_node("historical_bars")}
    assert set(mats) == {f"1h|{s}" for s in symbols}
    for symbol in symbols:
        m = mats[f"1h|{symbol}"]
        frame = store.read_bars(symbol, "1h")
        assert m["symbol"] == symbol and m["interval"] == "1h"
        assert m["bars_fetched"] == 120 and m["stored_bars"] == len(frame) == 120
        assert m["last_bar_time"] == frame.index[-1].timestamp()
    # crypto trades at night, the index does not: different last bars prove per-key metadata
    assert len({m["last_bar_time"] for m in mats.values()}) >= 2
    # the checks were evaluated per partition inside the range run
    evals = [(e.partition, e.check_name, e.passed) for e in result.get_asset_check_evaluations()]
    for symbol in symbols:
        assert (f"1h|{symbol}", "ohlc_sanity", True) in evals
        assert (f"1h|{symbol}", "no_duplicate_bars", True) in evals
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=HISTORICAL_BARS, asset_partitions=["1h|SP:SPX"]), limit=5).records
    assert len(records) == 1 and md(records[0].asset_materialization)["symbol"] == "SP:SPX"


def test_range_run_keeps_going_past_a_bad_symbol(instance, resources, store):
    register(store, instance, "NASDAQ:AAPL", "NASDAQ:NOSUCH", "BINANCE:BTCUSDT")
    result = dg.materialize(
        [historical_bars], instance=instance, resources=resources, raise_on_error=False,
        tags={RANGE_START: "1d|NASDAQ:AAPL", RANGE_END: "1d|BINANCE:BTCUSDT"},
    )
    assert not result.success
    mats = {m.partition for m in result.asset_materializations_for_node("historical_bars")}
    assert mats == {"1d|NASDAQ:AAPL", "1d|BINANCE:BTCUSDT"}
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    description = failure.step_failure_data.user_failure_data.description
    assert "1 of 3 partition(s) failed" in description and "1d|NASDAQ:NOSUCH" in description
    keys = ["1d|NASDAQ:AAPL", "1d|NASDAQ:NOSUCH", "1d|BINANCE:BTCUSDT"]
    status = instance.get_status_by_partition(HISTORICAL_BARS, keys, historical_bars.partitions_def)
    assert {k: v.value for k, v in status.items()} == {
        "1d|NASDAQ:AAPL": "MATERIALIZED", "1d|NASDAQ:NOSUCH": "FAILED",
        "1d|BINANCE:BTCUSDT": "MATERIALIZED"}
    assert store.count_bars("NASDAQ:AAPL", "1d") == 300


def _unchecked_bar(**values):
    """A Bar that skips Bar's own validation: how a corrupt row would look to the checks."""
    from pocketquant_pipelines.market.bars import Bar

    bar = object.__new__(Bar)
    for name, value in values.items():
        object.__setattr__(bar, name, value)
    return bar


def test_blocking_ohlc_check_fails_the_run_on_a_planted_bad_bar(instance, resources, store):
    register(store, instance, "NASDAQ:AAPL")
    materialize_one("1d|NASDAQ:AAPL", instance, resources, bars=40)
    oldest = store.read_bars("NASDAQ:AAPL", "1d").iloc[[0]]
    t = oldest.index[0].to_pydatetime()
    from pocketquant_pipelines.market.intervals import Interval

    store.upsert_bars([_unchecked_bar(symbol="NASDAQ:AAPL", interval=Interval.D1, time=t,
                                      open=10.0, high=9.0, low=11.0, close=10.0, volume=5.0)])
    # a small re-sync leaves the oldest (planted) bar alone; reading the series back refuses
    # it (reads validate what they decode), and the blocking OHLC check fails naming it
    result = materialize_one("1d|NASDAQ:AAPL", instance, resources, bars=5, raise_on_error=False)
    assert not result.success
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evals["ohlc_sanity"].passed
    assert t.strftime("%Y-%m-%dT%H:%M") in evals["ohlc_sanity"].description
    assert "high 9.0 < low 11.0" in evals["ohlc_sanity"].description
    # the store still holds every bar, the planted one included, for doctor and a re-sync
    assert store.count_bars("NASDAQ:AAPL", "1d") == 40


class FlakyTradingView:
    """Wraps the real client: the first request of every key times out (a transient error)."""

    def __init__(self, client, failures_per_key=1):
        self.client, self.left, self.calls = client, {}, 0
        self.failures_per_key = failures_per_key

    async def fetch_history(self, symbol, interval, bars, **kwargs):
        from pocketquant_pipelines.tradingview.errors import HistoryTimeoutError

        self.calls += 1
        key = (symbol, str(interval))
        left = self.left.setdefault(key, self.failures_per_key)
        if left:
            self.left[key] = left - 1
            raise HistoryTimeoutError(f"no series_completed for {symbol}", symbol=symbol)
        return await self.client.fetch_history(symbol, interval, bars, **kwargs)


def test_transient_errors_are_retried_per_key(instance, resources, store, monkeypatch):
    import contextlib

    from pocketquant_pipelines.defs import history
    from pocketquant_pipelines.defs.resources import TradingViewResource

    monkeypatch.setattr(history, "TRANSIENT_BASE_DELAY_S", 0.01)
    flaky = {}

    class FlakyResource(TradingViewResource):
        @contextlib.asynccontextmanager
        async def open_client(self):
            async with TradingViewResource.open_client(self) as client:
                flaky["client"] = FlakyTradingView(client)
                yield flaky["client"]

    res = dict(resources, tradingview=FlakyResource(**resources["tradingview"].model_dump()))
    register(store, instance, "NASDAQ:AAPL", "SP:SPX")
    result = dg.materialize([historical_bars], instance=instance, resources=res,
                            tags={RANGE_START: "1d|NASDAQ:AAPL", RANGE_END: "1d|SP:SPX"},
                            run_config=dg.RunConfig(ops={"historical_bars": {"config": {"bars": 20}}}))
    assert result.success
    assert flaky["client"].calls == 4  # one timeout + one success per key
    assert {m.partition for m in result.asset_materializations_for_node("historical_bars")} == {
        "1d|NASDAQ:AAPL", "1d|SP:SPX"}


def test_a_key_that_keeps_timing_out_fails_as_transient(instance, resources, store, monkeypatch):
    import contextlib

    from pocketquant_pipelines.defs import history
    from pocketquant_pipelines.defs.resources import TradingViewResource

    monkeypatch.setattr(history, "TRANSIENT_BASE_DELAY_S", 0.01)

    class DeadResource(TradingViewResource):
        @contextlib.asynccontextmanager
        async def open_client(self):
            async with TradingViewResource.open_client(self) as client:
                yield FlakyTradingView(client, failures_per_key=99)

    res = dict(resources, tradingview=DeadResource(**resources["tradingview"].model_dump()))
    register(store, instance, "NASDAQ:AAPL", "SP:SPX")
    result = dg.materialize([historical_bars], instance=instance, resources=res, raise_on_error=False,
                            tags={RANGE_START: "1d|NASDAQ:AAPL", RANGE_END: "1d|SP:SPX"})
    assert not result.success
    [failure] = result.get_step_failure_events()
    data = failure.step_failure_data.user_failure_data
    assert "2 of 2 partition(s) failed" in data.description and "HistoryTimeoutError" in data.description
    obs = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=HISTORICAL_BARS, asset_partitions=["1d|SP:SPX"]), limit=1).records
    assert obs[0].asset_observation.metadata["transient"].value is True
