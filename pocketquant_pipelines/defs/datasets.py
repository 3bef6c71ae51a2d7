"""``ohlcv_dataset``: the Parquet file of one (symbol, interval), rebuilt from the bar store
whenever its upstream bars change.

Upstream: ``historical_bars`` (TradingView history) and ``streamed_bars`` (the streamer).
Rebuilds after a historical sync are declarative: an eager automation condition requests a
partition when its ``historical_bars`` partition updates. It ignores ``streamed_bars``
entirely: missing ones (most symbols are never streamed — plain ``eager()`` would wait for
them forever) and updated ones (``streamed_bars_sensor`` folds those into one refresh run). The condition is
evaluated by ``pocketquant_automation`` (RUNNING by default, defined here), not by Dagster's
auto-created sensor, which starts STOPPED.

Rebuilds after stream writes are folded: ``streamed_bars_sensor`` collects the changed
partitions and launches at most one ``streamed_dataset_refresh`` run per
``POCKETQUANT_DATASET_REBUILD_S`` (default 15 min) covering all of them, so a streamed
symbol adds a handful of runs per hour to the run history, not one per partition per tick.

Layout of the files: ``pocketquant_pipelines.datasets`` (hive partitions interval=/symbol=,
readable with pandas/polars/DuckDB).
"""

import dagster as dg
from pydantic import Field

from pocketquant_pipelines import datasets as ds
from pocketquant_pipelines.charts import chart_markdown
from pocketquant_pipelines.defs.keys import HISTORICAL_BARS, OHLCV_DATASET, STREAMED_BARS
from pocketquant_pipelines.defs.partitions import bars_partitions, split_key
from pocketquant_pipelines.defs.resources import BarStoreResource
from pocketquant_pipelines.storage.frames import table_to_frame

CHART_BARS = 60  # bars in the materialization's text chart
_NOT_STREAMED = dg.AssetSelection.assets(STREAMED_BARS)
DATASET_CONDITION = (
    dg.AutomationCondition.eager()
    .replace("any_deps_missing", dg.AutomationCondition.any_deps_missing().ignore(_NOT_STREAMED))
    # streamed_bars updates are folded by streamed_bars_sensor into one refresh run per
    # period; reacting here too would rebuild each changed partition on every sensor tick.
    .replace("any_deps_updated", dg.AutomationCondition.any_deps_updated().ignore(_NOT_STREAMED))
)


@dg.asset(
    key=OHLCV_DATASET,
    partitions_def=bars_partitions,
    deps=[HISTORICAL_BARS, STREAMED_BARS],
    automation_condition=DATASET_CONDITION,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="market_data",
    kinds={"parquet", "pandas"},
    description="Parquet file per (symbol, interval) under POCKETQUANT_DATA_DIR/datasets/ohlcv "
    "(hive layout interval=/symbol=, URI-encoded values). Read the whole dataset with "
    "pd.read_parquet(<data_dir>/datasets/ohlcv).",
    output_required=False,
)
def ohlcv_dataset(context: dg.AssetExecutionContext, bar_store: BarStoreResource):
    store = bar_store.get()
    data_dir = bar_store.settings().data_dir
    single = context.has_partition_key
    for key in [str(k) for k in context.partition_keys]:
        metadata = rebuild_partition(store, data_dir, key)
        if single:
            yield dg.MaterializeResult(metadata=metadata)
        else:
            yield dg.AssetMaterialization(asset_key=OHLCV_DATASET, partition=key, metadata=metadata)


def rebuild_partition(store, data_dir, key: str) -> dict:
    """Rewrite the Parquet file of one partition from the bar store; its metadata."""
    symbol, interval = split_key(key)
    table = store.read_bars_table(symbol, interval)
    written = ds.write_series(data_dir, symbol, interval, table)
    latest = table_to_frame(table.slice(max(0, table.num_rows - CHART_BARS)))
    return {
        # the UI shows markdown inline but images only from http(s): the chart is text
        "chart": dg.MetadataValue.md(chart_markdown(latest, f"{symbol} {interval}", CHART_BARS)),
        "path": dg.MetadataValue.path(str(written.path)),
        "dagster/row_count": int(written.rows),
        "rows": int(written.rows),
        "partial_rows": int(written.partial_rows),
        "stream_rows": int(written.stream_rows),
        "bytes": int(written.bytes),
        "first_bar_time": (dg.MetadataValue.timestamp(written.first_time)
                           if written.first_time else dg.MetadataValue.null()),
        "last_bar_time": (dg.MetadataValue.timestamp(written.last_time)
                          if written.last_time else dg.MetadataValue.null()),
        "dataset_root": dg.MetadataValue.path(str(ds.dataset_root(data_dir))),
    }


class StreamedRebuildConfig(dg.Config):
    partitions: list[str] = Field(
        description="ohlcv_dataset partition keys ('<interval>|<symbol>') the streamer changed "
        "since the last rebuild; streamed_bars_sensor fills this in.")


@dg.op(name="rebuild_streamed_datasets", out={},
       description="Rewrites the ohlcv_dataset partitions of the given keys and reports one "
       "materialization per key.")
def rebuild_streamed_datasets(context: dg.OpExecutionContext, config: StreamedRebuildConfig,
                              bar_store: BarStoreResource):
    store = bar_store.get()
    data_dir = bar_store.settings().data_dir
    for key in config.partitions:
        metadata = rebuild_partition(store, data_dir, key)
        context.log.info(f"{key}: {metadata['rows']} rows "
                         f"({metadata['stream_rows']} from the stream) -> {metadata['path'].value}")
        yield dg.AssetMaterialization(asset_key=OHLCV_DATASET, partition=key, metadata=metadata)


@dg.job(name="streamed_dataset_refresh",
        description="One folded rebuild of every ohlcv_dataset partition the streamer changed "
        "(at most one run per POCKETQUANT_DATASET_REBUILD_S; launched by streamed_bars_sensor).")
def streamed_dataset_refresh():
    rebuild_streamed_datasets()


pocketquant_automation = dg.AutomationConditionSensorDefinition(
    "pocketquant_automation",
    target=dg.AssetSelection.assets(OHLCV_DATASET),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates ohlcv_dataset's eager condition: rebuild a dataset partition after "
    "its historical or streamed bars change.",
)
