"""The symbol registry role: which symbols exist, what TradingView said of them, which stream."""

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """A registry entry. Metadata fields come from TradingView's ``symbol_resolved``."""

    symbol: str                      # canonical EXCHANGE:CODE
    name: str | None = None
    description: str | None = None
    type: str | None = None          # "stock", "crypto", "index", "futures", ...
    currency: str | None = None
    timezone: str | None = None      # IANA; None until the first sync resolves it
    session: str | None = None       # TradingView session string, e.g. "0930-1600", "24x7"
    pricescale: int | None = None
    stream: bool = False             # the streamer subscribes to it
    added_at: datetime | None = None
    updated_at: datetime | None = None
    extra: Mapping[str, object] = field(default_factory=dict)  # JSON-able leftovers
    # The exchange calendar, JSON-able (see market.calendar for the meaning of each key):
    # {"holidays": ["YYYYMMDD", ...], "corrections": "SESSION:YYYYMMDD,...;...",
    #  "resolved_at": ISO-8601 UTC of the symbol_resolved it came from,
    #  "history": {"first": "YYYYMMDD", "last": "YYYYMMDD", "closed": [...], "open": [...]}}
    # Empty until symbol_resolved (or synced daily history) says something.
    calendar: Mapping[str, object] = field(default_factory=dict)


class SymbolRegistry(Protocol):
    @abstractmethod
    def add_symbol(self, info: SymbolInfo) -> bool:
        """Insert; returns False (and changes nothing) when the symbol is already registered."""

    @abstractmethod
    def get_symbol(self, symbol: str) -> SymbolInfo | None: ...

    @abstractmethod
    def list_symbols(self, stream_only: bool = False) -> list[SymbolInfo]: ...

    @abstractmethod
    def update_symbol(self, symbol: str, **fields: object) -> SymbolInfo:
        """Update the given SymbolInfo fields; UnknownSymbolError if not registered."""

    @abstractmethod
    def remove_symbol(self, symbol: str) -> bool: ...
