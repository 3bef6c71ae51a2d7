"""A local TradingView data server with deterministic synthetic markets and fault injection.

Tests and the offline demo run the real client against it. See docs/simulator.md.
"""

from tradingview_simulator.faults import FaultConfig, ServerStats
from tradingview_simulator.market import DEFAULT_SYMBOLS, SymbolSpec, SyntheticMarket
from tradingview_simulator.server import SimClock, SimulatorServer, run_simulator_in_thread

__all__ = [
    "DEFAULT_SYMBOLS",
    "FaultConfig",
    "ServerStats",
    "SimClock",
    "SimulatorServer",
    "SymbolSpec",
    "SyntheticMarket",
    "run_simulator_in_thread",
]
