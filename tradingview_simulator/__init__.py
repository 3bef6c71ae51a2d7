"""A local TradingView data server with deterministic synthetic markets and fault injection.

Tests and the offline demo run the real client against it. See docs/simulator.md.

The public names below are imported on first use, so importing the ``simulate`` command
(``tradingview_simulator.cli``) to mount it in the CLI does not load the server and its market.
"""

from importlib import import_module

_EXPORTS = {
    "DEFAULT_SYMBOLS": "tradingview_simulator.symbol_specs",
    "FaultConfig": "tradingview_simulator.faults",
    "ServerStats": "tradingview_simulator.faults",
    "SimClock": "tradingview_simulator.clock",
    "SimulatorConfig": "tradingview_simulator.config",
    "SimulatorServer": "tradingview_simulator.server",
    "SymbolSpec": "tradingview_simulator.symbol_specs",
    "SyntheticMarket": "tradingview_simulator.market",
    "run_simulator_in_thread": "tradingview_simulator.server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tradingview_simulator' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
