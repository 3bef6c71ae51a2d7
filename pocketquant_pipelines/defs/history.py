"""``historical_bars``: incremental historical sync per (symbol, interval) partition.

One run can cover one partition (the UI's "Materialize" of a key, sensors, small schedules)
or a range of partitions (asset backfills: ``BackfillPolicy.single_run()`` groups a backfill
into a few range runs). Either way the asset iterates ``context.partition_keys`` and fetches
them concurrently on one TradingView client, so a 1300-partition backfill costs a handful of
process starts instead of 1300.

Sync status per partition:
* single-partition run -> one MaterializeResult with the outcome as metadata;
* range run -> one ``AssetMaterialization(partition=key)`` per synced key, each with *its own*
  metadata (a returned MaterializeResult would stamp identical metadata on every key).
* a failed key -> an ``AssetObservation`` with ``sync_error`` for that key (so `pocketquant
  status` and the UI show the reason per partition), then the run fails with a ``dg.Failure``
  naming every failed key and the server's reason. Other keys are not stopped by one failure.

Retries: transient errors (connection lost, timeout) are retried in-process per key with
backoff, and a single-partition run also has a RetryPolicy. Permanent errors (unknown symbol,
bad parameters) fail at once with ``allow_retries=False``.

Bar count: run config ``bars`` (validated), else the run tag ``pocketquant/bars`` (backfills
launched by sensors cannot carry run config), else automatic (first sync depth /
incremental; see ``pocketquant_pipelines.sync``).
"""

import asyncio
import random
from datetime import datetime

import dagster as dg
from pydantic import Field, field_validator

from pocketquant_pipelines.defs.bar_tables import BAR_SCHEMA, PREVIEW_BARS, bars_preview
from pocketquant_pipelines.defs.checks import RANGE_CHECK_NAMES, evaluate_all
from pocketquant_pipelines.defs.keys import BARS_TAG, HISTORICAL_BARS, TRADINGVIEW
from pocketquant_pipelines.defs.partitions import bars_partitions, split_key
from pocketquant_pipelines.defs.resources import BarStoreResource, TradingViewResource
from pocketquant_pipelines.defs.run_tags import RANGE_TAG, coverage_tags
from pocketquant_pipelines.market.timeutil import utcnow
from pocketquant_pipelines.errors import InvalidInputError, StoreDamagedError
from pocketquant_pipelines.sync import MAX_BARS, SyncOutcome, sync_history_async, validate_bars

TRANSIENT_ATTEMPTS = 3   # per key inside one run, before the key counts as failed
TRANSIENT_BASE_DELAY_S = 1.0


class HistoryConfig(dg.Config):
    bars: int | None = Field(
        default=None,
        description=f"Bars to request per partition (1..{MAX_BARS}); empty = automatic "
        "(first sync: SYNC_FIRST_BARS, later: from the last stored bar to now + overlap).",
    )

    @field_validator("bars")
    @classmethod
    def _check_bars(cls, value):
        try:
            return validate_bars(value)
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None


def _ts(value: datetime | None):
    return dg.MetadataValue.timestamp(value) if value is not None else dg.MetadataValue.null()


