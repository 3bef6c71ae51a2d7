"""TradingView data WebSocket: wire codec, asyncio client and a protocol simulator.

No Dagster here. Public surface (see docs/architecture.md):

  codec.py      encode_frame(obj|str) -> str ; decode_message(str) -> list[Frame] ; FrameDecodeError
  errors.py     TradingViewError and its typed subclasses
  models.py     SymbolMetadata, HistoryResult, ClientStats
  client.py     TradingViewClient (fetch_history, quote_stream, close), fetch_history_sync
  simulator/    SimulatorServer (in-process, free port) and the `pocketquant simulate` entry
"""
