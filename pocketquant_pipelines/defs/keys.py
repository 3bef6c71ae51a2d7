"""Asset keys and run tags shared by the modules in ``defs/`` (and by ``pocketquant status``)."""

import dagster as dg

TRADINGVIEW = dg.AssetKey("tradingview")
HISTORICAL_BARS = dg.AssetKey("historical_bars")
SYNC_OVERVIEW = dg.AssetKey("sync_overview")
STREAMED_BARS = dg.AssetKey("streamed_bars")
OHLCV_DATASET = dg.AssetKey("ohlcv_dataset")

BARS_TAG = "pocketquant/bars"          # bar count for runs that cannot carry run config
TRIGGER_TAG = "pocketquant/trigger"    # what launched a run: schedule name, registry, streamer