def outcome_metadata(outcome: SyncOutcome) -> dict:
    """Dagster metadata of one sync outcome (plain Python types only: no numpy)."""
    coverage = (
        f"{outcome.stored_first_time.isoformat()} .. {outcome.stored_last_time.isoformat()}"
        if outcome.stored_first_time and outcome.stored_last_time else "empty"
    )
    return {
        "dagster/row_count": int(outcome.stored_bars),
        "symbol": outcome.symbol,
        "interval": outcome.interval,
        "mode": outcome.mode,
        "source": outcome.source,
        "requested_bars": int(outcome.requested_bars),
        "bars_fetched": int(outcome.fetched),
        "fetched_duplicate_times": int(outcome.fetched_duplicate_times),
        "bars_inserted": int(outcome.inserted),
        "bars_updated": int(outcome.updated),
        "bars_unchanged": int(outcome.unchanged),
        "first_bar_time": _ts(outcome.first_bar_time),
        "last_bar_time": _ts(outcome.last_bar_time),
        "stored_bars": int(outcome.stored_bars),
        "stored_first_time": _ts(outcome.stored_first_time),
        "stored_last_time": _ts(outcome.stored_last_time),
        "coverage": coverage,
        "depth_reached": bool(outcome.depth_reached),
        # how far back history reaches, against what a first sync asks for
        "history_bars": int(outcome.history_bars),
        "history_first_time": _ts(outcome.history_first_time),
        "history_last_time": _ts(outcome.history_last_time),
        "first_sync_bars": int(outcome.first_sync_bars),
        "history_ended": bool(outcome.history_ended),
        "history_start": _ts(outcome.history_start),
        # clock sanity: fetched rows rejected, stored bars the planner ignores
        "rejected_times": int(outcome.rejected_times),
        "stored_implausible_bars": int(outcome.stored_implausible_bars),
        # bars users read that history did not write, and those flushed in progress
        "stored_stream_bars": int(outcome.stored_stream_bars),
        "stored_partial_bars": int(outcome.stored_partial_bars),
        "duration_s": float(outcome.duration_s),
        "synced_at": _ts(outcome.synced_at),
    }


def _is_transient(exc: BaseException) -> bool:
    from pocketquant_pipelines.tradingview.errors import TRANSIENT_ERRORS

    return isinstance(exc, TRANSIENT_ERRORS)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = str(exc)
    if reason and reason not in text:
        return f"{text} (server: {reason})"
    return text or type(exc).__name__


def resolve_bars(config: HistoryConfig, tags: dict) -> int | None:
    if config.bars is not None:
        return config.bars
    raw = tags.get(BARS_TAG)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInputError(f"run tag {BARS_TAG}={raw!r} is not an integer bar count") from None
    return validate_bars(value, BARS_TAG)


async def _sync_one(store, client, symbol, interval, bars, settings, source, log):
    """One key with per-key transient retries; returns the outcome or raises the last error."""
    for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
        try:
            return await sync_history_async(
                store, client, symbol, interval, bars,
                first_bars=settings.sync_first_bars, overlap_bars=settings.sync_overlap_bars,
                source=source, clock_skew_s=settings.clock_skew_s,
            )
        except Exception as exc:  # noqa: BLE001 - classified below
            if not _is_transient(exc) or attempt == TRANSIENT_ATTEMPTS:
                raise
            delay = TRANSIENT_BASE_DELAY_S * 2 ** (attempt - 1) * (0.5 + random.random())
            log.warning(f"{interval.value}|{symbol}: transient error ({_reason(exc)}); "
                        f"retry {attempt}/{TRANSIENT_ATTEMPTS - 1} in {delay:.1f}s")
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def _checks_run_as_steps(context: dg.AssetExecutionContext) -> bool:
    """True when this run plans the partitioned check steps (a single-partition run with
    checks selected, as the UI's "Materialize" of one key does)."""
    if not context.has_partition_key:
        return False
    selection = context.run.asset_check_selection
    return selection is None or any(k.asset_key == HISTORICAL_BARS for k in selection)


