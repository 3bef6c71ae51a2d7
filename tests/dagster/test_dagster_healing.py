"""downtime_healing_sensor on a real Dagster instance: a hole of a symbol that is not a
partition yet waits; once it is, one backfill of the symbol's 13 partitions is requested,
tagged with the hole, and the hole is not requested again."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from pocketquant_pipelines.defs.healing import (
    HOLE_FROM_TAG, HOLE_SYMBOL_TAG, HOLE_TO_TAG, downtime_healing_sensor,
)
from pocketquant_pipelines.defs.keys import HISTORICAL_BARS
from pocketquant_pipelines.defs.partitions import SYMBOLS_PARTITIONS_NAME
from pocketquant_pipelines.market.intervals import ALL_INTERVALS
from pocketquant_pipelines.storage.downtime import open_downtime_log

BTC = "BINANCE:BTCUSDT"
T0 = datetime(2026, 1, 30, 15, 0, tzinfo=UTC)


def evaluate(instance, resources):
    with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
        return downtime_healing_sensor(ctx)


def test_holes_become_one_tagged_backfill_per_symbol(settings, store, instance, resources):
    assert isinstance(evaluate(instance, resources), dg.SkipReason)  # nothing recorded
    with open_downtime_log(settings) as log:
        log.record_hole(BTC, T0, T0 + timedelta(minutes=4))
        log.record_hole(BTC, T0 + timedelta(minutes=30), T0 + timedelta(minutes=33))
    waiting = evaluate(instance, resources)
    assert isinstance(waiting, dg.SkipReason) and "wait" in waiting.skip_message
    instance.add_dynamic_partitions(SYMBOLS_PARTITIONS_NAME, [BTC])
    result = evaluate(instance, resources)
    [request] = result.run_requests
    assert request.tags[HOLE_SYMBOL_TAG] == BTC
    assert request.tags[HOLE_FROM_TAG] == T0.isoformat()
    assert request.tags[HOLE_TO_TAG] == (T0 + timedelta(minutes=33)).isoformat()
    keys = request.asset_graph_subset.partitions_subsets_by_asset_key[HISTORICAL_BARS].get_partition_keys()
    assert sorted(keys) == sorted(f"{i.value}|{BTC}" for i in ALL_INTERVALS)
    assert isinstance(evaluate(instance, resources), dg.SkipReason)
    with open_downtime_log(settings) as log:
        assert log.open_holes() == []


def test_the_code_location_runs_the_healing_sensor():
    from pocketquant_pipelines.definitions import defs as load_defs

    sensors = {s.name: s for s in load_defs().sensors}
    assert sensors["downtime_healing_sensor"].default_status == dg.DefaultSensorStatus.RUNNING
