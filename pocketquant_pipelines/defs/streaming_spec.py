"""``streamed_bars``: the bars the streamer sidecar writes, as an external (non-executable)
asset so lineage shows TradingView's live feed next to the historical sync.

Kept apart from ``streaming.py`` so what the asset is does not pull in what the stream
sensor needs (the reconciliation code); ``ohlcv_dataset`` depends on its key
(``defs.keys.STREAMED_BARS``), and ``defs/streaming.py`` reports its materializations from a
sensor.
"""

import dagster as dg

from pocketquant_pipelines.defs.keys import STREAMED_BARS, TRADINGVIEW
from pocketquant_pipelines.defs.partitions import bars_partitions

streamed_bars = dg.AssetSpec(
    key=STREAMED_BARS,
    partitions_def=bars_partitions,
    deps=[TRADINGVIEW],
    group_name="market_data",
    kinds={"python"},
    description="Completed bars written by the streamer (TradingView quote session -> tick "
    "aggregator -> bar store). Reported by a sensor that follows the store's ingest cursor.",
    metadata={"partition_key_format": "<interval>|<symbol>, e.g. 1m|BINANCE:BTCUSDT"},
)
