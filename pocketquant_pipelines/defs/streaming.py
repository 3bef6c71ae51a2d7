"""Dagster side of the streamer sidecar.

* ``streamed_bars`` (defs/streaming_spec.py) is an external asset: the streamer writes it, Dagster
  never executes it. ``streamed_bars_sensor`` follows the bar store's ingest cursor for
  ``source=stream`` writes, reports one ``AssetMaterialization`` of ``streamed_bars`` per
  partition written (so lineage and the partition status show the live feed), and requests
  the changed ``ohlcv_dataset`` partitions. Run keys are derived from the ingest sequence range
  of each partition, so a tick retried after a failure (the cursor is only committed when a
  tick succeeds) requests nothing twice.
* ``streamed_vs_history`` (asset check on ``historical_bars``): after a historical sync, the
  stream's own copy of each key it shares with history is compared to history's values
  (``streamer.reconcile``), and stream keys that history lacks inside the range it covers
  (orphans: bars TradingView never made) are counted with examples; WARN when any differs
  beyond tolerance or any orphan exists.
"""

import dagster as dg

from pocketquant_pipelines.defs.history import HISTORICAL_BARS
from pocketquant_pipelines.defs.partitions import SYMBOLS_PARTITIONS_NAME, bars_partitions, key_str, split_key
from pocketquant_pipelines.defs.resources import BarStoreResource
from pocketquant_pipelines.defs.streaming_spec import STREAMED_BARS
from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.quality.reconcile import MAX_ORPHAN_EXAMPLES, PRICE_TOLERANCE, VOLUME_TOLERANCE, reconcile
from pocketquant_pipelines.storage.bars import Source

log = get_logger("pocketquant.defs.streaming")

OHLCV_DATASET = dg.AssetKey("ohlcv_dataset")
INGEST_PAGE = 5000
MAX_PAGES_PER_TICK = 10  # stay far inside the 60 s sensor evaluation budget
TRIGGER_TAG = "pocketquant/trigger"

__all__ = ["streamed_bars_sensor", "streamed_vs_history"]


def _ts(value):
    return dg.MetadataValue.timestamp(value) if value is not None else dg.MetadataValue.null()


def evaluate_stream_ingest(store, cursor: str | None, known_symbols: set[str]):
    """Read new stream ingest entries after ``cursor``; group them per partition key.

    Returns (per_key, skipped_symbols, new_cursor, entries_read). ``per_key`` maps a key string
    to a summary: bars count, first/last bar time, first/last ingest seq.
    """
    per_key: dict[str, dict] = {}
    skipped: dict[str, int] = {}
    entries = 0
    for _ in range(MAX_PAGES_PER_TICK):
        page = store.ingest_since(cursor, limit=INGEST_PAGE, source=Source.STREAM)
        cursor = page.cursor
        for e in page.entries:
            entries += 1
            if e.symbol not in known_symbols:
                skipped[e.symbol] = skipped.get(e.symbol, 0) + e.count
                continue
            key = key_str(e.symbol, e.interval)
            s = per_key.get(key)
            if s is None:
                per_key[key] = {"bars": e.count, "first_time": e.first_time, "last_time": e.last_time,
                                "first_seq": e.seq, "last_seq": e.seq}
            else:
                s["bars"] += e.count
                s["first_time"] = min(s["first_time"], e.first_time)
                s["last_time"] = max(s["last_time"], e.last_time)
                s["first_seq"] = min(s["first_seq"], e.seq)
                s["last_seq"] = max(s["last_seq"], e.seq)
        if len(page.entries) < INGEST_PAGE:
            break
    return per_key, skipped, cursor, entries


