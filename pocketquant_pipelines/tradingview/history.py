"""Historical bars over a chart session (protocol notes §3).

Sequence per request, on a shared connection:

    chart_create_session [cs, ""]
    resolve_symbol       [cs, "sds_sym_1", "=" + {"adjustment", "session", "symbol"}]
    create_series        [cs, "sds_1", "s1", "sds_sym_1", <resolution>, <first batch>]
    ...                  series_loading, symbol_resolved, timescale_update, series_completed
    request_more_data    [cs, "sds_1", n]   until N bars, ``data_completed: "end"``, or a page
                                             that adds nothing (the plan's depth, e.g. 5000)
    chart_delete_session [cs]

Bars are keyed by their time (indexes shift when older pages arrive), deduplicated, sorted and
validated into :class:`Bar`. ``symbol_error`` / ``series_error`` end the request at once: the
server never sends ``series_completed`` after them (tvdatafeed's 80 s hang).

Clock sanity: a row dated beyond now + ``clock_skew_s`` or before the epoch cannot be a bar
the market produced (a server clock gone wrong, a corrupt frame). It is dropped before the
rows are decoded, counted in ``HistoryResult.implausible_times`` and logged once per request;
it never reaches the store or the sync planner. ``now`` is read here, at the edge, from the
``clock`` the client passes (the wall clock by default).

Hostile or broken servers: a request holds at most ``bars + page_size`` distinct rows (more is
``MalformedDataError``: memory is bounded by the request, not by the server). A page is told
from the end of history by accounting: a data frame of this session that failed to decode, or
any undecodable frame on the socket while a page turned out empty, is ``PageLostError``, never
"depth reached". The overall deadline lives in the client, around the retry and every page.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain

import numpy as np

from pocketquant_pipelines.errors import InvalidBarError
from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.bar_columns import BarColumns, first_per_key, trusted_bar, valid_rows
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.clock import plausible_mask
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.timeutil import from_epoch, utcnow
from pocketquant_pipelines.settings import Settings
from pocketquant_pipelines.tradingview.codec import SENTINEL_ABS, Frame, sentinel_to_none
from pocketquant_pipelines.tradingview.connection import Connection, new_session_id
from pocketquant_pipelines.tradingview.errors import (
    ConnectionLostError,
    CriticalError,
    HistoryTimeoutError,
    MalformedDataError,
    PageLostError,
    SeriesError,
    SymbolNotFoundError,
    TradingViewError,
)
from pocketquant_pipelines.tradingview.models import HistoryResult, SymbolMetadata

_isfinite = math.isfinite

log = get_logger("pocketquant.tradingview.history")

SYMBOL_REF = "sds_sym_1"
SERIES_ID = "sds_1"
TURNAROUND = "s1"
MAX_BATCH = 5000  # the anonymous depth; also a sane page size for request_more_data
MAX_BARS = 1_000_000
DEFAULT_CLOCK_SKEW_S = Settings.clock_skew_s  # the client passes the configured value


def symbol_descriptor(symbol: str, session: str = "regular", adjustment: str = "splits") -> str:
    """The ``resolve_symbol`` descriptor: "=" + JSON, itself sent as a JSON string (§3.3)."""
    return "=" + json.dumps(
        {"adjustment": adjustment, "session": session, "symbol": symbol}, separators=(",", ":")
    )


def series_rows(series: dict) -> list[list]:
    """The raw ``v`` arrays of a series update: [time, o, h, l, c(, volume)].

    Items that are not ``{"v": [<number>, ...]}`` are skipped (the caller validates values)."""
    items = series.get("s") if isinstance(series, dict) else None
    if not items or not isinstance(items, list):
        return []
    try:
        rows = [item["v"] for item in items]  # the common case, as fast as it gets
        if all(type(v) is list and v and type(v[0]) in (int, float) for v in rows):
            return rows
    except (KeyError, TypeError):
        pass
    return [
        item["v"] for item in items
        if isinstance(item, dict) and type(item.get("v")) is list and item["v"]
        and type(item["v"][0]) in (int, float)
    ]


_FLOAT = float
_NUMBER_TYPES = frozenset((int, float))


def rows_to_bars(symbol: str, interval: Interval, rows: list[list]) -> tuple[list[Bar], int]:
    """Validated bars from ``v`` rows, and how many rows were rejected (bad OHLC, short rows).

    A 5-element row has no volume (indices); a 1e+100 volume is the no-value sentinel.

    The fast path accepts a row only if it meets every rule of ``market.bars.bar_problem``
    (finite int/float prices, low <= open/close <= high, volume None or finite and >= 0; times
    come out aware UTC by construction). Anything else goes through the ``Bar`` constructor,
    which rejects it with the reason (or accepts it, if the fast path was merely cautious).
    """
    bars: list[Bar] = []
    append = bars.append
    rejected = 0
    number = (int, float)
    for v in rows:
        try:
            n = len(v)
            t, o, h, l, c = v[0], v[1], v[2], v[3], v[4]
            vol = v[5] if n > 5 else None
            if (type(o) in number and type(h) in number and type(l) in number and type(c) in number
                    and type(t) in number and l <= o <= h and l <= c <= h
                    and _isfinite(o + h + l + c) and abs(t) < 1e11):
                if vol is not None:
                    if type(vol) not in number:
                        raise TypeError
                    if not _isfinite(vol) or abs(vol) >= SENTINEL_ABS:
                        vol = None  # NaN/inf/1e+100: no value
                    elif vol < 0:
                        raise ValueError
                    else:
                        vol = _FLOAT(vol)
                append(trusted_bar(symbol, interval, t, _FLOAT(o), _FLOAT(h), _FLOAT(l), _FLOAT(c), vol))
                continue
            raise ValueError
        except (TypeError, ValueError, IndexError, OverflowError, OSError):
            pass
        try:  # slow path: the contract's own validation decides, and says why
            volume = sentinel_to_none(v[5]) if len(v) > 5 else None
            append(Bar(symbol, interval, from_epoch(v[0]), v[1], v[2], v[3], v[4], volume))
        except (InvalidBarError, IndexError, TypeError, ValueError, OverflowError, OSError):
            rejected += 1
    return bars, rejected


def rows_to_columns(symbol: str, interval: Interval, rows: list[list]) -> tuple[BarColumns, int]:
    """Validated columns from ``v`` rows sorted by time, and how many rows were rejected.

    The common page (every row ``[t, o, h, l, c, v]`` or every row without volume, all numbers)
    becomes one float64 array and is checked with numpy by the rules of ``bar_problem``; a
    1e+100 (or any |v| >= 1e99) volume is the no-value sentinel and becomes NaN. A page with
    a row the vectorised check refuses, or of mixed or odd shapes, goes through
    :func:`rows_to_bars`, whose per-row path gives the same answers."""
    n = len(rows)
    if not n:
        return BarColumns.empty(symbol, interval), 0
    width = len(rows[0])
    uniform = width in (5, 6) and all(len(r) == width for r in rows)
    if not uniform or not _NUMBER_TYPES.issuperset(map(type, chain.from_iterable(rows))):
        bars, rejected = rows_to_bars(symbol, interval, rows)  # bools, strings, nulls, ragged rows
        return BarColumns.from_bars(symbol, interval, bars), rejected
    a = np.array(rows, dtype=np.float64)
    t, o, h, l, c = a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4]
    if width == 6:
        v = a[:, 5].copy()
        with np.errstate(invalid="ignore"):
            v[~(np.abs(v) < SENTINEL_ABS)] = np.nan  # 1e+100, inf, NaN: no value
    else:
        v = np.full(n, np.nan)
    first = first_per_key(t)
    if first is not None:  # sub-microsecond neighbours share one key: the first row wins
        return rows_to_columns(symbol, interval, [rows[i] for i in np.flatnonzero(first).tolist()])
    if valid_rows(t, o, h, l, c, v).all():
        return BarColumns(symbol, interval, t.copy(), o.copy(), h.copy(), l.copy(), c.copy(), v), 0
    # A row breaks a rule (rare in real data): the per-row path decides, and counts, row by row.
    bars, rejected = rows_to_bars(symbol, interval, rows)
    return BarColumns.from_bars(symbol, interval, bars), rejected


def metadata_from(symbol: str, info: dict, resolved_at: datetime | None = None) -> SymbolMetadata:
    plots = info.get("visible_plots_set") or info.get("visible-plots-set")
    pricescale = info.get("pricescale")
    subsessions = info.get("subsessions")
    return SymbolMetadata(
        symbol=symbol,
        name=info.get("name"),
        description=info.get("description"),
        type=info.get("type"),
        currency=info.get("currency_code") or info.get("currency_id"),
        timezone=info.get("timezone"),
        session=info.get("session"),
        pricescale=int(pricescale) if isinstance(pricescale, (int, float)) and math.isfinite(pricescale) else None,
        has_volume=plots != "ohlc",
        raw=info,
        # kept as sent; market.calendar validates them when the registry records them
        session_holidays=info.get("session_holidays"),
        corrections=info.get("corrections"),
        subsession_id=info.get("subsession_id"),
        subsessions=tuple(s for s in subsessions if isinstance(s, dict)) if isinstance(subsessions, list) else (),
        resolved_at=utcnow() if resolved_at is None else resolved_at,
    )


def error_from_frame(frame: Frame, symbol: str, interval: Interval | str | None = None) -> TradingViewError | None:
    """The typed error for a chart-session error frame, carrying the server's words."""
    p = frame.params
    where = f"{symbol} {interval}" if interval is not None else symbol
    if frame.method == "symbol_error":
        reason = str(p[2]) if len(p) > 2 else "symbol error"
        return SymbolNotFoundError(f"TradingView cannot resolve {symbol}: {reason}", symbol=symbol, reason=reason)
    if frame.method == "series_error":
        reason = str(p[3]) if len(p) > 3 else "series error"
        if reason == "resolve error":
            return SymbolNotFoundError(
                f"TradingView cannot resolve {symbol}: {reason}", symbol=symbol, reason=reason
            )
        return SeriesError(f"TradingView refused the series {where}: {reason}", symbol=symbol, reason=reason)
    if frame.method == "critical_error":
        reason = ": ".join(str(x) for x in p[1:]) or "critical error"
        return CriticalError(f"TradingView critical error for {where}: {reason}", symbol=symbol, reason=reason)
    return None