def _events_for(key: str, outcome: SyncOutcome | None, exc: BaseException | None,
                checks_as_steps: bool, store, clock_skew_s: float, log):
    if exc is not None:
        reason = _reason(exc)
        log.error(f"{key}: FAILED: {type(exc).__name__}: {reason}")
        yield dg.AssetObservation(
            asset_key=HISTORICAL_BARS, partition=key,
            description=f"sync failed: {reason}",
            metadata={"sync_error": reason, "error_type": type(exc).__name__,
                      "transient": _is_transient(exc),
                      "failed_at": dg.MetadataValue.timestamp(utcnow())},
        )
        if isinstance(exc, StoreDamagedError):
            # reads refuse a stored bar that breaks the OHLC rules, so the check that would
            # have listed it cannot read it either: it fails with the read's own words
            yield dg.AssetCheckEvaluation(
                asset_key=HISTORICAL_BARS, check_name="ohlc_sanity", passed=False, partition=key,
                severity=dg.AssetCheckSeverity.ERROR, blocking=True, description=reason,
                metadata={"error": reason, "recover": "pocketquant doctor"})
        return
    log.info(f"{key}: {outcome.summary()}")
    if checks_as_steps:
        # the partitioned check steps run after this step
        yield dg.MaterializeResult(metadata=_with_preview(outcome, store))
        return
    yield dg.AssetMaterialization(asset_key=HISTORICAL_BARS, partition=key,
                                  metadata=_with_preview(outcome, store))
    # no check step runs for these keys (a range run, or a job without checks): evaluate the
    # checks here, per key; a failed blocking check fails the step after every key is reported
    symbol, interval = split_key(key)
    for check in evaluate_all(store, symbol, interval, outcome.fetched_duplicate_times,
                              names=RANGE_CHECK_NAMES, first_bars=outcome.first_sync_bars,
                              clock_skew_s=clock_skew_s):
        yield check.to_evaluation(key)


def _with_preview(outcome: SyncOutcome, store) -> dict:
    """The outcome's metadata plus the newest stored bars as a table."""
    metadata = outcome_metadata(outcome)
    frame = store.read_bars(outcome.symbol, outcome.interval, limit=PREVIEW_BARS)
    metadata["latest_bars"] = bars_preview(frame)
    return metadata


