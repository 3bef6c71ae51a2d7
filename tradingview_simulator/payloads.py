"""Bodies of the simulator's server frames.

Shapes are copied from captured real frames (shared/tradingview-frames.jsonl):
``symbol_resolved`` info, the ``timescale_update`` series body and time-scale element, bar
values ``[time, o, h, l, c(, v)]``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np

from pocketquant_pipelines.market.bar_columns import BarColumns
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.sessions import bar_end
from pocketquant_pipelines.market.timeutil import from_epoch
from tradingview_simulator.symbol_model import SymbolModel
from tradingview_simulator.symbol_specs import SymbolSpec, calendar_fields
from tradingview_simulator.unit_bars import take

if TYPE_CHECKING:
    from tradingview_simulator.connection_state import SeriesState

NODE = "sim1-charts-free-1-tvbs-sim01-1"


def json_text(obj: Any) -> str:
    # Raw UTF-8 text, as the real server sends it (the codec's LEN counts UTF-16 units).
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def window_bars(model: SymbolModel, interval: Interval, visible: int, depth: int,
                count: int, end_at: int | None, start_at: int | None) -> BarColumns:
    """The bars of a create_series request, never older than ``depth`` bars back from the
    latest bar (the plan's max_bars window; older requests simply return fewer bars)."""
    if end_at is None and start_at is None:
        return model.bars(interval, visible, count=count)
    window = model.bars(interval, visible, count=depth)
    if not len(window):
        return window
    end = min(end_at if end_at is not None else visible, visible)
    lo = int(np.searchsorted(window.time, start_at if start_at is not None else -(2**62), side="left"))
    hi = int(np.searchsorted(window.time, end, side="left"))
    if start_at is None:
        lo = max(lo, hi - count)
    return take(window, slice(lo, hi))


def bar_values(spec: SymbolSpec, bars: BarColumns) -> list[list[float]]:
    """``[time, o, h, l, c(, v)]`` per bar: no volume element for a no-volume symbol."""
    cols = [bars.time.tolist(), bars.open.tolist(), bars.high.tolist(), bars.low.tolist(), bars.close.tolist()]
    if spec.has_volume:
        cols.append(bars.volume.tolist())
    return [list(row) for row in zip(*cols)]


def series_payload(series: SeriesState, bars: BarColumns, first_index: int) -> dict:
    """The second timescale_update element: ``{sid: {node, s, ns, t(, lbs)}}``.

    The reference: the server sends history_text.history_params' text, which must equal
    ``json_text`` of this (tests/simulator/test_history_text.py)."""
    model = series.model
    body: dict[str, Any] = {
        "node": f"{NODE}-runner-1",
        "s": [{"i": first_index + k, "v": v} for k, v in enumerate(bar_values(model.spec, bars))],
        "ns": {"d": "", "indexes": []},
        "t": series.turnaround,
    }
    if series.last_time is not None and series.loaded:
        close = bar_end(from_epoch(series.last_time), series.interval, model.session)
        body["lbs"] = {"bar_close_time": int(close.timestamp())}
    return {series.sid: body}


def timescale_marks(model: SymbolModel, bars: BarColumns, first_index: int, interval: Interval) -> dict:
    """The third timescale_update element: bar times and time-scale marks [weight, t, i].

    Weights as observed (§5.2): 70 first bar of a year, 60 of a month, 50 of a week (Monday),
    40 of a day; intraday 30 on the hour, 22 on a quarter hour, 21 on five minutes, 20 else.
    Daily and longer marks use 00:00 UTC stamps of the exchange-local date.

    The reference for history_text, which composes the same JSON text from cached fragments."""
    times = bars.time.astype(np.int64).tolist()
    marks = []
    zone = ZoneInfo(model.spec.timezone)
    prev = None
    intraday = interval.is_intraday
    for k, t in enumerate(times):
        local = datetime.fromtimestamp(t, zone)
        day = local.date()
        if prev is None or day.year != prev.year:
            w = 70
        elif day.month != prev.month:
            w = 60
        elif day.isocalendar()[1] != prev.isocalendar()[1]:
            w = 50
        elif day != prev:
            w = 40
        elif local.minute == 0:
            w = 30
        elif local.minute % 15 == 0:
            w = 22
        elif local.minute % 5 == 0:
            w = 21
        else:
            w = 20
        stamp = t if intraday else int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        marks.append([w, stamp, first_index + k])
        prev = day
    return {"index": first_index, "zoffset": 0, "changes": [float(t) for t in times], "marks": marks, "index_diff": []}


def symbol_info(spec: SymbolSpec) -> dict[str, Any]:
    """The symbol_resolved info object (field shapes from captured frames)."""
    full_name = f"{spec.exchange}_DLY:{spec.code}" if spec.delay_s else spec.symbol
    calendar = calendar_fields(spec)
    info: dict[str, Any] = {
        "source2": {"country": spec.country, "description": spec.exchange_name or spec.exchange,
                    "exchange-type": "exchange", "id": spec.exchange, "name": spec.exchange_name or spec.exchange},
        "currency_code": spec.currency,
    }
    if "session_holidays" in calendar:
        info["session_holidays"] = calendar["session_holidays"]
    info.update({
        "source_id": spec.exchange,
        "subsession_id": calendar["subsession_id"],
        "provider_id": "simulator",
        "currency_id": spec.currency,
        "country": spec.country,
        "pro_perm": "",
        "measure": "price",
        "allowed_adjustment": "none",
        "short_description": spec.description,
        "variable_tick_size": "",
        "language": spec.language,
        "name": spec.code,
        "full_name": full_name,
        "pro_name": spec.symbol,
        "base_name": [spec.symbol],
        "description": spec.description,
        "exchange": spec.exchange_name or spec.exchange,
        "pricescale": spec.pricescale,
        "pointvalue": 1.0,
        "minmov": spec.minmov,
        "session": spec.session,
        "session_display": spec.session,
        "subsessions": calendar["subsessions"],
        "type": spec.type,
        "typespecs": list(spec.typespecs),
        "resolutions": [],
        "has_intraday": True,
        "fractional": False,
        "listed_exchange": spec.exchange,
        "legs": [full_name],
        "is_tradable": spec.type != "index",
        "minmove2": 0,
        "timezone": spec.timezone,
        "aliases": [],
        "alternatives": [],
        "is_replayable": True,
        "has_adjustment": spec.type == "stock",
        "has_extended_hours": False,
        "bar_source": "trade",
        "bar_transform": "none",
        "bar_fillgaps": False,
        "visible_plots_set": "ohlcv" if spec.has_volume else "ohlc",
    })
    if spec.local_description is not None:
        info["local_description"] = spec.local_description
    if spec.delay_s:
        info["delay"] = spec.delay_s
    return info
