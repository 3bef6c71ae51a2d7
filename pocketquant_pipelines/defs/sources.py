"""``tradingview``: the external source every bar comes from, as an asset spec Dagster never
executes, so lineage starts where the data does: TradingView -> historical_bars (chart
session) / streamed_bars (quote session) -> ohlcv_dataset."""

import dagster as dg

from pocketquant_pipelines.defs.keys import TRADINGVIEW

tradingview = dg.AssetSpec(
    key=TRADINGVIEW,
    group_name="market_data",
    kinds={"websocket"},
    description="TradingView's WebSocket (TRADINGVIEW_WS_URL; the demo points it at the local "
    "simulator). History comes from its chart session, live quotes from its quote session. "
    "External: PocketQuant reads it and never materializes it.",
    metadata={"url_setting": "TRADINGVIEW_WS_URL"},
)
