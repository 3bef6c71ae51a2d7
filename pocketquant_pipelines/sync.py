"""Historical sync of one (symbol, interval): fetch from TradingView, upsert into the bar store.

Plain Python, no Dagster: the ``historical_bars`` asset, ``pocketquant sync`` and the
benchmarks all call the same functions, so a sync behaves the same from the UI, a schedule
or a script.

How many bars are requested
---------------------------
* ``bars`` given (run config, ``--bars``): exactly that many, the newest ones.
* ``bars`` is None and history has written no bar of the series yet: ``first_bars``
  (``SYNC_FIRST_BARS``), the configured depth of a first sync. What the *stream* wrote does
  not count: a series the streamer filled before its first sync still gets the full depth.
* ``bars`` is None and history has written bars: incremental — enough bars to reach from the
  last bar *history* wrote to ``now`` plus ``overlap_bars`` already-stored bars. The overlap
  rewrites the last history bars because the newest of them may have been in progress when
  it was stored; stream bars after it are rewritten by history too (history outranks the
  stream). Counting uses the interval's nominal length, so over closed sessions it asks a
  little too much — never too little.
* Bars dated beyond ``now + clock_skew_s`` (``POCKETQUANT_CLOCK_SKEW_S``) or before the epoch
  are ignored: a store that holds a year-3000 bar from before clock checks existed would
  otherwise ask for the overlap only, forever. The next sync asks for the right range.

How deep the series is
----------------------
The outcome says what history covers after the sync (``history_first_time``,
``history_bars``) against the depth a first sync asks for (``first_sync_bars``), and whether
the server has said its history ends (``history_ended``: a fetch ran out of bars before the
count it asked for; the store keeps where). The ``history_depth`` check warns about a series
shallower than that depth whose server never said so.

Re-syncing never duplicates: the store's unique key (symbol, interval, start) makes the
upsert idempotent, and the outcome says how many bars were inserted, updated or unchanged.

Errors from the client propagate unchanged: ``tradingview.errors.TRANSIENT_ERRORS`` are worth
a retry, everything else (unknown symbol, bad parameters, auth) is permanent.
"""

import asyncio
import math
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.calendar import calendar_from_record, derive_history
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.symbols import normalize_symbol
from pocketquant_pipelines.market.timeutil import ensure_utc, from_epoch, utcnow
from pocketquant_pipelines.settings import Settings
from pocketquant_pipelines.storage.bars import BarStore, HistoryCoverage, Source, UpsertResult
from pocketquant_pipelines.storage.durable import DurableStore
from pocketquant_pipelines.storage.frames import TableSummary, summarize_table, time_us_column
from pocketquant_pipelines.storage.registry import SymbolRegistry
from pocketquant_pipelines.storage.symbol_metadata import record_metadata
from pocketquant_pipelines.storage.validation import to_us
from pocketquant_pipelines.tradingview.history import MAX_BARS  # the client's own limit

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

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
    # how deep history reaches (plausible keys only: dated up to synced_at + clock skew)
    first_sync_bars: int = 0          # the depth a first sync asks for (SYNC_FIRST_BARS)
    history_bars: int = 0             # keys whose stored row history wrote
    history_first_time: datetime | None = None
    history_last_time: datetime | None = None
    history_ended: bool = False       # the server has said its history begins at history_start
    history_start: datetime | None = None
    # clock sanity
    rejected_times: int = 0           # fetched rows dated beyond now + skew or before 1970
    stored_implausible_bars: int = 0  # stored bars dated so (ignored by the planner)
    # what users read: bars the stream wrote, and those of them flushed in progress
    stored_stream_bars: int = 0
    stored_partial_bars: int = 0

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
        notes = []
        if self.depth_reached:
            notes.append("history depth reached")
        if self.history_bars < self.first_sync_bars and not self.history_ended:
            notes.append(f"shallow: {self.history_bars} history bars of {self.first_sync_bars}")
        if self.rejected_times:
            notes.append(f"{self.rejected_times} fetched bar(s) rejected (dated beyond now + skew or before 1970)")
        if self.stored_implausible_bars:
            notes.append(f"{self.stored_implausible_bars} stored bar(s) dated beyond now + skew or before 1970")
        return (
            f"{self.symbol} {self.interval} [{self.mode}, {self.source}]: fetched {self.fetched} "
            f"(requested {self.requested_bars}), inserted {self.inserted}, updated {self.updated}, "
            f"unchanged {self.unchanged}; {span}; stored {self.stored_bars} bars "
            f"in {self.duration_s:.2f}s" + "".join(f"; {n}" for n in notes)
        )