# Frames queued for one request before the socket's reader waits for the request to catch up.
_QUEUE_HIGH = 64


@dataclass
class HistoryProgress:
    """How far one request got: what a deadline error reports."""

    bars: int = 0
    pages: int = 0
    connection: Connection | None = None  # the socket of the attempt in flight


def _page_lost(where: str, symbol: str, have: int, why: str) -> PageLostError:
    return PageLostError(f"history of {where} failed after {have} bars: {why}; a lost page is not "
                         "the end of history, so nothing is reported as complete", symbol=symbol, reason=why)


def _too_many(where: str, symbol: str, have: int, bars: int, cap: int) -> MalformedDataError:
    return MalformedDataError(f"TradingView sent more than {cap} bars for a request of {bars} ({where}, "
                              f"{have} so far); the request stops here", symbol=symbol, reason="too many bars")


@dataclass
class _ChartHandler:
    """Feeds a chart session's frames (or the loss of its socket) to the fetch coroutine."""

    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False

    def __post_init__(self) -> None:
        self.drained.set()

    def on_frame(self, frame: Frame) -> None:
        if self.done:
            return
        self.queue.put_nowait(frame)
        if self.queue.qsize() >= _QUEUE_HIGH:
            self.drained.clear()

    def on_frame_lost(self, frame: Frame) -> None:
        if not self.done:
            self.queue.put_nowait(frame)  # an ``error`` frame naming this session

    def on_connection_lost(self, exc: TradingViewError) -> None:
        if not self.done:
            self.queue.put_nowait(exc)

    async def wait_drained(self) -> None:
        await self.drained.wait()

    async def get(self):
        item = await self.queue.get()
        if self.queue.qsize() <= _QUEUE_HIGH // 4:
            self.drained.set()
        return item

    def finish(self) -> None:
        self.done = True
        self.drained.set()  # never leave the reader waiting for a request that has ended


