"""Historical sync of one (symbol, interval): fetch from TradingView, upsert into the bar store.

Plain Python, no Dagster: the ``historical_bars`` asset, ``pocketquant sync`` and the
benchmarks all call the same functions, so a sync behaves the same from the UI, a schedule
or a script.

How many bars are requested
---------------------------
* ``bars`` given (run config, ``--bars``): exactly that many, the newest ones.
* ``bars`` is None and the store has no bar yet: ``first_bars`` (``SYNC_FIRST_BARS``), the
  configured depth of a first sync.
* ``bars`` is None and bars are stored: incremental — enough bars to reach from the last
  stored bar to ``now`` plus ``overlap_bars`` already-stored bars. The overlap rewrites the
  last stored bars because the newest of them may have been in progress when it was stored.
  Counting uses the interval's nominal length, so over closed sessions it asks a little too
  much — never too little.

Re-syncing never duplicates: the store's unique key (symbol, interval, start) makes the
upsert idempotent, and the outcome says how many bars were inserted, updated or unchanged.

Errors from the client propagate unchanged: ``tradingview.errors.TRANSIENT_ERRORS`` are worth
a retry, everything else (unknown symbol, bad parameters, auth) is permanent.
"""

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.calendar import calendar_from_record, calendar_record, derive_history
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.symbols import normalize_symbol
from pocketquant_pipelines.market.timeutil import ensure_utc, from_epoch, utcnow
from pocketquant_pipelines.storage.base import BarStore, Source
from pocketquant_pipelines.tradingview.history import MAX_BARS  # the client's own limit

log = get_logger("pocketquant.sync")


def validate_bars(bars: object, what: str = "bars") -> int | None:
    """None (automatic) or an int in 1..MAX_BARS; the error names the bad value."""
    if bars is None:
        return None
    if isinstance(bars, bool) or not isinstance(bars, int):
        raise InvalidInputError(f"{what}={bars!r} is not an integer bar count")
    if not 1 <= bars <= MAX_BARS:
        raise InvalidInputError(f"{what}={bars!r} is out of range: expected 1..{MAX_BARS}")
    return bars


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    symbol: str
    interval: str
    mode: str                         # "first" | "incremental" | "explicit"
    requested_bars: int               # bars asked of the server
    fetched: int                      # bars the server returned
    fetched_duplicate_times: int      # bar starts repeated within the fetched batch (should be 0)
    inserted: int
    updated: int
    unchanged: int
    first_bar_time: datetime | None   # oldest fetched bar start
    last_bar_time: datetime | None    # newest fetched bar start
    stored_bars: int                  # bars in the store for this (symbol, interval) afterwards
    stored_first_time: datetime | None
    stored_last_time: datetime | None
    depth_reached: bool               # the server's history ended before requested_bars
    source: str                       # "tradingview" or "simulator" (from the WebSocket URL)
    duration_s: float
    synced_at: datetime

    @property
    def written(self) -> int:
        return self.inserted + self.updated

    def metadata(self) -> dict:
        """JSON-able summary (ISO timestamps, plain ints/floats): the sync status."""
        out: dict = {}
        for key, value in asdict(self).items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
            else:
                out[key] = value
        return out

    def summary(self) -> str:
        span = (
            f"{self.first_bar_time.isoformat()} .. {self.last_bar_time.isoformat()}"
            if self.first_bar_time and self.last_bar_time else "no bars"
        )
        return (
            f"{self.symbol} {self.interval} [{self.mode}, {self.source}]: fetched {self.fetched} "
            f"(requested {self.requested_bars}), inserted {self.inserted}, updated {self.updated}, "
            f"unchanged {self.unchanged}; {span}; stored {self.stored_bars} bars "
            f"in {self.duration_s:.2f}s" + ("; history depth reached" if self.depth_reached else "")
        )


def source_from_url(ws_url: str | None) -> str:
    """'tradingview' for TradingView's own hosts, 'simulator' for anything else."""
    if ws_url and ws_url.startswith("wss://") and "tradingview.com" in ws_url:
        return "tradingview"
    return "simulator" if ws_url else "tradingview"


def plan_request(
    store: BarStore, symbol: str, interval: Interval, bars: int | None, *,
    first_bars: int, overlap_bars: int, now: datetime,
) -> tuple[str, int]:
    """(mode, bar count) for the next request; see the module docstring."""
    if bars is not None:
        return "explicit", bars
    last = store.last_bar_time(symbol, interval)
    if last is None:
        return "first", first_bars
    elapsed = max(0.0, (now - ensure_utc(last)).total_seconds())
    needed = math.ceil(elapsed / interval.nominal_seconds) + overlap_bars
    # not capped at first_bars: a long outage must be filled, not left as a hole (the server
    # stops at the account's depth anyway, reported as depth_reached)
    return "incremental", max(overlap_bars + 1, min(needed, MAX_BARS))


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


