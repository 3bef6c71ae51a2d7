"""Per-symbol streaming state: the aggregator, its session and the completeness anchor.

The session comes from the registry (``storage.symbol_session.session_of``): a historical
sync, or the streamer itself when it subscribes a symbol without one
(``RegistryFollower``), fills ``timezone``/``session``/``calendar`` from
``symbol_resolved``; the quote snapshot's ``timezone`` comes without the session string. Until
then the symbol is aggregated as 24x7 and a warning says so; its bars reach the live cache but
not the store (``TickPipeline._hold_unaligned``). Once the fields are filled the aggregator
is rebuilt (or, if 24x7 was right, kept and its bars stored). A calendar that closes or
corrects other days makes a different Session, so it rebuilds the aggregator too; a registry
update that leaves the closed and corrected days as they were does not.
"""

from dataclasses import dataclass, field

from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.aggregator import BarAggregator
from pocketquant_pipelines.market.intervals import ALL_INTERVALS
from pocketquant_pipelines.market.sessions import Session
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.storage.symbol_session import session_of

log = get_logger("streamer.symbols")


@dataclass
class SymbolState:
    symbol: str
    session: Session
    session_known: bool
    aggregator: BarAggregator
    # Epoch of the first tick seen since the (re)subscription. A bar that started at or before
    # it was not watched from its start (ticks missed, or the snapshot's cumulative volume
    # lumped into one tick), so it is written partial=True and a historical sync replaces it.
    anchor: float | None = None
    dirty: bool = False
    ticks: int = 0
    last_t: float | None = None     # newest tick time of this symbol (epoch)
    last_mono: float = 0.0          # monotonic clock when it arrived

    def clock(self, now_mono: float) -> float | None:
        """This symbol's market clock: its newest tick time, extrapolated at real-time speed
        while it is quiet. Per symbol, because feeds are skewed against each other (a delayed
        exchange runs 15 min behind a real-time one; a server sends symbols in turn), so
        another symbol's clock could close a bar whose ticks are still on their way."""
        if self.last_t is None:
            return None
        return self.last_t + (now_mono - self.last_mono)
    extra: dict = field(default_factory=dict)

    @classmethod
    def create(cls, info: SymbolInfo, intervals=ALL_INTERVALS) -> "SymbolState":
        session, known = session_of(info)
        if not known:
            log.warning("symbol_session_unknown", symbol=info.symbol, assumed="24x7",
                        hint="resolving it from TradingView; a historical sync records it too")
        return cls(info.symbol, session, known, BarAggregator(info.symbol, session, intervals))

    def session_changed(self, info: SymbolInfo) -> bool:
        session, known = session_of(info)
        return known and session != self.session

    def session_confirmed(self, info: SymbolInfo) -> bool:
        """The registry now knows the session and it is the 24x7 this state assumed: the bars
        were aligned right all along, so they may go to the store from now on (no rebuild)."""
        session, known = session_of(info)
        return known and not self.session_known and session == self.session
