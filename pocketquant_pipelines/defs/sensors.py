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

The first sync is requested as range runs (``first_sync_requests``): per interval, one run per
block of up to 100 consecutive symbols, so N new symbols x 13 intervals are a few runs, each
visible on the Runs page with tags naming what it covers (a backfill's runs are hidden there
by default).
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
    key_str,
    keys_for,
    split_key,
    symbol_partitions,
)
from pocketquant_pipelines.defs.resources import BarStoreResource, TradingViewResource
from pocketquant_pipelines.defs.run_tags import coverage_tags
from pocketquant_pipelines.defs.schedules import RANGE_END_TAG, RANGE_START_TAG, SYMBOLS_PER_RUN, historical_sync
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


def first_sync_requests(keys: list[str], symbol_order: list[str], tick: str,
                        symbols_per_run: int = SYMBOLS_PER_RUN) -> list[dg.RunRequest]:
    """Range runs over ``keys``: per interval, each block of symbols consecutive in partition
    order (at most ``symbols_per_run``) becomes one run, visible on the Runs page with tags
    naming what it covers (a backfill would hide its runs by default)."""
    position = {s: i for i, s in enumerate(symbol_order)}
    by_interval: dict[str, list[str]] = {}
    for key in keys:
        symbol, interval = split_key(key)
        by_interval.setdefault(interval.value, []).append(symbol)
    requests = []
    for interval in INTERVAL_KEYS:
        symbols = sorted(by_interval.get(interval, []), key=lambda s: position.get(s, len(position)))
        blocks: list[list[str]] = []
        for symbol in symbols:
            last = blocks[-1] if blocks else None
            if (last and len(last) < symbols_per_run
                    and position.get(symbol, -2) == position.get(last[-1], -9) + 1):
                last.append(symbol)
            else:
                blocks.append([symbol])
        for block in blocks:
            block_keys = [key_str(sym, interval) for sym in block]
            requests.append(dg.RunRequest(
                run_key=f"first_sync:{block_keys[0]}..{block_keys[-1]}:{tick}",
                job_name=historical_sync.name,
                tags={RANGE_START_TAG: block_keys[0], RANGE_END_TAG: block_keys[-1],
                      TRIGGER_TAG: "first_sync", "dagster/priority": "10",
                      **coverage_tags(block_keys)},
            ))
    return requests


def evaluate_registry(instance: dg.DagsterInstance, registry: list[str], cursor: str | None,
                      now: float | None = None):
    """Pure decision of one tick: (to_add, to_remove, keys_to_sync, new_cursor, from_ui).

    A key needs its first sync when Dagster has no status for it (never materialized, never
    failed, not in progress) and the event log confirms no materialization. Requested keys
    stay "pending" in the cursor until they are MATERIALIZED or FAILED — or for
    PENDING_TTL_S, after which a lost request is made again.

    A partition the registry lacks is removed only when the registry had it before (the cursor
    remembers the symbols it has seen: ``symbols remove``). One it never had was added in the
    UI: it is returned in ``from_ui`` to be registered, never deleted.
    """
    now = time.time() if now is None else now
    state = json.loads(cursor) if cursor else {}
    pending: dict[str, float] = dict(state.get("pending", {}))
    seen = set(state.get("seen", []))
    current = list(instance.get_dynamic_partitions(SYMBOLS_PARTITIONS_NAME))
    wanted = [s for s in registry if _valid(s)]
    wanted_set = set(wanted)
    to_add = [s for s in wanted if s not in set(current)]
    missing = [s for s in current if s not in wanted_set]
    to_remove = [s for s in missing if s in seen]
    from_ui = [s for s in missing if s not in seen]
    seen = (seen & set(current)) | wanted_set

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
    new_cursor = json.dumps({"pending": pending, "seen": sorted(seen),
                             "rejected": state.get("rejected", {})}, sort_keys=True)
    return to_add, to_remove, never, new_cursor, from_ui


