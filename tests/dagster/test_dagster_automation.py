"""Schedules, the registry sensor and the dataset automation, evaluated against a real
(temporary) Dagster instance; one schedule request is also executed end to end in-process."""

import json
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from pocketquant_pipelines import datasets as ds
from pocketquant_pipelines.definitions import defs as load_defs
from pocketquant_pipelines.defs.datasets import ohlcv_dataset
from pocketquant_pipelines.defs.history import historical_bars
from pocketquant_pipelines.defs.keys import HISTORICAL_BARS, OHLCV_DATASET
from pocketquant_pipelines.defs.partitions import INTERVAL_KEYS, bars_partitions, keys_for
from pocketquant_pipelines.defs.schedules import sync_all_symbols, sync_daily_data
from pocketquant_pipelines.defs.sensors import symbol_registry_sensor
from pocketquant_pipelines.storage.registry import SymbolInfo

from dagster_helpers import register

START, END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
MONDAY_NOON = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def schedule_requests(schedule, instance):
    ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=MONDAY_NOON)
    return list(schedule.evaluate_tick(ctx).run_requests or [])


def test_definitions_load_with_expected_objects_and_default_states():
    d = load_defs()
    graph = d.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"historical_bars", "ohlcv_dataset", "streamed_bars"} <= keys
    assert set(graph.get(OHLCV_DATASET).parent_keys) >= {HISTORICAL_BARS, dg.AssetKey("streamed_bars")}
    d.resolve_job_def("historical_sync")
    schedules = {s.name: s for s in d.schedules}
    assert schedules["sync_all_symbols"].cron_schedule == "0 */6 * * *"
    assert schedules["sync_daily_data"].cron_schedule == "0 9-17 * * 1-5"
    assert schedules["sync_daily_data"].execution_timezone == "UTC"
    sensors = {s.name: s for s in d.sensors}
    for name in ("symbol_registry_sensor", "pocketquant_automation"):
        assert sensors[name].default_status == dg.DefaultSensorStatus.RUNNING
    for s in schedules.values():
        assert s.default_status == dg.DefaultScheduleStatus.RUNNING
    assert d.resolve_implicit_global_asset_job_def().executor_def.name == "in_process"


def test_sync_all_symbols_fans_out_in_range_runs(instance, store):
    register(store, instance, "NASDAQ:AAPL", "BINANCE:BTCUSDT", "SP:SPX")
    requests = schedule_requests(sync_all_symbols, instance)
    assert len(requests) == 13  # one run per interval, not 39
    assert [(r.tags[START], r.tags[END]) for r in requests] == [
        (f"{i}|NASDAQ:AAPL", f"{i}|SP:SPX") for i in INTERVAL_KEYS]
    for r in requests:
        assert r.run_config["ops"]["historical_bars"]["config"]["bars"] == 500
        assert r.tags["pocketquant/trigger"] == "sync_all_symbols"
    assert len({r.run_key for r in requests}) == 13


def test_sync_daily_data_requests_1d_with_10_bars(instance, store):
    register(store, instance, "NASDAQ:AAPL", "SP:SPX")
    [request] = schedule_requests(sync_daily_data, instance)
    assert (request.tags[START], request.tags[END]) == ("1d|NASDAQ:AAPL", "1d|SP:SPX")
    assert request.run_config["ops"]["historical_bars"]["config"]["bars"] == 10


def test_schedules_skip_without_symbols(instance):
    ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=MONDAY_NOON)
    result = sync_all_symbols.evaluate_tick(ctx)
    assert not result.run_requests and "no symbols" in result.skip_message


def test_a_schedule_request_runs_and_materializes_each_symbol(instance, store, resources):
    register(store, instance, "NASDAQ:AAPL", "NASDAQ:NOSUCH", "SP:SPX")
    [request] = schedule_requests(sync_daily_data, instance)
    job = load_defs().resolve_job_def("historical_sync")
    result = job.execute_in_process(run_config=request.run_config, tags=request.tags,
                                    instance=instance, resources=resources, raise_on_error=False)
    # one bad symbol fails the run but not the others
    assert not result.success
    mats = {m.partition: m.metadata["bars_fetched"].value
            for m in result.asset_materializations_for_node("historical_bars")}
    assert mats == {"1d|NASDAQ:AAPL": 10, "1d|SP:SPX": 10}
    assert store.count_bars("SP:SPX", "1d") == 10


