"""What one connection remembers: its chart sessions (resolved symbols, series) and quote
sessions (subscriptions), keyed by the ids the client chose."""

from __future__ import annotations

from dataclasses import dataclass, field

from pocketquant_pipelines.market.intervals import Interval
from tradingview_simulator.quote_feed import QuoteFeed
from tradingview_simulator.symbol_model import SymbolModel

__all__ = ["ChartSession", "QuoteSession", "QuoteSubscription", "ResolvedSymbol", "SeriesState"]


@dataclass
class ResolvedSymbol:
    ref: str
    descriptor: str
    model: SymbolModel | None      # None: unknown symbol (symbol_error)
    sent: bool = False             # symbol_resolved / symbol_error has gone out


@dataclass
class SeriesState:
    sid: str
    turnaround: str
    ref: str
    model: SymbolModel
    interval: Interval
    requested: int
    loaded: int = 0
    oldest: int | None = None       # epoch of the oldest bar sent
    last_time: int | None = None    # epoch of the newest bar sent
    last_index: int = -1
    cursor: int = 0                 # visible time up to which bars have been sent
    completed: bool = False
    live: bool = True


@dataclass
class ChartSession:
    cs: str
    timezone: str = "Etc/UTC"
    symbols: dict[str, ResolvedSymbol] = field(default_factory=dict)
    series: dict[str, SeriesState] = field(default_factory=dict)


@dataclass
class QuoteSubscription:
    name: str                      # exactly the string subscribed (echoed in "n")
    model: SymbolModel
    feed: QuoteFeed


@dataclass
class QuoteSession:
    qs: str
    fields: set[str] | None = None
    subs: dict[str, QuoteSubscription] = field(default_factory=dict)
    fast: set[str] = field(default_factory=set)
    hibernated: bool = False