@dg.sensor(
    name="streamed_bars_sensor",
    target=dg.AssetSelection.assets(OHLCV_DATASET),
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reports bars the streamer wrote as streamed_bars materializations and requests "
    "the changed ohlcv_dataset partitions (cursor: the bar store's ingest cursor, source=stream).",
)
def streamed_bars_sensor(context: dg.SensorEvaluationContext, bar_store: BarStoreResource):
    store = bar_store.get()
    known = set(context.instance.get_dynamic_partitions(SYMBOLS_PARTITIONS_NAME))
    per_key, skipped, cursor, entries = evaluate_stream_ingest(store, context.cursor or None, known)
    if skipped:
        # streamed but not (yet) a partition: the registry sensor adds symbols; until then
        # there is no partition to report against
        context.log.warning(f"streamed bars of symbols without a partition skipped: {skipped}")
        log.warning("streamed_symbols_without_partition", symbols=sorted(skipped))
    if not per_key:
        if entries:
            return dg.SensorResult(skip_reason=f"{entries} stream ingest entries, none for a known partition",
                                   cursor=cursor)
        return dg.SkipReason("no stream writes since the last tick")
    events = []
    requests = []
    for key, s in sorted(per_key.items()):
        seq_range = f"{s['first_seq']}-{s['last_seq']}"
        events.append(dg.AssetMaterialization(
            asset_key=STREAMED_BARS, partition=key,
            description="bars written by the streamer",
            metadata={
                "bars_written": int(s["bars"]),
                "first_bar_time": _ts(s["first_time"]),
                "last_bar_time": _ts(s["last_time"]),
                "ingest_seq_range": seq_range,
            },
        ))
        requests.append(dg.RunRequest(
            partition_key=key, run_key=f"streamed:{key}:{seq_range}",
            asset_selection=[OHLCV_DATASET], tags={TRIGGER_TAG: "streamer"},
        ))
    return dg.SensorResult(asset_events=events, run_requests=requests, cursor=cursor)


@dg.asset_check(
    asset=HISTORICAL_BARS,
    name="streamed_vs_history",
    partitions_def=bars_partitions,
    description="Once a historical sync covers bars the streamer also wrote, their OHLCV must "
    "agree: compares the stream's copy with history's per key (partial stream bars excluded), "
    "and counts stream keys history lacks inside the range it covers (orphans). "
    "WARN when any differs beyond tolerance or any orphan exists.",
)
def streamed_vs_history(context: dg.AssetCheckExecutionContext, bar_store: BarStoreResource) -> dg.AssetCheckResult:
    store = bar_store.get()
    results = []
    for key in [str(k) for k in context.partition_keys]:
        symbol, interval = split_key(key)
        results.append(reconcile(store, symbol, interval))
    compared = sum(r.compared for r in results)
    differing = sum(r.differing for r in results)
    orphans = sum(r.orphans for r in results)
    orphan_examples = [f"{r.interval}|{r.symbol}@{t}" for r in results for t in r.orphan_examples]
    worst = max(results, key=lambda r: (r.differing, r.worst_price_deviation, r.worst_volume_deviation))
    metadata = {
        "compared": compared,
        "differing": differing,
        "partial_skipped": sum(r.partial_skipped for r in results),
        "stream_bars": sum(r.stream_bars for r in results),
        "worst_price_deviation": float(max(r.worst_price_deviation for r in results)),
        "worst_volume_deviation": float(max(r.worst_volume_deviation for r in results)),
        "worst_partition": f"{worst.interval}|{worst.symbol}",
        "worst_time": worst.worst_time or "",
        "price_tolerance": PRICE_TOLERANCE,
        "volume_tolerance": VOLUME_TOLERANCE,
        "orphans": orphans,
        "orphan_examples": dg.MetadataValue.json(orphan_examples[:MAX_ORPHAN_EXAMPLES]),
    }
    parts = []
    if compared:
        parts.append(f"{differing} of {compared} streamed bars differ from history")
    if orphans:
        parts.append(f"{orphans} streamed bar(s) under keys history lacks inside the range it "
                     f"covers (e.g. {orphan_examples[0]})")
    return dg.AssetCheckResult(
        passed=differing == 0 and orphans == 0, severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata, description="; ".join(parts) or "no streamed bars to compare yet",
    )