def test_registry_sensor_adds_removes_and_requests_first_syncs(instance, store, resources):
    for s in ("NASDAQ:AAPL", "BINANCE:BTCUSDT"):
        store.add_symbol(SymbolInfo(symbol=s))
    instance.add_dynamic_partitions("symbols", ["OLD:GONE"])  # no longer in the registry
    seen_before = json.dumps({"seen": ["OLD:GONE"]})  # the sensor saw it registered: `symbols remove`

    with dg.build_sensor_context(instance=instance, resources=resources, cursor=seen_before,
                                 definitions=load_defs()) as ctx:
        # evaluate_tick also runs Dagster's validation of backfill requests
        result = symbol_registry_sensor.evaluate_tick(ctx)
    [add, delete] = result.dynamic_partitions_requests
    assert sorted(add.partition_keys) == ["BINANCE:BTCUSDT", "NASDAQ:AAPL"]
    assert list(delete.partition_keys) == ["OLD:GONE"]
    # visible range runs (no backfill), one per interval for the two consecutive new symbols
    runs = result.run_requests
    assert len(runs) == 13 and not any(r.requires_backfill_daemon() for r in runs)
    requested = set()
    for run in runs:
        start, end = run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]
        assert start.split("|")[0] == end.split("|")[0] == run.tags["pocketquant/interval"]
        assert set(run.tags["pocketquant/symbols"].split(", ")) == {"NASDAQ:AAPL", "BINANCE:BTCUSDT"}
        assert run.tags["pocketquant/range"].endswith("2 partition(s)")
        requested |= {start, end}
    assert requested == set(keys_for(["NASDAQ:AAPL", "BINANCE:BTCUSDT"]))
    assert len(json.loads(result.cursor)["pending"]) == 26

    # apply what the daemon would apply, then sync one partition
    instance.add_dynamic_partitions("symbols", ["NASDAQ:AAPL", "BINANCE:BTCUSDT"])
    instance.delete_dynamic_partition("symbols", "OLD:GONE")
    dg.materialize([historical_bars], partition_key="1d|NASDAQ:AAPL", instance=instance,
                   resources=resources)

    # the same tick again: nothing new (pending keys are not requested twice)
    with dg.build_sensor_context(instance=instance, resources=resources,
                                 cursor=result.cursor) as ctx:
        again = symbol_registry_sensor(ctx)
    assert not getattr(again, "run_requests", None)
    pending = json.loads(again.cursor)["pending"]
    assert "1d|NASDAQ:AAPL" not in pending and len(pending) == 25

    # a sensor restarted without cursor decides from partition status: 25 never synced
    with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
        fresh = symbol_registry_sensor(ctx)
    keys = {t for r in fresh.run_requests for t in (r.tags["dagster/asset_partition_range_start"],
                                                      r.tags["dagster/asset_partition_range_end"])}
    assert len(keys) == 25 and "1d|NASDAQ:AAPL" not in keys
    assert len(fresh.run_requests) == 13  # 1d has BINANCE:BTCUSDT alone


