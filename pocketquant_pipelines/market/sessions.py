"""Trading sessions and bar alignment (CONTRACT — helper A implements; signatures are fixed).

A ``Session`` is what TradingView's ``symbol_resolved`` tells us: an IANA ``timezone`` and a
``session`` string (``"24x7"``, ``"0930-1600"``, ``"0930-1600:23456"``, ``"2;0000-0000:1234567"``).
"""

from dataclasses import dataclass
from datetime import datetime

from pocketquant_pipelines.market.intervals import Interval


@dataclass(frozen=True, slots=True)
class Session:
    timezone: str  # IANA, e.g. "Etc/UTC", "America/New_York"
    spec: str      # TradingView session string as received, e.g. "24x7", "0930-1600"

    @classmethod
    def parse(cls, spec: str, timezone: str) -> "Session":
        """Validate and build; InvalidSessionError names the bad spec or timezone."""
        raise NotImplementedError

    @property
    def is_24x7(self) -> bool:
        raise NotImplementedError

    def is_open(self, t: datetime) -> bool:
        """True when aware-UTC instant ``t`` is inside a trading session."""
        raise NotImplementedError


SESSION_24X7 = Session("Etc/UTC", "24x7")


def bar_start(t: datetime, interval: Interval, session: Session = SESSION_24X7) -> datetime | None:
    """Start (aware UTC) of the bar containing ``t``; None if ``t`` is outside every session."""
    raise NotImplementedError


def bar_end(start: datetime, interval: Interval, session: Session = SESSION_24X7) -> datetime:
    """Exclusive end of the bar that starts at ``start`` (intraday bars end at the session
    close at the latest; 1d at the session close; 1w/1M at the last session's close)."""
    raise NotImplementedError


def bar_starts_between(
    start: datetime, end: datetime, interval: Interval, session: Session = SESSION_24X7
) -> list[datetime]:
    """Every bar start in [start, end) that a market with this session would produce
    (closed markets produce none: this is how gap checks tell gaps from closures)."""
    raise NotImplementedError
