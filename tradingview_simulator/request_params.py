"""Parsing of client request parameters: resolutions, ``count_or_range`` windows, timezones,
and how the server echoes bad arguments."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo

from pocketquant_pipelines.market.intervals import Interval
from tradingview_simulator.payloads import json_text

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
