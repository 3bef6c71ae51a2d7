"""``ohlcv_dataset``: the Parquet file of one (symbol, interval), rebuilt from the bar store
whenever its upstream bars change.

Upstream: ``historical_bars`` (TradingView history) and ``streamed_bars`` (the streamer).
Rebuilds after a historical sync are declarative: an eager automation condition requests a
partition when its ``historical_bars`` partition updates. It ignores ``streamed_bars``
entirely: missing ones (most symbols are never streamed — plain ``eager()`` would wait for
them forever) and updated ones (``streamed_bars_sensor`` already requests those partitions). The condition is
evaluated by ``pocketquant_automation`` (RUNNING by default, defined here), not by Dagster's
auto-created sensor, which starts STOPPED.

Layout of the files: ``pocketquant_pipelines.datasets`` (hive partitions interval=/symbol=,
readable with pandas/polars/DuckDB).
"""

import dagster as dg

from pocketquant_pipelines import datasets as ds
from pocketquant_pipelines.defs.keys import HISTORICAL_BARS, OHLCV_DATASET, STREAMED_BARS
from pocketquant_pipelines.defs.partitions import bars_partitions, split_key
from pocketquant_pipelines.defs.resources import BarStoreResource

_NOT_STREAMED = dg.AssetSelection.assets(STREAMED_BARS)
DATASET_CONDITION = (
    dg.AutomationCondition.eager()
    .replace("any_deps_missing", dg.AutomationCondition.any_deps_missing().ignore(_NOT_STREAMED))
    # streamed_bars updates are handled by streamed_bars_sensor, which requests exactly the
    # changed partitions; reacting here too would rebuild each of them twice.
    .replace("any_deps_updated", dg.AutomationCondition.any_deps_updated().ignore(_NOT_STREAMED))
)


@dg.asset(
    key=OHLCV_DATASET,
    partitions_def=bars_partitions,
    deps=[HISTORICAL_BARS, STREAMED_BARS],
    automation_condition=DATASET_CONDITION,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="datasets",
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
        symbol, interval = split_key(key)
        table = store.read_bars_table(symbol, interval)
        written = ds.write_series(data_dir, symbol, interval, table)
        metadata = {
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
        if single:
            yield dg.MaterializeResult(metadata=metadata)
        else:
            yield dg.AssetMaterialization(asset_key=OHLCV_DATASET, partition=key, metadata=metadata)


pocketquant_automation = dg.AutomationConditionSensorDefinition(
    "pocketquant_automation",
    target=dg.AssetSelection.assets(OHLCV_DATASET),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates ohlcv_dataset's eager condition: rebuild a dataset partition after "
    "its historical or streamed bars change.",
)
