"""Exchange calendars: the days a market is closed or trades other hours (no I/O, no clock).

Where the knowledge comes from (docs/alignment.md has the sources and what is observed):

* ``session_holidays`` in ``symbol_resolved``: comma-separated ``YYYYMMDD`` dates without
  trading. Lists are unsorted, may repeat a date and reach years ahead.
* Session corrections: ``SESSION:YYYYMMDD[,YYYYMMDD][;SESSION:YYYYMMDD[,...]]``, where SESSION
  uses the session-string range syntax (``F``/``Fn`` included) or is ``dayoff`` (the whole day
  is closed). The string in force is the top-level ``corrections`` when present, else the
  ``session-correction`` of the subsession named by ``subsession_id``. A correction outranks a
  holiday on the same date; when two corrections name one date, the later one wins.
* The synced daily history, for past days: inside the range it covers, a day the session
  would trade but that has no daily bar is closed (even where the holiday list misses it), and
  a day with a daily bar is open (even where the list names it).

A :class:`TradingCalendar` holds only the *effect* of all that: the closed days, and the
days that trade other hours with their ranges. Two calendars that close the same days and
correct the same hours are equal, whatever lists they were built from, so a registry update
that changes nothing (a later ``resolved_at``, a history range one day longer) changes no
``Session`` and rebuilds no aggregator. It is immutable and its hash is computed once: it is
part of every alignment cache key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache

from pocketquant_pipelines.errors import InvalidCalendarError, InvalidSessionError
from pocketquant_pipelines.market.session_rules import (
    Ranges,
    days_before,
    local_epoch,
    parse_ranges,
    parse_week,
    session_zone,
)

__all__ = [
    "EMPTY_CALENDAR",
    "CalendarHistory",
    "TradingCalendar",
    "build_calendar",
    "calendar_from_record",
    "calendar_from_symbol_info",
    "calendar_record",
    "corrections_in_force",
    "derive_history",
    "format_day",
    "parse_corrections",
    "parse_day",
    "parse_holidays",
]

DAYOFF = "dayoff"  # a correction's SESSION that closes the whole day (seen in TradingView data)
_YYYYMMDD = re.compile(r"\d{8}")


# --------------------------------------------------------------------------------------------
# Dates


def parse_day(text: object, what: str = "date") -> date:
    """``YYYYMMDD`` -> date; the error names the bad value."""
    if not isinstance(text, str) or not _YYYYMMDD.fullmatch(text.strip()):
        raise InvalidCalendarError(f"invalid {what} {text!r}: expected YYYYMMDD")
    text = text.strip()
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise InvalidCalendarError(f"invalid {what} {text!r}: no such calendar date") from None


def format_day(day: date | int) -> str:
    return (date.fromordinal(day) if isinstance(day, int) else day).strftime("%Y%m%d")


def parse_holidays(value: str | Iterable[str] | None) -> tuple[date, ...]:
    """``session_holidays`` (comma-separated text, or a list of ``YYYYMMDD``) -> sorted
    unique dates. Empty items (a trailing comma) are ignored."""
    if value is None:
        return ()
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        items = list(value)
    else:
        raise InvalidCalendarError(f"invalid session_holidays {value!r}: expected comma-separated YYYYMMDD dates")
    days = set()
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        days.add(parse_day(item, "holiday"))
    return tuple(sorted(days))


# --------------------------------------------------------------------------------------------
# Corrections


def parse_corrections(text: str | None) -> tuple[tuple[date, Ranges | None], ...]:
    """A correction string -> ``(date, ranges)`` pairs in the order listed; ``ranges`` is None
    for ``dayoff``. Example: ``"1900F4-2350F4,1000-1845:20181113;1000-1400:20181114"``."""
    if text is None:
        return ()
    if not isinstance(text, str):
        raise InvalidCalendarError(f"invalid session corrections {text!r}: expected SESSION:YYYYMMDD[,...][;...]")
    out: list[tuple[date, Ranges | None]] = []
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        session, sep, dates = item.rpartition(":")
        if not sep or not session or not dates:
            raise InvalidCalendarError(
                f"invalid session correction {item!r} in {text!r}: expected SESSION:YYYYMMDD[,YYYYMMDD]")
        if session.strip().lower() == DAYOFF:
            ranges: Ranges | None = None
        else:
            try:
                ranges = parse_ranges(session.strip(), item)
            except InvalidSessionError as exc:
                raise InvalidCalendarError(f"invalid session correction {item!r} in {text!r}: {exc}") from None
        for day in dates.split(","):
            out.append((parse_day(day, f"correction date in {item!r}"), ranges))
    return tuple(out)


def corrections_in_force(info: Mapping[str, object]) -> str:
    """The correction string a ``symbol_resolved`` payload puts in force: its top-level
    ``corrections`` when present, else the ``session-correction`` of the subsession named by
    ``subsession_id`` ("" when there is none)."""
    if "corrections" in info and info["corrections"] is not None:
        value = info["corrections"]
    else:
        value = ""
        wanted = info.get("subsession_id")
        for sub in (info.get("subsessions") or ()) if isinstance(wanted, str) else ():
            if isinstance(sub, Mapping) and sub.get("id") == wanted:
                value = sub.get("session-correction") or ""
                break
    if not isinstance(value, str):
        raise InvalidCalendarError(f"invalid session corrections {value!r}: expected SESSION:YYYYMMDD[,...][;...]")
    return value.strip()


# --------------------------------------------------------------------------------------------
# The calendar


class TradingCalendar:
    """Closed days and corrected days (date ordinals), nothing else. Immutable, hashable."""

    __slots__ = ("closed", "corrected", "days_before", "_ranges", "_hash")

    closed: frozenset[int]
    corrected: tuple[tuple[int, Ranges], ...]
    days_before: int

    def __init__(self, closed: Iterable[date | int] = (),
                 corrected: Mapping[date | int, Ranges] | Iterable[tuple[date | int, Ranges]] = ()) -> None:
        shut = frozenset(_ordinal(d) for d in closed)
        pairs = corrected.items() if isinstance(corrected, Mapping) else corrected
        ranges = {}
        for day, rng in pairs:
            o = _ordinal(day)
            if o not in shut:  # a closed day trades no hours, corrected or not
                ranges[o] = tuple(tuple(r) for r in rng)
        setter = object.__setattr__
        setter(self, "closed", shut)
        setter(self, "corrected", tuple(sorted(ranges.items())))
        setter(self, "_ranges", ranges)
        # How far before its date a corrected day may open: alignment looks that far ahead.
        setter(self, "days_before", max((days_before(r) for r in ranges.values()), default=0))
        setter(self, "_hash", hash((shut, self.corrected)))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"TradingCalendar is immutable (cannot set {name!r})")

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, TradingCalendar):
            return NotImplemented
        return self._hash == other._hash and self.closed == other.closed and self.corrected == other.corrected

    def __reduce__(self):  # the cached hash of str-based data is per process: rebuild it
        return TradingCalendar, (tuple(self.closed), self.corrected)

    def __bool__(self) -> bool:
        return bool(self.closed or self.corrected)

    def __repr__(self) -> str:
        if not self:
            return "TradingCalendar()"
        parts = []
        if self.closed:
            lo, hi = min(self.closed), max(self.closed)
            parts.append(f"{len(self.closed)} closed days {format_day(lo)}..{format_day(hi)}")
        if self.corrected:
            parts.append(f"{len(self.corrected)} corrected days")
        return f"TradingCalendar({', '.join(parts)})"

    def ranges_on(self, ordinal: int, regular: Ranges) -> Ranges:
        """The ranges trading day ``ordinal`` trades: none if closed, the correction's if
        corrected, else ``regular`` (the weekday's ranges from the session string)."""
        if ordinal in self.closed:
            return ()
        return self._ranges.get(ordinal, regular)

    def correction(self, ordinal: int) -> Ranges | None:
        return self._ranges.get(ordinal)

    def closed_dates(self) -> tuple[date, ...]:
        return tuple(date.fromordinal(o) for o in sorted(self.closed))


EMPTY_CALENDAR = TradingCalendar()


def _ordinal(day: date | int) -> int:
    if isinstance(day, bool):
        raise InvalidCalendarError(f"calendar day {day!r} is not a date")
    if isinstance(day, int):
        return day
    if isinstance(day, date) and not isinstance(day, datetime):
        return day.toordinal()
    raise InvalidCalendarError(f"calendar day {day!r} is not a date")


# --------------------------------------------------------------------------------------------
# What synced daily history says


@dataclass(frozen=True, slots=True)
class CalendarHistory:
    """Closures and openings that daily history shows for trading days ``first..last``."""

    first: date
    last: date
    closed: tuple[date, ...] = ()  # days the session would trade, without a daily bar
    open: tuple[date, ...] = ()    # days with a daily bar that the TradingView calendar closes

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise InvalidCalendarError(f"calendar history {format_day(self.first)}..{format_day(self.last)} ends before it starts")
        for name in ("closed", "open"):
            for day in getattr(self, name):
                if not self.first <= day <= self.last:
                    raise InvalidCalendarError(
                        f"calendar history {name} day {format_day(day)} is outside "
                        f"{format_day(self.first)}..{format_day(self.last)}")
        both = set(self.closed) & set(self.open)
        if both:
            raise InvalidCalendarError(f"calendar history day {format_day(min(both))} is both closed and open")

    def to_record(self) -> dict:
        return {"first": format_day(self.first), "last": format_day(self.last),
                "closed": [format_day(d) for d in self.closed], "open": [format_day(d) for d in self.open]}

    @classmethod
    def from_record(cls, record: object) -> CalendarHistory:
        if not isinstance(record, Mapping):
            raise InvalidCalendarError(f"invalid calendar history {record!r}: expected a mapping")
        try:
            first, last = record["first"], record["last"]
        except KeyError as exc:
            raise InvalidCalendarError(f"invalid calendar history {dict(record)!r}: no {exc.args[0]!r}") from None
        return cls(parse_day(first, "history first day"), parse_day(last, "history last day"),
                   parse_holidays(record.get("closed") or ()), parse_holidays(record.get("open") or ()))


def build_calendar(holidays: Iterable[date] = (), corrections: Iterable[tuple[date, Ranges | None]] = (),
                   history: CalendarHistory | None = None) -> TradingCalendar:
    """Holidays, then corrections (which outrank them; a later one wins over an earlier one of
    the same date), then history (the final word inside its range)."""
    closed = {d.toordinal() for d in holidays}
    corrected: dict[int, Ranges] = {}
    for day, ranges in corrections:
        o = day.toordinal()
        if ranges is None:
            closed.add(o)
            corrected.pop(o, None)
        else:
            closed.discard(o)
            corrected[o] = ranges
    if history is not None:
        lo, hi = history.first.toordinal(), history.last.toordinal()
        closed = {o for o in closed if not lo <= o <= hi}
        closed.update(d.toordinal() for d in history.closed)
    return TradingCalendar(closed, corrected)


def calendar_from_symbol_info(info: Mapping[str, object]) -> TradingCalendar:
    """The calendar a ``symbol_resolved`` payload describes (holidays + corrections in force)."""
    return build_calendar(parse_holidays(info.get("session_holidays")), parse_corrections(corrections_in_force(info)))


def calendar_record(info: Mapping[str, object], resolved_at: str,
                    history: Mapping[str, object] | None = None) -> dict:
    """The registry's JSON form (storage ``SymbolInfo.calendar``) of a ``symbol_resolved``
    payload read at ``resolved_at`` (ISO-8601 UTC); ``history`` is kept as given. Raises
    InvalidCalendarError, naming the value, when the payload's lists cannot be parsed."""
    holidays = parse_holidays(info.get("session_holidays"))
    corrections = corrections_in_force(info)
    parse_corrections(corrections)  # validate before it reaches the registry
    record: dict = {"holidays": [format_day(d) for d in holidays], "corrections": corrections,
                    "resolved_at": resolved_at}
    if history:
        record["history"] = dict(history)
    return record


def calendar_from_record(record: Mapping[str, object] | None, *, with_history: bool = True) -> TradingCalendar:
    """The registry's JSON form -> calendar (``with_history=False``: TradingView's lists only,
    what history is judged against). Cached: the streamer re-reads the registry often."""
    if not record:
        return EMPTY_CALENDAR
    if not isinstance(record, Mapping):
        raise InvalidCalendarError(f"invalid calendar record {record!r}: expected a mapping")
    holidays = record.get("holidays") or ()
    if isinstance(holidays, str):
        holidays = holidays.split(",")
    if not isinstance(holidays, (list, tuple)):
        raise InvalidCalendarError(f"invalid calendar holidays {holidays!r}: expected a list of YYYYMMDD")
    history = record.get("history") if with_history else None
    key_history = None
    if history:
        if not isinstance(history, Mapping):
            raise InvalidCalendarError(f"invalid calendar history {history!r}: expected a mapping")
        key_history = (history.get("first"), history.get("last"),
                       _as_tuple(history.get("closed")), _as_tuple(history.get("open")))
    try:
        return _calendar_from_parts(tuple(holidays), record.get("corrections") or "", key_history)
    except TypeError:  # an unhashable item inside a list: report it as the bad record it is
        raise InvalidCalendarError(f"invalid calendar record {dict(record)!r}") from None


def _as_tuple(value: object) -> tuple:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(value)
    raise InvalidCalendarError(f"invalid calendar history days {value!r}: expected a list of YYYYMMDD")


@lru_cache(maxsize=1024)
def _calendar_from_parts(holidays: tuple, corrections: str, history: tuple | None) -> TradingCalendar:
    past = None
    if history is not None:
        first, last, closed, opened = history
        past = CalendarHistory.from_record({"first": first, "last": last, "closed": closed, "open": opened})
    return build_calendar(parse_holidays(holidays), parse_corrections(corrections), past)


def derive_history(daily_starts: Iterable[float], spec: str, timezone: str,
                   calendar: TradingCalendar = EMPTY_CALENDAR) -> CalendarHistory | None:
    """What the daily bar starts (epoch seconds) of a synced range say about the calendar.

    Each start is placed on the trading day whose session (``spec``, or that day's correction
    in ``calendar``) contains it, so an overnight session's bar that opens the evening before
    counts for the next day. Between the first and last such day, a day the session would
    trade without a bar is closed; a bar on a day that ``calendar`` (TradingView's lists)
    closes, or on a day the session does not trade, is open. None when there is no bar."""
    week = parse_week(spec)
    zone = session_zone(timezone)
    reach = max(1, calendar.days_before, *(days_before(r) for r in week if r))
    windows: dict[int, tuple[tuple[float, float], ...]] = {}

    def candidate(ordinal: int) -> Ranges:
        correction = calendar.correction(ordinal)
        return correction if correction is not None else week[(ordinal - 1) % 7]

    def day_windows(ordinal: int) -> tuple[tuple[float, float], ...]:
        got = windows.get(ordinal)
        if got is None:
            got = windows[ordinal] = tuple(
                (local_epoch(zone, ordinal, o), local_epoch(zone, ordinal, c)) for o, c in candidate(ordinal))
        return got

    bar_days: set[int] = set()
    for t in daily_starts:
        t = float(t)
        local = datetime.fromtimestamp(t, zone).toordinal()
        owner = None
        for ordinal in range(local, local + reach + 1):
            spans = day_windows(ordinal)
            if spans and spans[0][0] == t:
                owner = ordinal
                break
            if owner is None and any(o <= t < c for o, c in spans):
                owner = ordinal
        bar_days.add(local if owner is None else owner)
    if not bar_days:
        return None
    first, last = min(bar_days), max(bar_days)
    closed = [d for d in range(first, last + 1) if d not in bar_days and candidate(d)]
    opened = [d for d in sorted(bar_days) if d in calendar.closed or not candidate(d)]
    return CalendarHistory(date.fromordinal(first), date.fromordinal(last),
                           tuple(date.fromordinal(d) for d in closed), tuple(date.fromordinal(d) for d in opened))
