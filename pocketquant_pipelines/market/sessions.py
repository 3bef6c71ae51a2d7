"""Trading sessions and bar alignment (CONTRACT — helper A implements; signatures are fixed).

A ``Session`` is what TradingView's ``symbol_resolved`` tells us: an IANA ``timezone`` and a
``session`` string (``"24x7"``, ``"0930-1600"``, ``"0930-1600:23456"``, ``"2;0000-0000:1234567"``).

The model (docs/alignment.md has the full rules and what is observed vs inferred):

* A **trading day** is a local calendar date whose weekday is listed in the session. It owns one
  or more **windows** ``[open, close)``. A range whose close is not after its open
  (``"1700-1600"``) opens on the previous calendar evening; ``"0000-0000"`` is the whole day.
* **Intraday** buckets are anchored at each window's open and cut short at its close.
* **1d** bars start at the trading day's first open; **1w** at the first open of the first
  trading day of the Monday-based week; **1M** at the first open of the month's first trading
  day. Holidays are not modelled.
* An instant outside every window belongs to no bar (``bar_start`` returns None).

Everything runs on float epoch seconds internally (the aggregator's hot path needs that);
the public functions take and return aware UTC datetimes. Per-date work (local open/close ->
epoch) is cached, so aligning thousands of bars touches zoneinfo once per trading day.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from pocketquant_pipelines.errors import InvalidInputError, InvalidSessionError
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.timeutil import ensure_utc, from_epoch

_DAY = 86_400
_WEEK = 7 * _DAY
# 1970-01-01 was a Thursday: shifting by 3 days puts Monday at the start of each 7-day cycle.
_MONDAY_SHIFT = 3 * _DAY
# Zone names whose offset is always zero: 24x7 sessions there align with plain arithmetic.
_UTC_ZONES = frozenset({"Etc/UTC", "UTC", "Etc/GMT", "GMT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"})
_DEFAULT_DAYS = "23456"  # TradingView day numbers: 1=Sunday, 2=Monday ... 7=Saturday
# "HHMM-HHMM"; an "F" after the open ("1700F-1900", seen on TVC:DXY) puts the open on the
# previous calendar day even when the close is later in the day.
_RANGE = re.compile(r"(\d{4})(F?)-(\d{4})")
_DAYS = re.compile(r"[1-7]+")
# How far we look for the next session before concluding there is none (sessions trade on at
# least one weekday, so a month is plenty; this only bounds loops on malformed state).
_SCAN_DAYS = 40


@dataclass(frozen=True, slots=True)
class Session:
    timezone: str  # IANA, e.g. "Etc/UTC", "America/New_York"
    spec: str      # TradingView session string as received, e.g. "24x7", "0930-1600"

    def __post_init__(self) -> None:
        # Validate on construction so every Session in the system is usable (errors name the
        # bad spec or timezone); the compiled rules are cached for later alignment calls.
        if not isinstance(self.spec, str):
            raise _bad(self.spec, "expected a TradingView session string such as '0930-1600'")
        if not isinstance(self.timezone, str):
            raise InvalidSessionError(
                f"invalid session timezone {self.timezone!r}: expected an IANA name such as 'America/New_York'"
            )
        _rules(self)

    @classmethod
    def parse(cls, spec: str, timezone: str) -> "Session":
        """Validate and build; InvalidSessionError names the bad spec or timezone."""
        if not isinstance(spec, str):
            raise InvalidSessionError(f"invalid session {spec!r}: expected a TradingView session string such as '0930-1600'")
        if not isinstance(timezone, str):
            raise InvalidSessionError(f"invalid session timezone {timezone!r}: expected an IANA name such as 'America/New_York'")
        return cls(timezone.strip(), spec.strip())

    @property
    def is_24x7(self) -> bool:
        """True when the market never closes (every day is a full trading day)."""
        return _rules(self).always_open

    def is_open(self, t: datetime) -> bool:
        """True when aware-UTC instant ``t`` is inside a trading session."""
        return _locate(self, ensure_utc(t).timestamp()) is not None

    def __str__(self) -> str:
        return f"{self.spec} ({self.timezone})"


# --------------------------------------------------------------------------------------------
# Parsing: spec -> per-weekday ranges in minutes relative to the trading day's local midnight.


@dataclass(frozen=True, slots=True)
class _Rules:
    zone: ZoneInfo
    # Indexed by Python weekday (0=Monday). Each entry: sorted (open_min, close_min) relative to
    # the trading day's 00:00 local; open_min < 0 means the previous evening.
    week: tuple[tuple[tuple[int, int], ...], ...]
    always_open: bool
    utc_arithmetic: bool  # 24x7 in a zero-offset zone: align by epoch arithmetic alone


def _bad(spec: object, why: str) -> InvalidSessionError:
    return InvalidSessionError(f"invalid session {spec!r}: {why}")


def _minutes(spec: str, hhmm: str, *, is_close: bool) -> int:
    hh, mm = int(hhmm[:2]), int(hhmm[2:])
    if mm > 59 or hh > 24 or (hh == 24 and (mm != 0 or not is_close)):
        raise _bad(spec, f"time {hhmm!r} is not a valid HHMM")
    return hh * 60 + mm


def _parse_spec(spec: str) -> tuple[tuple[tuple[int, int], ...], ...]:
    if spec.lower() == "24x7":
        return tuple(((0, 1440),) for _ in range(7))
    text = spec
    # 2019-era strings carry a leading "N;" (e.g. "2;0000-0000:1234567"); it does not change
    # the hours, so it is skipped.
    if ";" in text:
        prefix, _, text = text.partition(";")
        if not prefix.isdigit():
            raise _bad(spec, f"prefix {prefix!r} before ';' is not a number")
    if not text:
        raise _bad(spec, "empty; expected e.g. '0930-1600', '0930-1600:23456' or '24x7'")
    per_day: list[list[tuple[int, int]]] = [[] for _ in range(7)]
    for group in text.split("|"):
        items = group.split(",")
        # A group's trailing ":days" applies to those of its ranges that carry no days.
        group_days = _DEFAULT_DAYS
        for item in reversed(items):
            if ":" in item:
                group_days = item.partition(":")[2]
                break
        for item in items:
            hours, sep, days = item.partition(":")
            if not sep:
                days = group_days
            match = _RANGE.fullmatch(hours)
            if not match:
                raise _bad(spec, f"range {hours!r} is not HHMM-HHMM")
            if not _DAYS.fullmatch(days):
                raise _bad(spec, f"days {days!r} must be TradingView day numbers 1-7 (1=Sunday)")
            o = _minutes(spec, match[1], is_close=False)
            c = _minutes(spec, match[3], is_close=True)
            if match[2]:
                rng = (o - 1440, c)  # "F": opens on the previous calendar day
            elif o == 0 and c == 0:
                rng = (0, 1440)  # "0000-0000": the whole calendar day
            elif c <= o:
                rng = (o - 1440, c)  # overnight: opens the previous calendar evening
            else:
                rng = (o, c)
            for d in set(days):
                per_day[(int(d) - 2) % 7].append(rng)
    week = tuple(tuple(sorted(set(ranges))) for ranges in per_day)
    if not any(week):
        raise _bad(spec, "no trading day")
    for wd, ranges in enumerate(week):
        for (_, c1), (o2, _) in zip(ranges, ranges[1:]):
            if o2 < c1:
                raise _bad(spec, "ranges of one day overlap")
        following = week[(wd + 1) % 7]
        if ranges and following and following[0][0] + 1440 < ranges[-1][1]:
            raise _bad(spec, "a day's session overlaps the next day's")
    return week


def _zone(session: Session) -> ZoneInfo:
    name = session.timezone
    if not name:
        raise InvalidSessionError(f"invalid session timezone {name!r}: expected an IANA name such as 'America/New_York'")
    try:
        return ZoneInfo(name)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError (bad path), IsADirectoryError...
        raise InvalidSessionError(
            f"unknown session timezone {name!r}: expected an IANA name such as 'America/New_York'"
        ) from exc


@lru_cache(maxsize=512)
def _rules(session: Session) -> _Rules:
    spec = session.spec
    zone = _zone(session)
    week = _parse_spec(spec)
    always_open = all(ranges == ((0, 1440),) for ranges in week)
    return _Rules(zone, week, always_open, always_open and session.timezone in _UTC_ZONES)


# --------------------------------------------------------------------------------------------
# Trading days: local date ordinal -> windows as epoch seconds (cached).


def _weekday(ordinal: int) -> int:
    return (ordinal - 1) % 7  # date.fromordinal(1) (0001-01-01) was a Monday


@lru_cache(maxsize=65_536)
def _day_windows(session: Session, ordinal: int) -> tuple[tuple[float, float], ...]:
    rules = _rules(session)
    ranges = rules.week[_weekday(ordinal)]
    if not ranges:
        return ()
    midnight = datetime.combine(date.fromordinal(ordinal), datetime.min.time())
    zone = rules.zone
    # Wall-clock arithmetic on naive datetimes, then attach the zone: 09:30 stays 09:30 local
    # on both sides of a DST change (a nonexistent local time resolves with fold=0).
    return tuple(
        (
            (midnight + timedelta(minutes=o)).replace(tzinfo=zone).timestamp(),
            (midnight + timedelta(minutes=c)).replace(tzinfo=zone).timestamp(),
        )
        for o, c in ranges
    )


def _local_ordinal(session: Session, t: float) -> int:
    return datetime.fromtimestamp(t, _rules(session).zone).toordinal()


def _locate(session: Session, t: float) -> tuple[int, float, float] | None:
    """(trading-day ordinal, window open, window close) of the window containing ``t``."""
    if _rules(session).utc_arithmetic:
        day = t - t % _DAY
        return int(day // _DAY) + 719_163, day, day + _DAY  # 719163 = date(1970,1,1).toordinal()
    local = _local_ordinal(session, t)
    # A window of trading day D lies within [D-1 00:00, D+1 00:00) local, so t's trading day
    # is its local date or the next one (overnight sessions).
    for ordinal in (local, local + 1):
        for o, c in _day_windows(session, ordinal):
            if o <= t < c:
                return ordinal, o, c
    return None


def _trading_days(session: Session, first: int, last: int) -> list[int]:
    return [d for d in range(first, last + 1) if _rules(session).week[_weekday(d)]]


@lru_cache(maxsize=8_192)
def _week_bounds(session: Session, monday: int) -> tuple[float, float] | None:
    days = _trading_days(session, monday, monday + 6)
    if not days:
        return None
    return _day_windows(session, days[0])[0][0], _day_windows(session, days[-1])[-1][1]


@lru_cache(maxsize=4_096)
def _month_bounds(session: Session, year: int, month: int) -> tuple[float, float] | None:
    first = date(year, month, 1).toordinal()
    nxt = date(year + month // 12, month % 12 + 1, 1).toordinal()
    days = _trading_days(session, first, nxt - 1)
    if not days:
        return None
    return _day_windows(session, days[0])[0][0], _day_windows(session, days[-1])[-1][1]


def _period_bounds(session: Session, interval: Interval, ordinal: int) -> tuple[float, float]:
    """Bounds of the 1d/1w/1M bar that trading day ``ordinal`` belongs to."""
    if interval is Interval.D1:
        windows = _day_windows(session, ordinal)
        return windows[0][0], windows[-1][1]
    if interval is Interval.W1:
        return _week_bounds(session, ordinal - _weekday(ordinal))  # type: ignore[return-value]
    d = date.fromordinal(ordinal)
    return _month_bounds(session, d.year, d.month)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Epoch-level alignment (used by the aggregator; no datetime objects on the common path).

SESSION_24X7 = Session("Etc/UTC", "24x7")


def bar_bounds_epoch(t: float, interval: Interval, session: Session = SESSION_24X7) -> tuple[float, float] | None:
    """``(start, end)`` epoch seconds of the bar containing epoch ``t``, or None when ``t`` is
    outside every session. ``end`` is exclusive."""
    rules = _rules(session)
    minutes = interval.minutes
    if rules.utc_arithmetic:
        if minutes is not None or interval is Interval.D1:
            # Every intraday length divides 1440, so the grid from the epoch is the grid from
            # each UTC midnight.
            length = minutes * 60 if minutes is not None else _DAY
            start = t - t % length
            return start, start + length
        if interval is Interval.W1:
            start = t - (t + _MONDAY_SHIFT) % _WEEK
            return start, start + _WEEK
        d = datetime.fromtimestamp(t, UTC)
        return _month_bounds(session, d.year, d.month)
    located = _locate(session, t)
    if located is None:
        return None
    ordinal, wopen, wclose = located
    if minutes is not None:
        length = minutes * 60
        start = wopen + ((t - wopen) // length) * length
        end = start + length
        return start, (end if end < wclose else wclose)
    return _period_bounds(session, interval, ordinal)


def _day_starts(session: Session, interval: Interval, ordinal: int) -> list[float]:
    """Bar starts (epoch) that trading day ``ordinal`` contributes, ascending."""
    windows = _day_windows(session, ordinal)
    if not windows:
        return []
    minutes = interval.minutes
    if minutes is not None:
        length = minutes * 60
        out: list[float] = []
        for o, c in windows:
            s = o
            while s < c:
                out.append(s)
                s += length
        return out
    start = _period_bounds(session, interval, ordinal)[0]
    # 1w/1M: only the period's first trading day contributes its open.
    return [start] if start == windows[0][0] else []


def bar_starts_between_epoch(start: float, end: float, interval: Interval, session: Session) -> list[float]:
    if end <= start:
        return []
    rules = _rules(session)
    minutes = interval.minutes
    if rules.utc_arithmetic and (minutes is not None or interval is Interval.D1):
        length = minutes * 60 if minutes is not None else _DAY
        first = math.ceil(start / length) * length
        return [float(s) for s in range(first, math.ceil(end), length) if s < end]
    out: list[float] = []
    for ordinal in range(_local_ordinal(session, start) - 1, _local_ordinal(session, end) + 2):
        out.extend(s for s in _day_starts(session, interval, ordinal) if start <= s < end)
    return out


def first_start_at_or_after_epoch(x: float, interval: Interval, session: Session) -> float | None:
    """The earliest bar start >= ``x`` (None only for a session that never trades)."""
    base = _local_ordinal(session, x) - 1
    for ordinal in range(base, base + _SCAN_DAYS + 1):
        for s in _day_starts(session, interval, ordinal):
            if s >= x:
                return s
    return None


def closed_span_epoch(t: float, session: Session) -> tuple[float, float] | None:
    """The out-of-session gap ``[last close, next open)`` around epoch ``t``, or None if
    ``t`` is inside a session. Lets the aggregator drop a run of closed-market ticks cheaply."""
    if _locate(session, t) is not None:
        return None
    local = _local_ordinal(session, t)
    before = [c for d in range(local - _SCAN_DAYS, local + 2) for _, c in _day_windows(session, d) if c <= t]
    after = [o for d in range(local - 1, local + _SCAN_DAYS) for o, _ in _day_windows(session, d) if o > t]
    return (max(before) if before else -math.inf), (min(after) if after else math.inf)


# --------------------------------------------------------------------------------------------
# Public datetime API.


def bar_start(t: datetime, interval: Interval, session: Session = SESSION_24X7) -> datetime | None:
    """Start (aware UTC) of the bar containing ``t``; None if ``t`` is outside every session."""
    bounds = bar_bounds_epoch(ensure_utc(t).timestamp(), Interval.parse(interval), session)
    return None if bounds is None else from_epoch(bounds[0])


def bar_end(start: datetime, interval: Interval, session: Session = SESSION_24X7) -> datetime:
    """Exclusive end of the bar that starts at ``start`` (intraday bars end at the session
    close at the latest; 1d at the session close; 1w/1M at the last session's close)."""
    start = ensure_utc(start, "bar start")
    bounds = bar_bounds_epoch(start.timestamp(), Interval.parse(interval), session)
    if bounds is None:
        raise InvalidInputError(f"bar start {start.isoformat()} is outside the session {session}")
    return from_epoch(bounds[1])


def bar_starts_between(
    start: datetime, end: datetime, interval: Interval, session: Session = SESSION_24X7
) -> list[datetime]:
    """Every bar start in [start, end) that a market with this session would produce
    (closed markets produce none: this is how gap checks tell gaps from closures)."""
    s = ensure_utc(start, "range start").timestamp()
    e = ensure_utc(end, "range end").timestamp()
    return [from_epoch(x) for x in bar_starts_between_epoch(s, e, Interval.parse(interval), session)]


def next_bar_start(start: datetime, interval: Interval, session: Session = SESSION_24X7) -> datetime | None:
    """The first bar start strictly after ``start`` (``start`` need not be a bar start; for a
    time outside the session this is the bar that opens the next session)."""
    t = ensure_utc(start).timestamp()
    interval = Interval.parse(interval)
    bounds = bar_bounds_epoch(t, interval, session)
    x = bounds[1] if bounds is not None else t
    found = first_start_at_or_after_epoch(x, interval, session)
    return None if found is None else from_epoch(found)
