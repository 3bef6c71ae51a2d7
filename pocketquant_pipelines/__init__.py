"""PocketQuant: TradingView market data, aggregated and stored, orchestrated by Dagster.

Package map (see docs/architecture.md):
  market/       pure domain core: intervals, symbols, sessions/alignment, bars, ticks, aggregator
  tradingview/  wire codec, asyncio client, protocol simulator (no Dagster)
  storage/      bar store + live cache interfaces and their backends (no Dagster)
  defs/         the only place Dagster is imported (plus definitions.py)
"""
