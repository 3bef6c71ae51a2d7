"""The streaming sidecar: TradingView live quotes -> bars at 13 intervals -> live cache and
bar store. Run with ``python -m streamer`` or ``pocketquant stream``; see docs/streamer.md."""
