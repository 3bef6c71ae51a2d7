"""``downtime_healing_sensor``: the minutes a streamer missed are synced from history at once.

The streamer records a *hole* (symbol, from, to) when it starts and finds that a symbol's last
heartbeat is older than its first tick (``pocketquant_pipelines.storage.downtime``). Each tick
this sensor reads the open holes and requests, per symbol, one backfill of the symbol's 13
``historical_bars`` partitions, tagged with the symbol and the range, so the healing shows in
the run history; then it marks the holes requested.

The backfill runs the ordinary automatic sync: incremental from the last bar history wrote to
now (or a first sync when history never ran), which covers the hole, the bars that were in
progress when the streamer stopped and the partial bars it flushed at its restart; history
outranks the stream, so those are replaced, and the store's unique key keeps one bar per key.

A hole of a symbol that is not (yet) a partition waits: ``symbol_registry_sensor`` adds the
partition and requests the first sync, which covers the hole too.
"""

import dagster as dg

from pocketquant_pipelines.defs.keys import HISTORICAL_BARS, TRIGGER_TAG
from pocketquant_pipelines.defs.partitions import SYMBOLS_PARTITIONS_NAME, keys_for
from pocketquant_pipelines.defs.resources import BarStoreResource
from pocketquant_pipelines.defs.sensors import backfill_request
from pocketquant_pipelines.storage.downtime import Hole, open_downtime_log

HOLE_SYMBOL_TAG = "pocketquant/hole_symbol"
HOLE_FROM_TAG = "pocketquant/hole_from"
HOLE_TO_TAG = "pocketquant/hole_to"
HEALING_TRIGGER = "downtime_healing"


def healing_requests(holes: list[Hole], partitioned: set[str]) -> list[tuple[dg.RunRequest, list[str], str]]:
    """(request, hole ids, run key) per symbol with open holes that is a partition."""
    by_symbol: dict[str, list[Hole]] = {}
    for hole in holes:
        by_symbol.setdefault(hole.symbol, []).append(hole)
    out = []
    for symbol, group in sorted(by_symbol.items()):
        if symbol not in partitioned:
            continue
        start = min(h.start for h in group).isoformat()
        end = max(h.end for h in group).isoformat()
        run_key = f"heal:{symbol}:{start}:{end}"
        tags = {TRIGGER_TAG: HEALING_TRIGGER, HOLE_SYMBOL_TAG: symbol, HOLE_FROM_TAG: start, HOLE_TO_TAG: end,
                # missing bars outrank routine syncs in the run queue
                "dagster/priority": "5"}
        out.append((backfill_request(keys_for([symbol]), tags), [h.id for h in group], run_key))
    return out


@dg.sensor(
    name="downtime_healing_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=dg.AssetSelection.assets(HISTORICAL_BARS),
    description="Turns the streamer's downtime holes (symbol, from, to) into historical syncs of "
    "the symbol's partitions, tagged with the range, and marks them requested.",
)
def downtime_healing_sensor(context: dg.SensorEvaluationContext, bar_store: BarStoreResource):
    with open_downtime_log(bar_store.settings()) as downtime:
        holes = downtime.open_holes()
        if not holes:
            return dg.SkipReason("no downtime holes")
        partitioned = set(context.instance.get_dynamic_partitions(SYMBOLS_PARTITIONS_NAME))
        planned = healing_requests(holes, partitioned)
        for request, ids, run_key in planned:
            downtime.mark_requested(ids, run_key)
            tags = request.tags
            context.log.info(f"healing {tags[HOLE_SYMBOL_TAG]} {tags[HOLE_FROM_TAG]} .. {tags[HOLE_TO_TAG]} "
                             f"({len(ids)} hole(s))")
    if not planned:
        return dg.SkipReason(f"{len(holes)} hole(s) wait for their symbol's partitions")
    return dg.SensorResult(run_requests=[request for request, _, _ in planned])
