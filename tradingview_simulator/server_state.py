"""What a running simulator shares with each of its connections."""

from __future__ import annotations

from dataclasses import dataclass

from tradingview_simulator.clock import SimClock
from tradingview_simulator.config import SimulatorConfig
from tradingview_simulator.faults import FaultConfig, ServerStats

__all__ = ["ServerState"]


@dataclass(frozen=True)
class ServerState:
    config: SimulatorConfig  # fixed at start
    clock: SimClock          # simulated time
    faults: FaultConfig      # live switches, read on every use
    stats: ServerStats       # counters, totals over the server's life
