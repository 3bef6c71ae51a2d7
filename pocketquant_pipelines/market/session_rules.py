"""TradingView session strings -> ranges in minutes, and local minutes -> epoch (no I/O).

Shared by the regular session (``sessions.Session``) and the per-day corrections of the
exchange calendar (``calendar``), which use the same range syntax and the same local-time
arithmetic. Sources and examples are in docs/alignment.md; the grammar in short:

* ``HHMM-HHMM`` is one range in exchange-local time; ``2400`` is allowed as a close.
  A range whose close is not after its open (``1700-1600``) opens the previous evening;
  ``0000-0000`` is the whole day.
* ``F`` / ``Fn`` after a time moves it to the previous day / n days earlier (n <= 6):
  ``1700F-1900`` opens at 17:00 the day before, ``1900F4-2350F4`` lies wholly four days
  before the trading day it belongs to.
* ``,`` separates ranges of one day; ``:days`` (TradingView day numbers, 1=Sunday ...
  7=Saturday) applies to the ranges of its group that carry none; ``|`` separates groups;
  a leading ``N;`` (first day of the week) does not change the hours and is skipped.

A range is ``(open, close)`` in minutes relative to its trading day's local midnight, so an
open before 0 is on an earlier calendar day.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from pocketquant_pipelines.errors import InvalidSessionError

Range = tuple[int, int]
Ranges = tuple[Range, ...]
Week = tuple[Ranges, ...]  # indexed by Python weekday (0=Monday)

_DAY_MINUTES = 1440
DEFAULT_DAYS = "23456"  # TradingView day numbers: 1=Sunday, 2=Monday ... 7=Saturday
MAX_DAYS_BEFORE = 6     # "Fn": n <= 6 (Charting Library docs, trading sessions)
_RANGE = re.compile(r"(\d{4})(F[1-6]?)?-(\d{4})(F[1-6]?)?")
_DAYS = re.compile(r"[1-7]+")


def bad_session(spec: object, why: str) -> InvalidSessionError:
    return InvalidSessionError(f"invalid session {spec!r}: {why}")


def _minutes(spec: str, hhmm: str, *, is_close: bool) -> int:
    hh, mm = int(hhmm[:2]), int(hhmm[2:])
    if mm > 59 or hh > 24 or (hh == 24 and (mm != 0 or not is_close)):
        raise bad_session(spec, f"time {hhmm!r} is not a valid HHMM")
    return hh * 60 + mm


def _days_before(marker: str | None) -> int:
    if not marker:
        return 0
    return int(marker[1:]) if len(marker) > 1 else 1


def parse_range(text: str, spec: str) -> Range:
    """One ``HHMM[Fn]-HHMM[Fn]`` range; ``spec`` is the whole string, named in errors."""
    match = _RANGE.fullmatch(text)
    if not match:
        raise bad_session(spec, f"range {text!r} is not HHMM-HHMM (optionally with F or Fn, n <= 6)")
    o = _minutes(spec, match[1], is_close=False)
    c = _minutes(spec, match[3], is_close=True)
    open_before, close_before = _days_before(match[2]), _days_before(match[4])
    if open_before or close_before:
        rng = (o - open_before * _DAY_MINUTES, c - close_before * _DAY_MINUTES)
        if rng[1] <= rng[0]:
            raise bad_session(spec, f"range {text!r} closes before it opens")
        return rng
    if o == 0 and c == 0:
        return 0, _DAY_MINUTES  # "0000-0000": the whole calendar day
    if c <= o:
        return o - _DAY_MINUTES, c  # overnight: opens the previous calendar evening
    return o, c


def _check_day(spec: str, ranges: Ranges) -> None:
    for (_, c1), (o2, _) in zip(ranges, ranges[1:]):
        if o2 < c1:
            raise bad_session(spec, "ranges of one day overlap")


def parse_ranges(text: str, spec: str | None = None) -> Ranges:
    """Comma-separated ranges of ONE day (a correction's session part), sorted by open."""
    spec = text if spec is None else spec
    if not text:
        raise bad_session(spec, "empty; expected ranges such as '0930-1300'")
    ranges = tuple(sorted({parse_range(item, spec) for item in text.split(",")}))
    _check_day(spec, ranges)
    return ranges


@lru_cache(maxsize=512)
def parse_week(spec: str) -> Week:
    """A session string -> the ranges of each weekday (index 0 = Monday)."""
    if spec.lower() == "24x7":
        return tuple(((0, _DAY_MINUTES),) for _ in range(7))
    text = spec
    if ";" in text:
        prefix, _, text = text.partition(";")
        if not prefix.isdigit():
            raise bad_session(spec, f"prefix {prefix!r} before ';' is not a number")
    if not text:
        raise bad_session(spec, "empty; expected e.g. '0930-1600', '0930-1600:23456' or '24x7'")
    per_day: list[set[Range]] = [set() for _ in range(7)]
    for group in text.split("|"):
        items = group.split(",")
        group_days = DEFAULT_DAYS
        for item in reversed(items):
            if ":" in item:
                group_days = item.partition(":")[2]
                break
        for item in items:
            hours, sep, days = item.partition(":")
            if not sep:
                days = group_days
            rng = parse_range(hours, spec)
            if not _DAYS.fullmatch(days):
                raise bad_session(spec, f"days {days!r} must be TradingView day numbers 1-7 (1=Sunday)")
            for d in set(days):
                per_day[(int(d) - 2) % 7].add(rng)
    week = tuple(tuple(sorted(ranges)) for ranges in per_day)
    if not any(week):
        raise bad_session(spec, "no trading day")
    for ranges in week:
        _check_day(spec, ranges)
    # Across days (an overnight or F range reaches into earlier days): lay two weeks out in
    # minutes from a Monday and require every window to end before the next one opens.
    laid = sorted((o + k * _DAY_MINUTES, c + k * _DAY_MINUTES)
                  for k in range(14) for o, c in week[k % 7])
    for (_, c1), (o2, _) in zip(laid, laid[1:]):
        if o2 < c1:
            raise bad_session(spec, "a day's session overlaps the next day's")
    return week


def days_before(ranges: Ranges) -> int:
    """How many calendar days before its own date the earliest range opens (0: same day)."""
    earliest = min((o for o, _ in ranges), default=0)
    return max(0, -(earliest // _DAY_MINUTES))


def session_zone(name: object) -> ZoneInfo:
    """The IANA zone of a session; InvalidSessionError names an unusable name."""
    if not isinstance(name, str) or not name:
        raise InvalidSessionError(f"invalid session timezone {name!r}: expected an IANA name such as 'America/New_York'")
    try:
        return ZoneInfo(name)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError (bad path), IsADirectoryError...
        raise InvalidSessionError(
            f"unknown session timezone {name!r}: expected an IANA name such as 'America/New_York'"
        ) from exc


def local_epoch(zone: ZoneInfo, ordinal: int, minutes: int) -> float:
    """Epoch of ``minutes`` after local midnight of date ``ordinal`` (may be negative).

    Wall-clock arithmetic on a naive datetime, then the zone: 09:30 stays 09:30 local on both
    sides of a DST change; a local time that does not exist resolves with fold=0."""
    midnight = datetime.combine(date.fromordinal(ordinal), datetime.min.time())
    return (midnight + timedelta(minutes=minutes)).replace(tzinfo=zone).timestamp()
