"""What a simulator is started with: one frozen value, checked once.

The live, switchable part (fault injection, :class:`~tradingview_simulator.faults.FaultConfig`)
is not here: tests flip faults while clients are connected, so they are server state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from pocketquant_pipelines.errors import InvalidInputError
from tradingview_simulator.symbol_specs import DEFAULT_SYMBOLS, SymbolSpec

ANONYMOUS_DEPTH = 5000
PAID_DEPTH = 20000
DEFAULT_PAID_TOKENS = ("sim_paid_token",)


@dataclass(frozen=True)
class SimulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0                      # 0: any free port (the server reports the one it got)
    seed: int = 42                     # same seed, same data
    speed: float = 1.0                 # simulated seconds per wall second while behind the wall clock
    sim_start: datetime | None = None  # None: now (accelerated: early enough to run fast for an hour)
    heartbeat_s: float = 10.0
    heartbeat_grace_s: float | None = None  # None: twice heartbeat_s
    symbols: tuple[SymbolSpec, ...] = DEFAULT_SYMBOLS
    accepted_tokens: frozenset[str] = frozenset()
    paid_tokens: frozenset[str] = frozenset(DEFAULT_PAID_TOKENS)
    anonymous_depth: int = ANONYMOUS_DEPTH
    paid_depth: int = PAID_DEPTH
    pump_interval_s: float = 0.1       # how often live data (du, qsd) is produced
    pack_window_s: float = 0.003       # frames emitted within this share one WebSocket message
    resolve_delay_s: float = 0.05      # symbol_resolved follows resolve_symbol this much later
    max_frames_per_message: int = 64
    warm_up: bool = False              # precompute daily history in the background at start
    empty_first_update: bool = False   # a new series' first timescale_update is empty (as observed)

    def __post_init__(self) -> None:
        if not self.heartbeat_s > 0:
            raise InvalidInputError(f"heartbeat_s {self.heartbeat_s!r} must be > 0")
        specs = tuple(self.symbols)
        for spec in specs:
            if not isinstance(spec, SymbolSpec):
                raise InvalidInputError(f"symbol spec {spec!r} is not a SymbolSpec")
        # frozen: normalised values are set once, here
        set_ = object.__setattr__
        set_(self, "symbols", specs)
        set_(self, "accepted_tokens", frozenset(self.accepted_tokens))
        set_(self, "paid_tokens", frozenset(self.paid_tokens))
        set_(self, "heartbeat_s", float(self.heartbeat_s))
        set_(self, "heartbeat_grace_s", float(self.heartbeat_grace_s) if self.heartbeat_grace_s is not None
             else 2 * self.heartbeat_s)
        for name in ("pump_interval_s", "pack_window_s", "resolve_delay_s"):
            set_(self, name, float(getattr(self, name)))
        for name in ("seed", "anonymous_depth", "paid_depth", "max_frames_per_message"):
            set_(self, name, int(getattr(self, name)))
        set_(self, "warm_up", bool(self.warm_up))
        set_(self, "empty_first_update", bool(self.empty_first_update))

    @classmethod
    def of(cls, symbols: Iterable[SymbolSpec] | None = None, delays: Mapping[str, int] | None = None,
           **settings) -> SimulatorConfig:
        """A config where ``symbols=None`` means the default symbols and ``delays`` (symbol ->
        seconds) serves those symbols delayed."""
        specs = tuple(DEFAULT_SYMBOLS if symbols is None else symbols)
        return cls(symbols=with_delays(specs, delays or {}), **settings)


def with_delays(specs: tuple[SymbolSpec, ...], delays: Mapping[str, int]) -> tuple[SymbolSpec, ...]:
    """``specs`` with ``delay_s`` set for the symbols named in ``delays``."""
    known = {s.symbol for s in specs}
    for name in delays:
        if name not in known:
            raise InvalidInputError(f"delays: unknown simulator symbol {name!r}")
    return tuple(replace(s, delay_s=int(delays[s.symbol])) if s.symbol in delays else s for s in specs)