def register_from_ui(store, tradingview, symbol: str) -> str | None:
    """Register a symbol partition added in the UI as ``symbols add`` would: the symbol must
    parse as EXCHANGE:CODE and TradingView must know it. Returns None when registered, else
    the one-line reason it was not (the partition is kept; its runs fail with that reason)."""
    from pocketquant_pipelines.market.timeutil import utcnow
    from pocketquant_pipelines.storage.registry import SymbolInfo
    from pocketquant_pipelines.storage.symbol_metadata import record_metadata
    from pocketquant_pipelines.tradingview.client import run_blocking
    from pocketquant_pipelines.tradingview.errors import SymbolNotFoundError

    if not _valid(symbol):
        return f"{symbol!r} is not a symbol EXCHANGE:CODE (e.g. NASDAQ:AAPL)"

    async def resolve():
        async with tradingview.open_client() as client:
            return await client.resolve_symbol(symbol)

    try:
        meta = run_blocking(resolve())
    except SymbolNotFoundError as exc:
        return f"unknown symbol {symbol!r}: TradingView answered {exc.reason or 'symbol_error'!r}"
    now = utcnow()
    store.add_symbol(SymbolInfo(symbol=symbol, added_at=now, updated_at=now))
    record_metadata(store, symbol, meta)
    return None


@dg.sensor(
    name="symbol_registry_sensor",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    job=historical_sync,
    description="Mirrors the symbol registry into the 'symbols' partitions (adds, and removes "
    "what `symbols remove` removed), registers a symbol partition added in the UI after "
    "checking it against TradingView, and launches the first sync of every never-synced "
    "(symbol, interval) as range runs tagged with what they cover.",
)
def symbol_registry_sensor(context: dg.SensorEvaluationContext, bar_store: BarStoreResource,
                           tradingview: TradingViewResource):
    store = bar_store.get()
    registry = [info.symbol for info in store.list_symbols()]
    state = json.loads(context.cursor) if context.cursor else {}
    rejected: dict[str, str] = dict(state.get("rejected", {}))
    registered_now = []
    for symbol in [s for s in instance_partitions(context.instance) if s not in set(registry)]:
        if symbol in set(state.get("seen", [])) or symbol in rejected:
            continue
        try:
            reason = register_from_ui(store, tradingview, symbol)
        except Exception as exc:  # noqa: BLE001 - unreachable now: asked again next tick
            context.log.warning(f"partition {symbol} added in the UI: cannot check it against "
                                f"TradingView yet ({exc}); asking again next tick")
            continue
        if reason is None:
            registered_now.append(symbol)
            context.log.info(f"registered {symbol}: a symbol partition added in the UI")
        else:
            rejected[symbol] = reason
            context.log.warning(f"partition {symbol} added in the UI is not registered: {reason}; "
                                "its runs fail with this reason (delete the partition to drop it)")
    if registered_now:
        registry = [info.symbol for info in store.list_symbols()]
    to_add, to_remove, to_sync, cursor, _ = evaluate_registry(context.instance, registry, context.cursor)
    cursor_state = json.loads(cursor)
    cursor_state["rejected"] = {k: v for k, v in rejected.items()
                                if k in set(instance_partitions(context.instance))}
    cursor = json.dumps(cursor_state, sort_keys=True)
    requests = []
    if to_add:
        requests.append(symbol_partitions.build_add_request(list(to_add)))
    if to_remove:
        requests.append(symbol_partitions.build_delete_request(list(to_remove)))
    order = list(instance_partitions(context.instance)) + [s for s in to_add]
    run_requests = first_sync_requests(to_sync, order, str(int(time.time()))) if to_sync else []
    if not (requests or run_requests) and cursor == context.cursor:
        return dg.SkipReason(f"registry in sync ({len(registry)} symbols), nothing to request")
    context.log.info(f"symbols +{len(to_add)} -{len(to_remove)}; first sync of {len(to_sync)} "
                     f"partition(s) in {len(run_requests)} run(s)")
    return dg.SensorResult(dynamic_partitions_requests=requests, run_requests=run_requests,
                           cursor=cursor)


def instance_partitions(instance: dg.DagsterInstance) -> list[str]:
    return list(instance.get_dynamic_partitions(SYMBOLS_PARTITIONS_NAME))