def source_from_url(ws_url: str | None) -> str:
    """'tradingview' for TradingView's own hosts, 'simulator' for anything else."""
    if ws_url and ws_url.startswith("wss://") and "tradingview.com" in ws_url:
        return "tradingview"
    return "simulator" if ws_url else "tradingview"


def plausible_coverage(store: BarStore, symbol: str, interval: Interval, now: datetime,
                       clock_skew_s: float) -> HistoryCoverage | None:
    """What history covers of the series among keys a market can have produced by ``now``:
    dated from the epoch up to ``now + clock_skew_s``."""
    end = now + timedelta(seconds=clock_skew_s, microseconds=1)  # the bound itself is plausible
    return store.history_coverage(symbol, interval, start=EPOCH, end=end)


def plan_request(
    store: BarStore, symbol: str, interval: Interval, bars: int | None, *,
    first_bars: int, overlap_bars: int, now: datetime,
    clock_skew_s: float = Settings.clock_skew_s,
) -> tuple[str, int]:
    """(mode, bar count) for the next request; see the module docstring."""
    if bars is not None:
        return "explicit", bars
    covered = plausible_coverage(store, symbol, interval, now, clock_skew_s)
    if covered is None:
        return "first", first_bars
    elapsed = max(0.0, (now - covered.last_time).total_seconds())
    needed = math.ceil(elapsed / interval.nominal_seconds) + overlap_bars
    # not capped at first_bars: a long outage must be filled, not left as a hole (the server
    # stops at the account's depth anyway, reported as depth_reached)
    return "incremental", max(overlap_bars + 1, min(needed, MAX_BARS))


def record_daily_calendar(registry: SymbolRegistry, symbol: str, daily: pa.Table) -> dict | None:
    """After a 1d sync: what the stored daily history (``daily``, the series'
    ``read_bars_table``) says about closures (market.calendar ``derive_history``), written to
    the registry's calendar["history"]. Only bars history wrote count (a stream bar is not
    TradingView's word). Returns the history record, or None when there is nothing to record."""
    info = registry.get_symbol(symbol)
    if info is None or not (info.session and info.timezone):
        return None
    daily = daily.filter(pc.equal(daily.column("source"), Source.HISTORY.value))
    if not daily.num_rows:
        return None
    starts = (time_us_column(daily) / 1e6).tolist()
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
        registry.update_symbol(symbol, calendar={**info.calendar, "history": record})
        log.info("symbol_calendar_history", symbol=symbol, first=record["first"], last=record["last"],
                 closed=len(record["closed"]), open=len(record["open"]))
    return record


@dataclass(frozen=True, slots=True)
class _Stored:
    """What the store says after a sync's writes, from one read of the series."""

    upsert: UpsertResult | None
    table: TableSummary
    implausible_bars: int
    covered: HistoryCoverage | None


def _store_fetched(store: DurableStore, symbol: str, interval: Interval, result, now: datetime,
                   clock_skew_s: float) -> _Stored:
    """Every store call of a sync after the fetch, in one function so the sync moves it off
    the event loop in one hop. The series is read once; its counts, bounds and (for 1d) the
    calendar's history all come from that read."""
    fetched = result.columns
    upsert = store.upsert_bars(fetched, source=Source.HISTORY) if len(fetched) else None
    record_metadata(store, symbol, getattr(result, "metadata", None))
    table = store.read_bars_table(symbol, interval)
    if interval is Interval.D1 and len(fetched):
        record_daily_calendar(store, symbol, table)
    if getattr(result, "depth_reached", False) and len(fetched):
        # the server has nothing older than this: the series is as deep as it gets
        store.record_history_start(symbol, interval, from_epoch(float(fetched.time[0])))
    times = time_us_column(table)
    bound_us = to_us(now + timedelta(seconds=clock_skew_s))
    return _Stored(
        upsert=upsert,
        table=summarize_table(table),
        implausible_bars=int(np.count_nonzero((times > bound_us) | (times < 0))),
        covered=plausible_coverage(store, symbol, interval, now, clock_skew_s),
    )


