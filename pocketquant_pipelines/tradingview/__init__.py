"""TradingView data WebSocket: wire codec and asyncio client (the protocol simulator is the
separate package ``tradingview_simulator``).

No Dagster here. Public surface (see docs/architecture.md):

  codec.py      encode_frame(obj|str) -> str ; decode_message(str) -> list[Frame] ; FrameDecodeError
  errors.py     TradingViewError and its typed subclasses
  models.py     SymbolMetadata, HistoryResult, ClientStats
  client.py     TradingViewClient (fetch_history, quote_stream, close), fetch_history_sync
"""