def progress_due(done: int, total: int) -> bool:
    """Whether the run logs a progress line after ``done`` of ``total`` keys: every key in a
    run of ten or fewer, about ten lines in a longer one (each line is an event-log write)."""
    return total > 1 and (done % -(-total // 10) == 0 or done == total)


def summary_table(rows: list[tuple[str, SyncOutcome | None, BaseException | None]]) -> str:
    """The run's closing table: one line per key, failures with their reason."""
    head = f"{'PARTITION':<28} {'RESULT':<7} {'MODE':<11} {'FETCHED':>7} {'NEW':>6} {'UPD':>6} {'STORED':>7}  LAST BAR (UTC)"
    lines = [head, "-" * len(head)]
    for key, outcome, exc in sorted(rows, key=lambda r: (r[2] is None, r[0])):
        if exc is not None:
            lines.append(f"{key:<28} {'FAILED':<7} {_reason(exc)}")
            continue
        last = outcome.stored_last_time.strftime("%Y-%m-%d %H:%M") if outcome.stored_last_time else "-"
        lines.append(f"{key:<28} {'ok':<7} {outcome.mode:<11} {outcome.fetched:>7} {outcome.inserted:>6} "
                     f"{outcome.updated:>6} {outcome.stored_bars:>7}  {last}")
    failed = sum(1 for _, _, exc in rows if exc is not None)
    lines.append(f"{len(rows) - failed} synced, {failed} failed, "
                 f"{sum(o.inserted for _, o, _ in rows if o)} new bars")
    return "\n".join(lines)


def _tag_run(context: dg.AssetExecutionContext, keys: list[str]) -> None:
    """Name what the run covers in its tags (runs from the UI or a backfill arrive without)."""
    wanted = coverage_tags(keys)
    missing = {k: v for k, v in wanted.items() if context.run.tags.get(k) != v}
    if missing:
        context.instance.add_run_tags(context.run.run_id, missing)


HISTORY_DESCRIPTION = f"""OHLCV bars from TradingView's chart session, synced incrementally into the
bar store: one partition per symbol x interval (`<interval>|<symbol>`, e.g. `1d|NASDAQ:AAPL`).
A partition's latest materialization is its sync status (bars fetched, inserted, stored, first
and last bar, history depth, the latest bars); a failed sync leaves the partition failed with
the reason in the run's log and in a `sync_error` observation.

**Re-sync N bars** (deeper history, or a repair): open the partitions, select them, then
*Materialize ▾ → Open launchpad* and set

```yaml
ops:
  historical_bars:
    config:
      bars: 5000   # 1..{MAX_BARS}; empty = automatic (first sync SYNC_FIRST_BARS, then incremental)
```

A backfill (several partitions, no launchpad) takes the run tag `{BARS_TAG}=N` instead.
"""


@dg.asset(
    key=HISTORICAL_BARS,
    partitions_def=bars_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="tradingview",
    retry_policy=dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL,
                                jitter=dg.Jitter.PLUS_MINUS),
    output_required=False,
    group_name="market_data",
    kinds={"python", "sqlite"},
    deps=[TRADINGVIEW],
    description=HISTORY_DESCRIPTION,
    metadata={"partition_key_format": "<interval>|<symbol>, e.g. 1d|NASDAQ:AAPL",
              "dagster/column_schema": BAR_SCHEMA},
)
async def historical_bars(
    context: dg.AssetExecutionContext,
    config: HistoryConfig,
    bar_store: BarStoreResource,
    tradingview: TradingViewResource,
):
    keys = [str(k) for k in context.partition_keys]
    try:
        bars = resolve_bars(config, dict(context.run.tags))
    except InvalidInputError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    settings = tradingview.settings()
    source = tradingview.source
    store = bar_store.get()
    checks_as_steps = _checks_run_as_steps(context)
    _tag_run(context, keys)
    tags = coverage_tags(keys)
    context.log.info(f"syncing {tags[RANGE_TAG]} from {source} "
                     f"({'automatic' if bars is None else bars} bars each)")
    if not checks_as_steps:
        context.log.info(f"checks ({', '.join(RANGE_CHECK_NAMES)}) are evaluated in this step, "
                         "per partition, right after it syncs; a check step Dagster reports as "
                         "skipped in this run has nothing left to do")

    failures: list[tuple[str, BaseException]] = []
    done: list[tuple[str, SyncOutcome | None, BaseException | None]] = []
    async with tradingview.open_client() as client:
        sem = asyncio.Semaphore(max(1, settings.tradingview_concurrency))

        async def run(key: str):
            symbol, interval = split_key(key)
            async with sem:
                try:
                    return key, await _sync_one(store, client, symbol, interval, bars,
                                                settings, source, context.log), None
                except Exception as exc:  # noqa: BLE001 - reported per key below
                    return key, None, exc

        # report each key as soon as it is synced: writing its events overlaps the fetches
        # still in flight (the server keeps computing while Dagster writes the event log)
        tasks = [asyncio.ensure_future(run(k)) for k in keys]
        try:
            for next_done in asyncio.as_completed(tasks):
                key, outcome, exc = await next_done
                for event in _events_for(key, outcome, exc, checks_as_steps, store,
                                         settings.clock_skew_s, context.log):
                    yield event
                done.append((key, outcome, exc))
                if progress_due(len(done), len(keys)):
                    context.log.info(f"progress: {len(done)} of {len(keys)} partition(s) done")
                if exc is not None:
                    failures.append((key, exc))
        finally:
            for task in tasks:
                task.cancel()

    context.log.info("sync summary\n" + summary_table(done))
    if failures:
        lines = [f"{key}: {type(exc).__name__}: {_reason(exc)}" for key, exc in failures]
        transient_only = all(_is_transient(exc) for _, exc in failures)
        # one line for one key (the usual case from the UI); one line per key otherwise
        description = (lines[0] if len(keys) == 1 else
                       f"{len(failures)} of {len(keys)} partition(s) failed to sync:\n" + "\n".join(lines))
        raise dg.Failure(
            description=description,
            metadata={
                "failed_partitions": dg.MetadataValue.json(
                    {key: _reason(exc) for key, exc in failures}),
                "failed_count": len(failures),
                "synced_count": len(keys) - len(failures),
            },
            # a single key that kept failing transiently may still succeed on a later attempt
            allow_retries=transient_only and context.has_partition_key,
        )
