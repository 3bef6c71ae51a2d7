"""Live data as simulated time passes: ``du`` for completed series, partial ``qsd`` for quote
symbols, and the future-dated ticks of ``faults.future_ticks``."""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING

from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.sessions import bar_end
from pocketquant_pipelines.market.timeutil import from_epoch
from tradingview_simulator.connection_state import ChartSession, QuoteSession, QuoteSubscription, SeriesState
from tradingview_simulator.faults import FUTURE_TICK_PRICE_FACTOR, FUTURE_TICK_TIME
from tradingview_simulator.outbox import plain_frame
from tradingview_simulator.payloads import bar_values
from tradingview_simulator.quote_feed import filter_fields

if TYPE_CHECKING:
    from tradingview_simulator.connection import Connection

__all__ = ["du_frame", "pump"]

log = get_logger()

_MAX_QUEUED_MESSAGES = 32  # backpressure: no new live data while this many messages wait


async def pump(conn: Connection) -> None:
    """Until the connection closes: every ``pump_interval_s``, the live data due."""
    config, faults = conn.state.config, conn.state.faults
    while not conn.closing:
        await asyncio.sleep(config.pump_interval_s)
        every = faults.drop_every_s
        if every is not None and time.monotonic() - conn.opened_at >= every:
            conn.out.abort("drop_every_s")
            return
        if conn.out.backlog() > _MAX_QUEUED_MESSAGES:
            # A client slower than simulated time: let it catch up. Cursors do not move,
            # so nothing is skipped; the live data just lags behind sim_now.
            continue
        try:
            _pump_once(conn)
        except Exception:  # a bug here must not kill the connection silently
            log.exception("simulator_pump_failed", connection=conn.number)


def _pump_once(conn: Connection) -> None:
    now = conn.out.now()
    frames: list[str] = []
    for chart in list(conn.charts.values()):
        for series in list(chart.series.values()):
            if series.completed and series.live:
                frame = du_frame(chart, series, now)
                if frame:
                    frames.append(frame)
    updates: list[tuple[int, int, str]] = []
    order = 0
    for quote in list(conn.quotes.values()):
        for sub in list(quote.subs.values()):
            if quote.hibernated and sub.name not in quote.fast:
                continue
            visible = int(now) - sub.model.spec.delay_s
            last_t = None
            for t, v in sub.feed.advance(visible):
                v = filter_fields(v, quote.fields)
                if v:
                    order += 1
                    last_t = t
                    updates.append((t, order, plain_frame("qsd", [quote.qs, {"n": sub.name, "s": "ok", "v": v}])))
            if last_t is not None and _future_tick_due(conn, sub.name):
                order += 1
                updates.append((last_t, order, _future_tick(conn, quote, sub)))
    updates.sort()
    frames.extend(f for _, _, f in updates)
    if frames:
        conn.out.emit(*frames)


def _future_tick_due(conn: Connection, name: str) -> bool:
    faults = conn.state.faults
    if faults.future_ticks <= 0:
        return False
    if faults.future_tick_symbol is not None and faults.future_tick_symbol != name:
        return False
    faults.future_ticks -= 1
    conn.state.stats.future_ticks_sent += 1
    return True


def _future_tick(conn: Connection, quote: QuoteSession, sub: QuoteSubscription) -> str:
    """A tick dated in the year 3000 (faults.future_ticks). Not recorded in the feed's
    values: the next real update differs from the last real one in ``lp`` and ``lp_time``
    and so resends both, putting the client's merged quote right again."""
    last = sub.feed.values.get("lp") or 1.0
    v = filter_fields({"lp": last * FUTURE_TICK_PRICE_FACTOR, "lp_time": FUTURE_TICK_TIME}, quote.fields)
    log.info("simulator_future_tick", connection=conn.number, symbol=sub.name, lp_time=FUTURE_TICK_TIME)
    return plain_frame("qsd", [quote.qs, {"n": sub.name, "s": "ok", "v": v}])


def du_frame(chart: ChartSession, series: SeriesState, now: float) -> str | None:
    """The ``du`` of a series' bars that changed since its cursor (the forming bar and any new
    ones), or None; advances the series' cursor and indexes."""
    model = series.model
    visible = math.floor(now) - model.spec.delay_s
    if visible <= series.cursor or series.last_time is None:
        return None
    located_new = model.last_tick_before(visible)
    located_old = model.last_tick_before(series.cursor)
    series.cursor = visible
    if located_new == located_old:
        return None
    bars = model.bars(series.interval, visible, start=series.last_time)
    if not len(bars):
        return None
    entries = []
    index = series.last_index
    times = bars.time.astype("int64").tolist()
    for t, v in zip(times, bar_values(model.spec, bars)):
        if t > series.last_time:
            index += 1
            series.loaded += 1
        entries.append({"i": index, "v": v})
        series.last_time = t
    series.last_index = index
    close = int(bar_end(from_epoch(series.last_time), series.interval, model.session).timestamp())
    return plain_frame("du", [chart.cs, {series.sid: {
        "s": entries, "ns": {"d": "", "indexes": "nochange"}, "t": series.turnaround,
        "lbs": {"bar_close_time": close},
    }}])