async def sync_history_async(
    store: DurableStore, client, symbol: str, interval: Interval | str, bars: int | None = None, *,
    first_bars: int, overlap_bars: int, now: datetime | None = None,
    source: str | None = None, session: str | None = None, adjustment: str | None = None,
    clock_skew_s: float = Settings.clock_skew_s,
) -> SyncOutcome:
    """The sync itself; ``client`` is a TradingViewClient (``await client.fetch_history``).

    Several of these can run concurrently on one client (``asyncio.gather``); the client
    bounds its own concurrency. Store calls (blocking: SQLite, pymongo) run in a worker
    thread, so the event loop keeps serving the other syncs' frames meanwhile.
    """
    symbol = normalize_symbol(symbol)
    interval = Interval.parse(interval)
    bars = validate_bars(bars)
    validate_bars(first_bars, "first_bars")
    if isinstance(overlap_bars, bool) or not isinstance(overlap_bars, int) or overlap_bars < 0:
        raise InvalidInputError(f"overlap_bars={overlap_bars!r} must be an integer >= 0")
    now = utcnow() if now is None else ensure_utc(now, "now")
    started = time.perf_counter()
    mode, count = await asyncio.to_thread(
        plan_request, store, symbol, interval, bars, first_bars=first_bars,
        overlap_bars=overlap_bars, now=now, clock_skew_s=clock_skew_s)
    kwargs = {}
    if session is not None:
        kwargs["session"] = session  # TradingView's "regular" | "extended" hours
    if adjustment is not None:
        kwargs["adjustment"] = adjustment  # "splits" | "dividends"
    log.debug("sync_started", symbol=symbol, interval=interval.value, mode=mode, bars=count)
    result = await client.fetch_history(symbol, interval, count, **kwargs)
    fetched = result.columns  # validated, ascending, one row per key: written without Bar objects
    stored = await asyncio.to_thread(_store_fetched, store, symbol, interval, result, now,
                                     clock_skew_s)
    upsert, covered = stored.upsert, stored.covered
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
        stored_bars=stored.table.rows,
        stored_first_time=stored.table.first_time,
        stored_last_time=stored.table.last_time,
        depth_reached=bool(getattr(result, "depth_reached", False)),
        source=source or source_from_url(getattr(client, "url", None)),
        duration_s=round(time.perf_counter() - started, 4),
        synced_at=utcnow(),
        first_sync_bars=int(first_bars),
        history_bars=covered.bars if covered else 0,
        history_first_time=covered.first_time if covered else None,
        history_last_time=covered.last_time if covered else None,
        history_ended=bool(covered and covered.history_start is not None),
        history_start=covered.history_start if covered else None,
        rejected_times=int(getattr(result, "implausible_times", 0)),
        stored_implausible_bars=stored.implausible_bars,
        stored_stream_bars=stored.table.stream_rows,
        stored_partial_bars=stored.table.partial_rows,
    )
    log.info("sync_finished", symbol=symbol, interval=interval.value, mode=mode,
             fetched=outcome.fetched, inserted=outcome.inserted, updated=outcome.updated,
             history_bars=outcome.history_bars, rejected_times=outcome.rejected_times,
             duration_s=outcome.duration_s)
    return outcome


def sync_history(
    store: DurableStore, client, symbol: str, interval: Interval | str, bars: int | None = None, *,
    first_bars: int, overlap_bars: int, now: datetime | None = None,
    source: str | None = None, session: str | None = None, adjustment: str | None = None,
    clock_skew_s: float = Settings.clock_skew_s,
) -> SyncOutcome:
    """Blocking form of :func:`sync_history_async` for scripts and the CLI (not for use
    inside a running event loop)."""
    return asyncio.run(sync_history_async(
        store, client, symbol, interval, bars, first_bars=first_bars, overlap_bars=overlap_bars,
        now=now, source=source, session=session, adjustment=adjustment, clock_skew_s=clock_skew_s,
    ))
