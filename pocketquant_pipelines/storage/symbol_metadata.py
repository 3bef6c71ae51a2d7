"""What ``symbol_resolved`` says about a symbol -> its registry entry.

A historical sync, ``symbols add`` and the streamer (for a symbol it streams before any sync)
all record it the same way, so it lives beside the registry rather than in any of them.
"""

from collections.abc import Mapping

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.calendar import calendar_record
from pocketquant_pipelines.market.timeutil import ensure_utc
from pocketquant_pipelines.storage.bars import BarStore

log = get_logger("pocketquant.storage.symbol_metadata")


def record_metadata(store: BarStore, symbol: str, meta) -> None:
    """Store what symbol_resolved told us into the registry (only fields it actually sent),
    including its calendar (holidays, corrections in force, when it was read); the calendar's
    "history" part, which only synced daily bars decide, is kept as it was."""
    if meta is None:
        return
    fields = {
        name: getattr(meta, name)
        for name in ("name", "description", "type", "currency", "timezone", "session", "pricescale")
        if getattr(meta, name, None) is not None
    }
    current = store.get_symbol(symbol)
    if current is None:
        return  # a sync of an unregistered symbol (scripts, benches) leaves the registry alone
    # name and description are the user's display fields once set (`symbols add --name`):
    # symbol_resolved only fills them while they are empty
    for name in ("name", "description"):
        if getattr(current, name):
            fields.pop(name, None)
    calendar = _calendar_from_metadata(symbol, meta, current.calendar)
    if calendar is not None:
        fields["calendar"] = calendar
    if not fields:
        return
    store.update_symbol(symbol, **fields)


def _calendar_from_metadata(symbol: str, meta, current: Mapping) -> dict | None:
    resolved_at = getattr(meta, "resolved_at", None)
    calendar_fields = getattr(meta, "calendar_fields", None)
    if resolved_at is None or calendar_fields is None:
        return None  # not from a symbol_resolved: nothing said about the calendar
    try:
        return calendar_record(calendar_fields(), ensure_utc(resolved_at).isoformat(), current.get("history"))
    except InvalidInputError as exc:
        # The bars are still good: keep the calendar the registry had and say why.
        log.error("symbol_calendar_invalid", symbol=symbol, error=str(exc), kept="previous calendar")
        return None