async def fetch_on_connection(
    conn: Connection,
    symbol: str,
    interval: Interval,
    bars: int,
    *,
    session: str = "regular",
    adjustment: str = "splits",
    request_timeout_s: float = 30.0,
    page_size: int = MAX_BATCH,
    clock_skew_s: float = DEFAULT_CLOCK_SKEW_S,
    clock: Callable[[], float] = time.time,
    progress: HistoryProgress | None = None,
) -> HistoryResult:
    """Run one history request on ``conn`` (which stays open for other sessions).

    ``page_size`` bars are asked for first and per ``request_more_data`` page. Rows dated
    beyond ``clock() + clock_skew_s`` (epoch seconds) or before the epoch are rejected.
    ``progress`` (if given) is kept up to date with the bars and pages received."""
    cs = new_session_id("cs")
    handler = _ChartHandler()
    conn.register(cs, handler)
    progress = progress if progress is not None else HistoryProgress()
    max_rows = bars + page_size  # the request plus one page of slack for live du bars
    where = f"{symbol} {interval}"
    by_time: dict[float, list] = {}
    metadata: SymbolMetadata | None = None
    update_mode: str | None = None
    pages = 0
    rejected = 0
    depth_reached = False
    page_added: int | None = None  # rows added by the page in flight

    async def send(method: str, params: list) -> None:
        try:
            await conn.send(method, params)
        except ConnectionLostError:
            pass  # the reader reports the loss (with the server's last words) through the queue

    page_errors = conn.decode_errors  # undecodable frames on the socket before this page
    try:
        await send("chart_create_session", [cs, ""])
        await send("resolve_symbol", [cs, SYMBOL_REF, symbol_descriptor(symbol, session, adjustment)])
        await send("create_series", [cs, SERIES_ID, TURNAROUND, SYMBOL_REF, interval.tv_resolution,
                                     min(bars, page_size)])
        page_added = 0
        while True:
            try:
                async with asyncio.timeout(request_timeout_s):
                    item = await handler.get()
            except TimeoutError:
                raise HistoryTimeoutError(
                    f"no reply from TradingView for {symbol} {interval} within {request_timeout_s:g} s"
                    f" ({len(by_time)} bars so far)",
                    symbol=symbol,
                ) from None
            if isinstance(item, TradingViewError):
                raise type(item)(f"{item} (while fetching {symbol} {interval})", symbol=symbol,
                                 reason=item.reason) from item
            frame: Frame = item
            if frame.kind == "error":
                raise _page_lost(where, symbol, len(by_time), f"a frame of this request could not be decoded: {frame.error}")
            method = frame.method
            if method == "timescale_update":
                if len(frame.params) < 2 or not isinstance(frame.params[1], dict):
                    raise _page_lost(where, symbol, len(by_time), "a timescale_update without its series object")
                series = frame.params[1].get(SERIES_ID)
                if series is not None:
                    if not isinstance(series, dict) or not isinstance(series.get("s", []), list):
                        raise _page_lost(where, symbol, len(by_time), f"a timescale_update whose {SERIES_ID} is not a series")
                    before = len(by_time)
                    for v in series_rows(series):
                        by_time.setdefault(v[0], v)
                    page_added = (page_added or 0) + len(by_time) - before
                    pages += 1
                    progress.bars, progress.pages = len(by_time), pages
                    if len(by_time) > max_rows:
                        raise _too_many(where, symbol, len(by_time), bars, max_rows)
            elif method == "du":
                # Live updates of the series while we page: newer values of the forming bar (or
                # a new bar). Kept, but not counted as history a page added.
                series = frame.params[1].get(SERIES_ID) if len(frame.params) > 1 and isinstance(frame.params[1], dict) else None
                if series is not None and by_time:
                    for v in series_rows(series):
                        by_time[v[0]] = v
                    if len(by_time) > max_rows:
                        raise _too_many(where, symbol, len(by_time), bars, max_rows)
            elif method == "series_completed":
                p = frame.params
                if len(p) > 2 and isinstance(p[2], str):
                    update_mode = p[2]
                extra = p[-1] if p and isinstance(p[-1], dict) else {}
                have = len(by_time)
                if have >= bars:
                    break
                if page_added == 0 and conn.decode_errors > page_errors:
                    # an empty page and a frame we could not read: that frame may have been the
                    # page, so "history ended" would be a guess
                    raise _page_lost(where, symbol, have, f"{conn.decode_errors - page_errors} undecodable "
                                     "frame(s) arrived while this page was in flight and the page came back empty")
                if extra.get("data_completed") == "end" or page_added == 0:
                    depth_reached = True
                    break
                page_added = 0
                page_errors = conn.decode_errors
                await send("request_more_data", [cs, SERIES_ID, min(bars - have, page_size)])
            elif method == "symbol_resolved":
                if len(frame.params) > 2 and isinstance(frame.params[2], dict):
                    metadata = metadata_from(symbol, frame.params[2])
            elif method in ("symbol_error", "series_error", "critical_error"):
                error = error_from_frame(frame, symbol, interval)
                log.warning("tradingview_history_error", symbol=symbol, interval=str(interval),
                            method=method, reason=error.reason)
                raise error
            # series_loading, series_timeframe, study frames...: nothing to do
    finally:
        handler.finish()
        conn.unregister(cs)
        if not conn.closed:
            try:
                # bounded: a server that stopped reading must not hold a failed request open
                async with asyncio.timeout(2.0):
                    await conn.send("chart_delete_session", [cs])
            except (TradingViewError, TimeoutError):
                pass
    times = sorted(by_time)
    implausible = 0
    if times:
        plausible = plausible_mask(np.array(times, dtype=np.float64), clock(), clock_skew_s)
        implausible = len(times) - int(np.count_nonzero(plausible))
        if implausible:
            bad = [t for t, ok in zip(times, plausible.tolist()) if not ok]
            log.warning("tradingview_implausible_times_rejected", symbol=symbol,
                        interval=str(interval), count=implausible, first=bad[0], last=bad[-1],
                        clock_skew_s=clock_skew_s)
            times = [t for t, ok in zip(times, plausible.tolist()) if ok]
    rows = [by_time[t] for t in times][-bars:]
    columns, rejected = rows_to_columns(symbol, interval, rows)
    if rejected:
        log.warning("tradingview_bars_rejected", symbol=symbol, interval=str(interval), count=rejected)
    return HistoryResult(
        symbol=symbol,
        interval=interval,
        columns=columns,
        metadata=metadata or SymbolMetadata(symbol=symbol),
        requested=bars,
        depth_reached=depth_reached and len(columns) < bars,
        update_mode=update_mode,
        pages=max(pages, 1),
        implausible_times=implausible,
    )