def test_a_partition_added_in_the_ui_is_registered_or_kept_with_its_reason(instance, store, resources):
    # "Add partition" in the UI: one real symbol, one TradingView lacks, one malformed
    instance.add_dynamic_partitions("symbols", ["NASDAQ:AAPL", "NASDAQ:NOPE", "AAPL"])
    with dg.build_sensor_context(instance=instance, resources=resources,
                                 definitions=load_defs()) as ctx:
        result = symbol_registry_sensor.evaluate_tick(ctx)
    info = store.get_symbol("NASDAQ:AAPL")
    assert info is not None and info.timezone  # registered with what symbol_resolved said
    assert [i.symbol for i in store.list_symbols()] == ["NASDAQ:AAPL"]
    assert not result.dynamic_partitions_requests  # nothing deleted, nothing to add
    # the registered one gets its first sync; the rejected ones keep their partition and reason
    starts = {r.tags["dagster/asset_partition_range_start"] for r in result.run_requests}
    assert starts == set(keys_for(["NASDAQ:AAPL"]))
    rejected = json.loads(result.cursor)["rejected"]
    assert "unknown symbol 'NASDAQ:NOPE'" in rejected["NASDAQ:NOPE"]
    assert "not a symbol EXCHANGE:CODE" in rejected["AAPL"]
    assert set(instance.get_dynamic_partitions("symbols")) == {"NASDAQ:AAPL", "NASDAQ:NOPE", "AAPL"}

    # later ticks neither ask TradingView again nor delete the rejected partitions
    with dg.build_sensor_context(instance=instance, resources=resources, cursor=result.cursor) as ctx:
        again = symbol_registry_sensor(ctx)
    assert not getattr(again, "dynamic_partitions_requests", None)


def test_registry_sensor_skips_when_in_sync(instance, store, resources):
    with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
        result = symbol_registry_sensor(ctx)
    assert isinstance(result, dg.SkipReason) or not result.run_requests


def test_dataset_rebuilds_after_history_changes(instance, store, resources, data_dir):
    register(store, instance, "NASDAQ:AAPL")
    d = load_defs()
    first = dg.evaluate_automation_conditions(defs=d, instance=instance)
    dg.materialize([historical_bars], partition_key="1d|NASDAQ:AAPL", instance=instance,
                   resources=resources, run_config=dg.RunConfig(
                       ops={"historical_bars": {"config": {"bars": 40}}}))
    after = dg.evaluate_automation_conditions(defs=d, instance=instance, cursor=first.cursor)
    assert after.get_requested_partitions(OHLCV_DATASET) == {"1d|NASDAQ:AAPL"}
    # a partition whose streamed_bars were never reported is not blocked by that

    result = dg.materialize([ohlcv_dataset], partition_key="1d|NASDAQ:AAPL", instance=instance,
                            resources=resources)
    [mat] = result.asset_materializations_for_node("ohlcv_dataset")
    assert mat.metadata["rows"].value == 40
    frame = pd.read_parquet(ds.dataset_root(data_dir))
    assert len(frame) == 40 and set(frame["symbol"]) == {"NASDAQ:AAPL"}
    assert set(frame["interval"]) == {"1d"}
    stored = store.read_bars("NASDAQ:AAPL", "1d")
    assert list(frame["close"]) == list(stored["close"])

    # nothing changed upstream: no new request
    settled = dg.evaluate_automation_conditions(defs=d, instance=instance, cursor=after.cursor)
    assert not settled.get_requested_partitions(OHLCV_DATASET)

    # a streamed_bars update is left to streamed_bars_sensor (it requests the partition
    # itself): the condition must not request it a second time
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="streamed_bars", partition="1d|NASDAQ:AAPL"))
    streamed = dg.evaluate_automation_conditions(defs=d, instance=instance, cursor=settled.cursor)
    assert not streamed.get_requested_partitions(OHLCV_DATASET)


def test_partition_keys_are_interval_major(instance):
    instance.add_dynamic_partitions("symbols", ["B:X", "A:Y"])
    keys = bars_partitions.get_partition_keys(dynamic_partitions_store=instance)
    assert keys[:3] == ["1m|B:X", "1m|A:Y", "3m|B:X"]
    assert keys == keys_for(["B:X", "A:Y"])


def test_registry_pending_keys_expire_and_are_requested_again(instance, store):
    from pocketquant_pipelines.defs.sensors import PENDING_TTL_S, evaluate_registry

    _, _, first, cursor, _ = evaluate_registry(instance, ["NASDAQ:AAPL"], None, now=1000.0)
    assert len(first) == 13
    _, _, again, cursor2, _ = evaluate_registry(instance, ["NASDAQ:AAPL"], cursor, now=1010.0)
    assert again == []
    _, _, expired, _, _ = evaluate_registry(instance, ["NASDAQ:AAPL"], cursor2,
                                         now=1000.0 + PENDING_TTL_S + 1)
    assert sorted(expired) == sorted(first)
