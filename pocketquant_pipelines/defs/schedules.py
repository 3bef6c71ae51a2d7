"""Jobs and schedules of the historical sync.

Dynamic x Static partitions rule out ``build_schedule_from_partitioned_job``, and a schedule
cannot launch a backfill in Dagster 1.13 (only sensors can), so the schedules fan out
themselves — in *range runs*, not one run per partition: each RunRequest carries the tags
``dagster/asset_partition_range_start/end`` over a contiguous block of keys. Keys are ordered
interval-major with symbols in registration order, so ``"1d|<first>" .. "1d|<last>"`` is one
interval for a block of symbols. ``historical_bars`` syncs the block concurrently and reports
one materialization per key; one symbol's failure does not stop the others.

* ``sync_all_symbols``: every 6 hours, all symbols x 13 intervals, 500 bars per partition.
* ``sync_daily_data``: hourly 09:00-17:00 UTC Mon-Fri, the 1d interval, 10 bars per partition.

The cadences are settings (``SYNC_ALL_SYMBOLS_CRON``, ``SYNC_DAILY_DATA_CRON``), read when the
code location loads: a deployment may sync more often than the defaults.

Both start RUNNING (a fresh install keeps itself up to date). The UI toggle overrides that.
"""

from collections.abc import Sequence

import dagster as dg

from pocketquant_pipelines.defs.keys import BARS_TAG, HISTORICAL_BARS, TRIGGER_TAG
from pocketquant_pipelines.defs.partitions import INTERVAL_KEYS, SYMBOLS_PARTITIONS_NAME, key_str
from pocketquant_pipelines.defs.run_tags import coverage_tags
from pocketquant_pipelines.market.symbols import Symbol
from pocketquant_pipelines.settings import load_settings

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
SYMBOLS_PER_RUN = 100   # one range run syncs at most this many symbols of one interval
_SETTINGS = load_settings()

historical_sync = dg.define_asset_job(
    "historical_sync",
    # the asset evaluates its checks per synced key itself; check steps in a range run would
    # only be reported as skipped
    selection=dg.AssetSelection.assets(HISTORICAL_BARS).without_checks(),
    description="Sync historical bars of the selected partition(s); the asset evaluates every "
    "check per synced partition. Run config historical_bars.config.bars re-syncs N bars.",
)


def registered_symbols(instance: dg.DagsterInstance) -> list[str]:
    """The ``symbols`` dynamic partition keys, in registration order, valid ones only."""
    out = []
    for key in instance.get_dynamic_partitions(SYMBOLS_PARTITIONS_NAME):
        try:
            if str(Symbol.parse(key)) == key:
                out.append(key)
        except ValueError:
            continue
    return out


def range_run_requests(
    symbols: Sequence[str], intervals: Sequence[str], bars: int | None, trigger: str,
    tick: str, symbols_per_run: int = SYMBOLS_PER_RUN,
) -> list[dg.RunRequest]:
    """One RunRequest per (interval, block of consecutive symbols), as a key-range run."""
    requests = []
    for interval in intervals:
        for i in range(0, len(symbols), symbols_per_run):
            block = symbols[i:i + symbols_per_run]
            start, end = key_str(block[0], interval), key_str(block[-1], interval)
            tags = {RANGE_START_TAG: start, RANGE_END_TAG: end, TRIGGER_TAG: trigger,
                    **coverage_tags(key_str(s, interval) for s in block)}
            if bars is not None:
                tags[BARS_TAG] = str(bars)
            requests.append(dg.RunRequest(
                run_key=f"{trigger}:{interval}:{i // symbols_per_run}:{tick}",
                run_config=(dg.RunConfig(ops={"historical_bars": {"config": {"bars": bars}}})
                            if bars is not None else None),
                tags=tags,
            ))
    return requests


def _fan_out(context: dg.ScheduleEvaluationContext, intervals: Sequence[str], bars: int, trigger: str):
    symbols = registered_symbols(context.instance)
    if not symbols:
        return dg.SkipReason("no symbols registered yet (pocketquant symbols add ...)")
    tick = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "manual"
    return range_run_requests(symbols, intervals, bars, trigger, tick)


def _sync_schedule(name: str, cron: str, intervals: Sequence[str], bars: int, description: str):
    """A RUNNING UTC schedule of ``historical_sync`` that syncs ``bars`` bars of ``intervals``
    for every registered symbol."""

    @dg.schedule(name=name, cron_schedule=cron, execution_timezone="UTC", job=historical_sync,
                 default_status=dg.DefaultScheduleStatus.RUNNING, description=description)
    def _schedule(context: dg.ScheduleEvaluationContext):
        return _fan_out(context, intervals, bars, name)

    return _schedule


sync_all_symbols = _sync_schedule(
    "sync_all_symbols", _SETTINGS.sync_all_symbols_cron, INTERVAL_KEYS, 500,
    f"Cron {_SETTINGS.sync_all_symbols_cron!r} UTC (SYNC_ALL_SYMBOLS_CRON; default every 6 "
    "hours): all symbols x 13 intervals, 500 bars per partition, in range runs of up to 100 "
    "symbols of one interval.")

sync_daily_data = _sync_schedule(
    "sync_daily_data", _SETTINGS.sync_daily_data_cron, ["1d"], 10,
    f"Cron {_SETTINGS.sync_daily_data_cron!r} (SYNC_DAILY_DATA_CRON; default hourly "
    "09:00-17:00 UTC Mon-Fri): the 1d interval of every symbol, 10 bars.")
