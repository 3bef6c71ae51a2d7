"""``pocketquant simulate``: the local TradingView protocol simulator, in the foreground.

    pocketquant simulate --port 8765     # then: --ws-url ws://127.0.0.1:8765/socket.io/websocket

The command is the simulator's own (``tradingview_simulator.cli``); this is the only command
module that imports the simulator.
"""

from __future__ import annotations

from tradingview_simulator.cli import simulate

COMMANDS = [simulate]
