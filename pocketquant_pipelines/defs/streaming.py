"""Dagster side of the streamer sidecar.

* ``streamed_bars`` (defs/streaming_spec.py) is an external asset: the streamer writes it, Dagster
  never executes it. ``streamed_bars_sensor`` follows the bar store's ingest cursor for
  ``source=stream`` writes, reports one ``AssetMaterialization`` of ``streamed_bars`` per
  partition written (so lineage and the partition status show the live feed), and folds the
  changed ``ohlcv_dataset`` partitions into one ``streamed_dataset_refresh`` run at most every
  ``POCKETQUANT_DATASET_REBUILD_S``; the keys waiting for it live in the cursor. The run key is
  the ingest cursor the rebuild covers, so a tick retried after a failure (the cursor is only
  committed when a tick succeeds) requests nothing twice.
* ``streamed_vs_history`` (asset check on ``historical_bars``): after a historical sync, the
  stream's own copy of each key it shares with history is compared to history's values
  (``quality.reconcile``), and stream keys that history lacks inside the range it covers
  (orphans: bars TradingView never made) are counted with examples; WARN when any differs
  beyond tolerance or any orphan exists.
"""

import json
import time

import dagster as dg

from pocketquant_pipelines.defs.checks import evaluate_stream_agreement
from pocketquant_pipelines.defs.datasets import streamed_dataset_refresh
from pocketquant_pipelines.defs.history import HISTORICAL_BARS
from pocketquant_pipelines.defs.partitions import SYMBOLS_PARTITIONS_NAME, bars_partitions, key_str, split_key
from pocketquant_pipelines.defs.resources import BarStoreResource
from pocketquant_pipelines.defs.run_tags import coverage_tags
from pocketquant_pipelines.defs.streaming_spec import STREAMED_BARS
from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.quality.reconcile import reconcile
from pocketquant_pipelines.storage.bars import Source

log = get_logger("pocketquant.defs.streaming")

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


def _read_cursor(raw: str | None) -> dict:
    """{"ingest": store cursor, "dirty": [keys awaiting a rebuild], "rebuilt_at": epoch s};
    a plain string is the ingest cursor of an older version of this sensor."""
    if not raw:
        return {"ingest": None, "dirty": [], "rebuilt_at": 0.0}
    try:
        state = json.loads(raw)
    except ValueError:
        state = None
    if not isinstance(state, dict) or "ingest" not in state:
        return {"ingest": raw, "dirty": [], "rebuilt_at": 0.0}
    return {"ingest": state.get("ingest"), "dirty": list(state.get("dirty", [])),
            "rebuilt_at": float(state.get("rebuilt_at", 0.0))}


def plan_rebuild(dirty: set[str], rebuilt_at: float, now: float, period_s: float) -> bool:
    """A folded rebuild is due when keys are waiting and the last one is a period old."""
    return bool(dirty) and now - rebuilt_at >= period_s


@dg.sensor(
    name="streamed_bars_sensor",
    job=streamed_dataset_refresh,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reports bars the streamer wrote as streamed_bars materializations (every tick) "
    "and folds the changed ohlcv_dataset partitions into one streamed_dataset_refresh run at "
    "most every POCKETQUANT_DATASET_REBUILD_S (cursor: the bar store's ingest cursor, "
    "source=stream, and the keys awaiting a rebuild).",
)
def streamed_bars_sensor(context: dg.SensorEvaluationContext, bar_store: BarStoreResource):
    store = bar_store.get()
    state = _read_cursor(context.cursor)
    known = set(context.instance.get_dynamic_partitions(SYMBOLS_PARTITIONS_NAME))
    per_key, skipped, ingest, entries = evaluate_stream_ingest(store, state["ingest"], known)
    if skipped:
        # streamed but not (yet) a partition: the registry sensor adds symbols; until then
        # there is no partition to report against
        context.log.warning(f"streamed bars of symbols without a partition skipped: {skipped}")
        log.warning("streamed_symbols_without_partition", symbols=sorted(skipped))
    dirty = {k for k in state["dirty"] if split_key(k)[0] in known} | set(per_key)
    now = time.time()
    period = bar_store.settings().dataset_rebuild_period_s
    events = []
    for key, s in sorted(per_key.items()):
        events.append(dg.AssetMaterialization(
            asset_key=STREAMED_BARS, partition=key,
            description="bars written by the streamer",
            metadata={
                "bars_written": int(s["bars"]),
                "first_bar_time": _ts(s["first_time"]),
                "last_bar_time": _ts(s["last_time"]),
                "ingest_seq_range": f"{s['first_seq']}-{s['last_seq']}",
            },
        ))
    requests = []
    rebuilt_at = state["rebuilt_at"]
    if plan_rebuild(dirty, rebuilt_at, now, period):
        keys = sorted(dirty)
        requests.append(dg.RunRequest(
            run_key=f"streamed-refresh:{ingest}",
            run_config={"ops": {"rebuild_streamed_datasets": {"config": {"partitions": keys}}}},
            tags={TRIGGER_TAG: "streamer", **coverage_tags(keys)},
        ))
        dirty, rebuilt_at = set(), now
    cursor = json.dumps({"ingest": ingest, "dirty": sorted(dirty), "rebuilt_at": rebuilt_at})
    if not events and not requests:
        waiting = (f"; {len(dirty)} partition(s) wait for the next folded rebuild "
                   f"(at most one per {period:g} s)" if dirty else "")
        reason = (f"{entries} stream ingest entries, none for a known partition" if entries
                  else "no stream writes since the last tick") + waiting
        return dg.SensorResult(skip_reason=reason, cursor=cursor)
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
    results = [reconcile(store, *split_key(str(key))) for key in context.partition_keys]
    return evaluate_stream_agreement(results).to_result()
