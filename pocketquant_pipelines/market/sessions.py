"""Trading sessions, their calendars, and bar alignment.

A ``Session`` is what TradingView's ``symbol_resolved`` tells us: an IANA ``timezone``, a
``session`` string (``"24x7"``, ``"0930-1600"``, ``"0930-1600:23456"``, ``"2;0000-0000:1234567"``)
and the exchange calendar (``market.calendar``: holidays, per-day corrections and what synced
daily history showed).

The model (docs/alignment.md has the full rules and what is observed vs inferred):

* A **trading day** is a local calendar date whose weekday is listed in the session and that
  the calendar does not close (a corrected day trades its correction's ranges, whatever its
  weekday). It owns one or more **windows** ``[open, close)``. A range whose close is not after
  its open (``"1700-1600"``) opens on the previous calendar evening; ``"0000-0000"`` is the
  whole day; ``F``/``Fn`` put a time one / n days earlier.
* **Intraday** buckets are anchored at each window's open and cut short at its close.
* **1d** bars start at the trading day's first open and end at its last close (an early close
  ends them early); **1w** at the first open of the first trading day of the Monday-based week;
  **1M** at the first open of the month's first trading day.
* An instant outside every window belongs to no bar (``bar_start`` returns None).

Everything runs on float epoch seconds internally (the aggregator's hot path needs that);
the public functions take and return aware UTC datetimes. Per-date work (local open/close ->
epoch) is cached, so aligning thousands of bars touches zoneinfo once per trading day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from pocketquant_pipelines.errors import InvalidInputError, InvalidSessionError
from pocketquant_pipelines.market.calendar import EMPTY_CALENDAR, TradingCalendar
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.session_rules import (
    bad_session,
    days_before,
    local_epoch,
    parse_week,
    session_zone,
)
from pocketquant_pipelines.market.timeutil import ensure_utc, from_epoch

_DAY = 86_400
_WEEK = 7 * _DAY
# 1970-01-01 was a Thursday: shifting by 3 days puts Monday at the start of each 7-day cycle.
_MONDAY_SHIFT = 3 * _DAY
# Zone names whose offset is always zero: 24x7 sessions there align with plain arithmetic.
_UTC_ZONES = frozenset({"Etc/UTC", "UTC", "Etc/GMT", "GMT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"})
# How far we look for the next session before concluding there is none (sessions trade on at
# least one weekday and real closures last days or weeks; this only bounds the loops).
_SCAN_DAYS = 40


@dataclass(frozen=True, slots=True)
class Session:
    timezone: str  # IANA, e.g. "Etc/UTC", "America/New_York"
    spec: str      # TradingView session string as received, e.g. "24x7", "0930-1600"
    calendar: TradingCalendar = EMPTY_CALENDAR  # closed and corrected days (market.calendar)
    # A Session is part of every alignment cache key: hash it once, not per lookup.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Validate on construction so every Session in the system is usable (errors name the
        # bad spec or timezone); the compiled rules are cached for later alignment calls.
        if not isinstance(self.spec, str):
            raise bad_session(self.spec, "expected a TradingView session string such as '0930-1600'")
        if not isinstance(self.timezone, str):
            raise InvalidSessionError(
                f"invalid session timezone {self.timezone!r}: expected an IANA name such as 'America/New_York'"
            )
        if not isinstance(self.calendar, TradingCalendar):
            raise InvalidSessionError(
                f"invalid session calendar {self.calendar!r}: expected a market.calendar.TradingCalendar")
        object.__setattr__(self, "_hash", hash((self.timezone, self.spec, self.calendar)))
        _rules(self)

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self):  # str hashes differ per process: rebuild (and re-hash) on unpickling
        return Session, (self.timezone, self.spec, self.calendar)

    @classmethod
    def parse(cls, spec: str, timezone: str, calendar: TradingCalendar | None = None) -> "Session":
        """Validate and build; InvalidSessionError names the bad spec or timezone."""
        if not isinstance(spec, str):
            raise InvalidSessionError(f"invalid session {spec!r}: expected a TradingView session string such as '0930-1600'")
        if not isinstance(timezone, str):
            raise InvalidSessionError(f"invalid session timezone {timezone!r}: expected an IANA name such as 'America/New_York'")
        return cls(timezone.strip(), spec.strip(), EMPTY_CALENDAR if calendar is None else calendar)

    def without_calendar(self) -> "Session":
        return self if not self.calendar else Session(self.timezone, self.spec)

    @property
    def is_24x7(self) -> bool:
        """True when the market never closes (every day is a full trading day, no calendar)."""
        return _rules(self).always_open

    def is_open(self, t: datetime) -> bool:
        """True when aware-UTC instant ``t`` is inside a trading session."""
        return _locate(self, ensure_utc(t).timestamp()) is not None

    def __str__(self) -> str:
        return f"{self.spec} ({self.timezone})"


# --------------------------------------------------------------------------------------------
# Compiled rules: the session string's weekday ranges (session_rules) and the zone.


@dataclass(frozen=True, slots=True)
class _Rules:
    zone: ZoneInfo
    # Indexed by Python weekday (0=Monday). Each entry: sorted (open_min, close_min) relative to
    # the trading day's 00:00 local; open_min < 0 means an earlier calendar day.
    week: tuple[tuple[tuple[int, int], ...], ...]
    always_open: bool
    utc_arithmetic: bool  # 24x7 in a zero-offset zone, no calendar: align by epoch arithmetic alone
    # A window of trading day D lies within [D - reach, D + 1) local: the days that may own an
    # instant are its local date and the ``reach`` dates after it.
    reach: int


@lru_cache(maxsize=512)
def _rules(session: Session) -> _Rules:
    zone = session_zone(session.timezone)
    week = parse_week(session.spec)
    calendar = session.calendar
    always_open = not calendar and all(ranges == ((0, 1440),) for ranges in week)
    reach = max(1, calendar.days_before, *(days_before(r) for r in week if r))
    return _Rules(zone, week, always_open, always_open and session.timezone in _UTC_ZONES, reach)


# --------------------------------------------------------------------------------------------
# Trading days: local date ordinal -> windows as epoch seconds (cached).


def _weekday(ordinal: int) -> int:
    return (ordinal - 1) % 7  # date.fromordinal(1) (0001-01-01) was a Monday


@lru_cache(maxsize=65_536)
def _day_windows(session: Session, ordinal: int) -> tuple[tuple[float, float], ...]:
    rules = _rules(session)
    ranges = rules.week[_weekday(ordinal)]
    calendar = session.calendar
    if calendar:
        ranges = calendar.ranges_on(ordinal, ranges)
    if not ranges:
        return ()
    zone = rules.zone
    return tuple((local_epoch(zone, ordinal, o), local_epoch(zone, ordinal, c)) for o, c in ranges)


def _local_ordinal(session: Session, t: float) -> int:
    return datetime.fromtimestamp(t, _rules(session).zone).toordinal()


def _locate(session: Session, t: float) -> tuple[int, float, float] | None:
    """(trading-day ordinal, window open, window close) of the window containing ``t``."""
    rules = _rules(session)
    if rules.utc_arithmetic:
        day = t - t % _DAY
        return int(day // _DAY) + 719_163, day, day + _DAY  # 719163 = date(1970,1,1).toordinal()
    local = _local_ordinal(session, t)
    # A window of trading day D lies within [D - reach, D + 1) local, so t's trading day is
    # its local date or one of the ``reach`` after it (1 for overnight sessions).
    for ordinal in range(local, local + rules.reach + 1):
        for o, c in _day_windows(session, ordinal):
            if o <= t < c:
                return ordinal, o, c
    return None


def _trading_days(session: Session, first: int, last: int) -> list[int]:
    if session.calendar:
        return [d for d in range(first, last + 1) if _day_windows(session, d)]
    week = _rules(session).week
    return [d for d in range(first, last + 1) if week[_weekday(d)]]


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
    for ordinal in range(_local_ordinal(session, start) - 1, _local_ordinal(session, end) + rules.reach + 1):
        out.extend(s for s in _day_starts(session, interval, ordinal) if start <= s < end)
    if rules.reach > 1:
        out.sort()  # a day that opens several days early (Fn) lists its starts out of day order
    return out


def first_start_at_or_after_epoch(x: float, interval: Interval, session: Session) -> float | None:
    """The earliest bar start >= ``x`` (None only for a session that never trades)."""
    base = _local_ordinal(session, x) - 1
    reach = _rules(session).reach
    found: float | None = None
    last = base + _SCAN_DAYS
    ordinal = base
    while ordinal <= last:
        for s in _day_starts(session, interval, ordinal):
            if s >= x:
                if found is None:
                    # a later day may open earlier (overnight, Fn): look ``reach`` days further
                    last = min(last, ordinal + reach)
                    found = s
                elif s < found:
                    found = s
                break
        ordinal += 1
    return found


def closed_span_epoch(t: float, session: Session) -> tuple[float, float] | None:
    """The out-of-session gap ``[last close, next open)`` around epoch ``t``, or None if
    ``t`` is inside a session. Lets the aggregator drop a run of closed-market ticks cheaply."""
    if _locate(session, t) is not None:
        return None
    local = _local_ordinal(session, t)
    reach = _rules(session).reach
    before = [c for d in range(local - _SCAN_DAYS, local + reach + 1) for _, c in _day_windows(session, d) if c <= t]
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
