"""A tick: one observed trade price (TradingView quote updates are throttled snapshots, so a
"tick" is one price update, not necessarily one trade)."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Tick:
    symbol: str
    time: datetime  # aware UTC: lp_time when the server sent it, else receive time
    price: float
    volume: float | None = None  # per-tick volume derived from cumulative session volume
    bid: float | None = None
    ask: float | None = None
    cumulative_volume: float | None = None  # the server's session total, as received

    def to_dict(self) -> dict:
        return {
            "symbol": self.symbol,
            "time": self.time.isoformat(),
            "price": self.price,
            "volume": self.volume,
            "bid": self.bid,
            "ask": self.ask,
            "cumulative_volume": self.cumulative_volume,
        }