def record_daily_calendar(store: BarStore, symbol: str) -> dict | None:
    """After a 1d sync: what the stored daily history says about closures (market.calendar
    ``derive_history``), written to the registry's calendar["history"]. Reads the symbol's
    daily bars once; only bars history wrote count (a stream bar is not TradingView's word).
    Returns the history record, or None when there is nothing to record."""
    info = store.get_symbol(symbol)
    if info is None or not (info.session and info.timezone):
        return None
    frame = store.read_bars(symbol, Interval.D1)
    if "source" in frame.columns:
        frame = frame[frame["source"] == Source.HISTORY.value]
    if not len(frame):
        return None
    starts = [t.timestamp() for t in frame.index]
    try:
        listed = calendar_from_record(info.calendar, with_history=False)
        history = derive_history(starts, info.session, info.timezone, listed)
    except InvalidInputError as exc:
        log.error("symbol_calendar_history_failed", symbol=symbol, error=str(exc))
        return None
    if history is None:
        return None
    record = history.to_record()
    if dict(info.calendar).get("history") != record:
        store.update_symbol(symbol, calendar={**info.calendar, "history": record})
        log.info("symbol_calendar_history", symbol=symbol, first=record["first"], last=record["last"],
                 closed=len(record["closed"]), open=len(record["open"]))
    return record


async def sync_history_async(
    store: BarStore, client, symbol: str, interval: Interval | str, bars: int | None = None, *,
    first_bars: int, overlap_bars: int, now: datetime | None = None,
    source: str | None = None, session: str | None = None, adjustment: str | None = None,
) -> SyncOutcome:
    """The sync itself; ``client`` is a TradingViewClient (``await client.fetch_history``).

    Several of these can run concurrently on one client (``asyncio.gather``); the client
    bounds its own concurrency.
    """
    symbol = normalize_symbol(symbol)
    interval = Interval.parse(interval)
    bars = validate_bars(bars)
    validate_bars(first_bars, "first_bars")
    if isinstance(overlap_bars, bool) or not isinstance(overlap_bars, int) or overlap_bars < 0:
        raise InvalidInputError(f"overlap_bars={overlap_bars!r} must be an integer >= 0")
    now = utcnow() if now is None else ensure_utc(now, "now")
    started = time.perf_counter()
    mode, count = plan_request(store, symbol, interval, bars, first_bars=first_bars,
                               overlap_bars=overlap_bars, now=now)
    kwargs = {}
    if session is not None:
        kwargs["session"] = session  # TradingView's "regular" | "extended" hours
    if adjustment is not None:
        kwargs["adjustment"] = adjustment  # "splits" | "dividends"
    log.debug("sync_started", symbol=symbol, interval=interval.value, mode=mode, bars=count)
    result = await client.fetch_history(symbol, interval, count, **kwargs)
    fetched = result.columns  # validated, ascending, one row per key: written without Bar objects
    upsert = store.upsert_bars(fetched, source=Source.HISTORY) if len(fetched) else None
    record_metadata(store, symbol, getattr(result, "metadata", None))
    if interval is Interval.D1 and len(fetched):
        record_daily_calendar(store, symbol)
    stored = store.count_bars(symbol, interval)
    stored_frame_first = None
    if stored:
        # the store has no "first bar" accessor; one series is small (<= tens of thousands)
        index = store.read_bars(symbol, interval).index
        stored_frame_first = index[0].to_pydatetime() if len(index) else None
    outcome = SyncOutcome(
        symbol=symbol,
        interval=interval.value,
        mode=mode,
        requested_bars=int(count),
        fetched=len(fetched),
        fetched_duplicate_times=0,  # BarColumns hold one row per key by construction
        inserted=int(upsert.inserted) if upsert else 0,
        updated=int(upsert.updated) if upsert else 0,
        unchanged=int(upsert.unchanged) if upsert else 0,
        first_bar_time=from_epoch(float(fetched.time[0])) if len(fetched) else None,
        last_bar_time=from_epoch(float(fetched.time[-1])) if len(fetched) else None,
        stored_bars=int(stored),
        stored_first_time=stored_frame_first,
        stored_last_time=store.last_bar_time(symbol, interval),
        depth_reached=bool(getattr(result, "depth_reached", False)),
        source=source or source_from_url(getattr(client, "url", None)),
        duration_s=round(time.perf_counter() - started, 4),
        synced_at=utcnow(),
    )
    log.info("sync_finished", symbol=symbol, interval=interval.value, mode=mode,
             fetched=outcome.fetched, inserted=outcome.inserted, updated=outcome.updated,
             duration_s=outcome.duration_s)
    return outcome


def sync_history(
    store: BarStore, client, symbol: str, interval: Interval | str, bars: int | None = None, *,
    first_bars: int, overlap_bars: int, now: datetime | None = None,
    source: str | None = None, session: str | None = None, adjustment: str | None = None,
) -> SyncOutcome:
    """Blocking form of :func:`sync_history_async` for scripts and the CLI (not for use
    inside a running event loop)."""
    return asyncio.run(sync_history_async(
        store, client, symbol, interval, bars, first_bars=first_bars, overlap_bars=overlap_bars,
        now=now, source=source, session=session, adjustment=adjustment,
    ))
