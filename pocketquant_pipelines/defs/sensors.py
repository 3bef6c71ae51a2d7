"""``symbol_registry_sensor``: the one owner of the ``symbols`` dynamic partitions.

Each tick it mirrors the bar store's symbol registry (``pocketquant symbols add/remove``)
into the dynamic partitions — adds and removes — and requests the first sync of every
(symbol, interval) that has never been synced.

"Never synced" is read from Dagster's partition status (no materialization, no failure, not
in progress), not from "was just added": a symbol added while the sensor was stopped, or whose
first backfill was lost, is still picked up, and a key whose sync failed is left alone (the
failure is visible; re-run it from the UI). The cursor remembers keys already requested until
they are materialized or failed (at most an hour), so a backfill waiting in the queue or
running is not requested twice.

The first sync is requested as one *backfill* (sensors can launch backfills), so the
``single_run`` backfill policy turns N new symbols x 13 intervals into a few range runs.
"""

import json
import time

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset

from pocketquant_pipelines.defs.keys import HISTORICAL_BARS, TRIGGER_TAG
from pocketquant_pipelines.defs.partitions import (
    INTERVAL_KEYS,
    SYMBOLS_PARTITIONS_NAME,
    bars_partitions,
    keys_for,
    symbol_partitions,
)
from pocketquant_pipelines.defs.resources import BarStoreResource
from pocketquant_pipelines.market.symbols import Symbol

MAX_PENDING_IN_CURSOR = 20_000
PENDING_TTL_S = 3600.0  # a requested first sync not started within an hour is requested again


def backfill_request(keys: list[str], tags: dict[str, str], bars: int | None = None) -> dg.RunRequest:
    """A RunRequest the sensor daemon turns into an asset backfill of ``historical_bars``."""
    subset = AssetGraphSubset(
        partitions_subsets_by_asset_key={
            HISTORICAL_BARS: bars_partitions.empty_subset().with_partition_keys(keys)
        },
        non_partitioned_asset_keys=set(),
    )
    run_config = (dg.RunConfig(ops={"historical_bars": {"config": {"bars": bars}}}).to_config_dict()
                  if bars is not None else None)
    return dg.RunRequest(asset_graph_subset=subset, tags=tags, run_config=run_config)


def _valid(symbol: str) -> bool:
    try:
        return str(Symbol.parse(symbol)) == symbol
    except ValueError:
        return False


def _materialized(instance: dg.DagsterInstance, keys: list[str]) -> set[str]:
    """Keys with at least one materialization, read from the event log (not from the cached
    partition status, which can lag a range run that is just finishing)."""
    found: set[str] = set()
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=HISTORICAL_BARS, asset_partitions=chunk),
            limit=min(10_000, 20 * len(chunk)),
        ).records
        found.update(r.partition_key for r in records if r.partition_key)
    return found


def evaluate_registry(instance: dg.DagsterInstance, registry: list[str], cursor: str | None,
                      now: float | None = None):
    """Pure decision of one tick: (to_add, to_remove, keys_to_sync, new_cursor).

    A key needs its first sync when Dagster has no status for it (never materialized, never
    failed, not in progress) and the event log confirms no materialization. Requested keys
    stay "pending" in the cursor until they are MATERIALIZED or FAILED — or for
    PENDING_TTL_S, after which a lost request is made again.
    """
    now = time.time() if now is None else now
    state = json.loads(cursor) if cursor else {}
    pending: dict[str, float] = dict(state.get("pending", {}))
    current = list(instance.get_dynamic_partitions(SYMBOLS_PARTITIONS_NAME))
    wanted = [s for s in registry if _valid(s)]
    to_add = [s for s in wanted if s not in set(current)]
    to_remove = [s for s in current if s not in set(wanted)]

    candidates = keys_for(wanted, INTERVAL_KEYS)
    status = instance.get_status_by_partition(HISTORICAL_BARS, candidates, bars_partitions) or {}
    terminal = {k for k, v in status.items()
                if v is not None and v.value in ("MATERIALIZED", "FAILED")}
    candidate_set = set(candidates)
    pending = {k: t for k, t in pending.items()
               if k in candidate_set and k not in terminal and now - t < PENDING_TTL_S}
    never = [k for k in candidates if status.get(k) is None and k not in pending]
    if never:
        done = _materialized(instance, never)
        never = [k for k in never if k not in done]
    pending.update({k: now for k in never})
    if len(pending) > MAX_PENDING_IN_CURSOR:  # keep the cursor small: forget the oldest
        pending = dict(sorted(pending.items(), key=lambda kv: kv[1])[-MAX_PENDING_IN_CURSOR:])
    return to_add, to_remove, never, json.dumps({"pending": pending}, sort_keys=True)


@dg.sensor(
    name="symbol_registry_sensor",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=dg.AssetSelection.assets(HISTORICAL_BARS),
    description="Mirrors the symbol registry into the 'symbols' partitions (adds and removes) "
    "and backfills the first sync of every never-synced (symbol, interval).",
)
def symbol_registry_sensor(context: dg.SensorEvaluationContext, bar_store: BarStoreResource):
    registry = [info.symbol for info in bar_store.get().list_symbols()]
    to_add, to_remove, to_sync, cursor = evaluate_registry(context.instance, registry, context.cursor)
    requests = []
    if to_add:
        requests.append(symbol_partitions.build_add_request(list(to_add)))
    if to_remove:
        requests.append(symbol_partitions.build_delete_request(list(to_remove)))
    run_requests = []
    if to_sync:
        # first syncs go ahead of queued routine runs (the run queue honours dagster/priority)
        run_requests.append(backfill_request(to_sync, {TRIGGER_TAG: "first_sync",
                                                       "dagster/priority": "10"}))
    if not (requests or run_requests) and cursor == context.cursor:
        return dg.SkipReason(f"registry in sync ({len(registry)} symbols), nothing to request")
    context.log.info(f"symbols +{len(to_add)} -{len(to_remove)}; first sync of {len(to_sync)} partition(s)")
    return dg.SensorResult(dynamic_partitions_requests=requests, run_requests=run_requests,
                           cursor=cursor)
