"""A registry entry -> the Session its bars align to (session string, timezone, calendar).

The one place that reads ``SymbolInfo.session`` / ``timezone`` / ``calendar``: the streamer's
aggregators, the gap and freshness checks and anything else that aligns a symbol's bars use
it, so live bars and the checks on history see the same trading days.
"""

from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.calendar import EMPTY_CALENDAR, calendar_from_record
from pocketquant_pipelines.market.sessions import SESSION_24X7, Session
from pocketquant_pipelines.storage.registry import SymbolInfo, SymbolRegistry

log = get_logger("pocketquant.storage.symbol_session")


def session_of(info: SymbolInfo | None) -> tuple[Session, bool]:
    """The symbol's trading session and whether the registry knows it.

    ``timezone``/``session`` come from ``symbol_resolved`` (a historical sync, or the streamer
    resolving a symbol it streams first). Until both are there the answer is 24x7 and False.
    An unusable session string also gives 24x7/False; an unusable calendar record gives the
    session without a calendar. Both are logged as errors naming the bad value.
    """
    if info is None or not (info.session and info.timezone):
        return SESSION_24X7, False
    try:
        calendar = calendar_from_record(info.calendar)
    except ValueError as exc:
        log.error("symbol_calendar_invalid", symbol=info.symbol, error=str(exc), fallback="no calendar")
        calendar = EMPTY_CALENDAR
    try:
        return Session.parse(info.session, info.timezone, calendar), True
    except ValueError as exc:
        log.error("symbol_session_invalid", symbol=info.symbol, session=info.session,
                  timezone=info.timezone, error=str(exc), fallback="24x7")
        return SESSION_24X7, False


def session_of_symbol(registry: SymbolRegistry, symbol: str) -> Session:
    """The registered symbol's session, or 24x7 when it is unknown or not registered."""
    return session_of(registry.get_symbol(symbol))[0]
