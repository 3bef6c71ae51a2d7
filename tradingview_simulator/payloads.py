"""Bodies of the simulator's server frames and parsing of client request parameters.

Shapes are copied from captured real frames (shared/tradingview-frames.jsonl):
``symbol_resolved`` info, the ``timescale_update`` series body and time-scale element, bar
values ``[time, o, h, l, c(, v)]``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np

from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.sessions import bar_end
from pocketquant_pipelines.market.timeutil import from_epoch
from tradingview_simulator.market import BarArrays, SymbolSpec, _SymbolModel, calendar_fields

if TYPE_CHECKING:
    from tradingview_simulator.connection import _Series

NODE = "sim1-charts-free-1-tvbs-sim01-1"

# Resolutions a free account may request, beyond our 13 intervals' own strings.
STANDARD_RESOLUTIONS = {
    "1": Interval.M1, "3": Interval.M3, "5": Interval.M5, "15": Interval.M15, "30": Interval.M30,
    "45": Interval.M45, "60": Interval.H1, "120": Interval.H2, "180": Interval.H3, "240": Interval.H4,
    "1H": Interval.H1, "2H": Interval.H2, "3H": Interval.H3, "4H": Interval.H4,
    "D": Interval.D1, "1D": Interval.D1, "W": Interval.W1, "1W": Interval.W1,
    "M": Interval.MN1, "1M": Interval.MN1,
}
CUSTOM_RESOLUTION = re.compile(r"\d+|\d+[HDWM]")   # well-formed but not a standard free resolution
SECONDS_RESOLUTION = re.compile(r"\d+S")
TICKS_RESOLUTION = re.compile(r"\d+T")


def json_text(obj: Any) -> str:
    # Raw UTF-8 text, as the real server sends it (the codec's LEN counts UTF-16 units).
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def args_text(params: list) -> str:
    """How the server echoes bad arguments: ``"[sds_1, s1, sds_sym_1, s1, 1, ]"``."""
    return "[" + ", ".join("" if p == "" else (p if isinstance(p, str) else json_text(p)) for p in params) + "]"


def valid_zone(tz: Any) -> bool:
    if not isinstance(tz, str) or not tz or tz.startswith("/") or ".." in tz:
        return False
    try:
        ZoneInfo(tz)
    except Exception:
        return False
    return True


def parse_window(count: Any, range_text: Any) -> tuple[int | None, int | None, int | None] | None:
    """(count, end, start) from create_series' count_or_range (+ optional range string).

    ``300`` -> latest 300; ``["bar_count", to, n]`` -> n bars before ``to``;
    ``"r,from:to"`` (seconds, or milliseconds when > 1e11) -> bars in [from, to)."""
    if isinstance(range_text, str) and range_text.startswith("r,"):
        span = parse_range(range_text)
        return None if span is None else (None, span[1], span[0])
    if range_text not in ("", None) and not isinstance(range_text, str):
        return None
    if isinstance(count, bool):
        return None
    if isinstance(count, int):
        return (count, None, None) if count > 0 else None
    if isinstance(count, str) and count.startswith("r,"):
        span = parse_range(count)
        return None if span is None else (None, span[1], span[0])
    if isinstance(count, list) and len(count) == 3 and count[0] == "bar_count":
        to, n = count[1], count[2]
        if isinstance(to, (int, float)) and isinstance(n, int) and n > 0:
            return n, int(to / 1000 if to > 1e11 else to), None
    return None


def parse_range(text: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"r,(\d+(?:\.\d+)?):(\d+(?:\.\d+)?)", text)
    if not m:
        return None
    a, b = float(m.group(1)), float(m.group(2))
    if a > 1e11 or b > 1e11:
        a, b = a / 1000, b / 1000
    return (int(a), int(b)) if b > a else None


def window_bars(model: _SymbolModel, interval: Interval, visible: int, depth: int,
                 count: int, end_at: int | None, start_at: int | None) -> BarArrays:
    """The bars of a create_series request, never older than ``depth`` bars back from the
    latest bar (the plan's max_bars window; older requests simply return fewer bars)."""
    if end_at is None and start_at is None:
        return model.bars(interval, visible, count=count)
    window = model.bars(interval, visible, count=depth)
    if not len(window):
        return window
    end = min(end_at if end_at is not None else visible, visible)
    lo = int(np.searchsorted(window.times, start_at if start_at is not None else -(2**62), side="left"))
    hi = int(np.searchsorted(window.times, end, side="left"))
    if start_at is None:
        lo = max(lo, hi - count)
    return window.slice(lo, hi)


def bar_values(spec: SymbolSpec, bars: BarArrays) -> list[list[float]]:
    ps = spec.pricescale
    cols = [bars.times.astype(np.float64).tolist(), (bars.open / ps).tolist(), (bars.high / ps).tolist(),
            (bars.low / ps).tolist(), (bars.close / ps).tolist()]
    if spec.has_volume:
        cols.append((bars.volume * spec.volume_unit).astype(np.float64).tolist())
    return [list(row) for row in zip(*cols)]


def series_payload(series: _Series, bars: BarArrays, first_index: int) -> dict:
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


def timescale_marks(model: _SymbolModel, bars: BarArrays, first_index: int, interval: Interval) -> dict:
    """The third timescale_update element: bar times and time-scale marks [weight, t, i].

    Weights as observed (§5.2): 70 first bar of a year, 60 of a month, 50 of a week (Monday),
    40 of a day; intraday 30 on the hour, 22 on a quarter hour, 21 on five minutes, 20 else.
    Daily and longer marks use 00:00 UTC stamps of the exchange-local date.

    The reference for history_text, which composes the same JSON text from cached fragments."""
    times = bars.times.tolist()
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
