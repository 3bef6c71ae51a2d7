"""Alignment with an exchange calendar: no bar starts on a closed day, early closes end the
day's bars early, weeks and months start at their first session that trades, DST stays right,
and the aggregator builds exactly the bars that grouping by ``bar_start`` gives."""

import math
import random
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pocketquant_pipelines.errors import InvalidSessionError
from pocketquant_pipelines.market.aggregator import BarAggregator
from pocketquant_pipelines.market.calendar import (
    EMPTY_CALENDAR,
    CalendarHistory,
    build_calendar,
    parse_corrections,
    parse_holidays,
)
from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval
from pocketquant_pipelines.market.sessions import (
    SESSION_24X7,
    Session,
    bar_bounds_epoch,
    bar_end,
    bar_start,
    bar_starts_between,
    closed_span_epoch,
    next_bar_start,
)

US = timedelta(microseconds=1)
# NYSE 2025-2026 (a subset): Labor Day, Thanksgiving, Christmas, New Year, MLK Day, Good Friday,
# Independence Day (observed); 13:00 closes after Thanksgiving, on Christmas Eve, on July 3.
NYSE = build_calendar(
    parse_holidays("20250704,20250901,20251127,20251225,20260101,20260119,20260403,20260703"),
    parse_corrections("0930-1300:20251224,20251128,20250703;dayoff:20250109"),
)
NY = Session.parse("0930-1600", "America/New_York", NYSE)
PLAIN_NY = Session.parse("0930-1600", "America/New_York")
CME = Session.parse("1700-1600:23456", "America/Chicago",
                    build_calendar(parse_holidays("20250901,20251127"), parse_corrections("1700-1200:20251128")))


def u(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local_dates(starts, zone="America/New_York") -> set[date]:
    from zoneinfo import ZoneInfo

    return {s.astimezone(ZoneInfo(zone)).date() for s in starts}


# --- closed days ------------------------------------------------------------------------------


@pytest.mark.parametrize("interval", ALL_INTERVALS, ids=str)
def test_no_bar_starts_on_a_closed_day(interval):
    starts = bar_starts_between(u("2025-06-01T00:00"), u("2026-02-01T00:00"), interval, NY)
    closed = {date(2025, 7, 4), date(2025, 9, 1), date(2025, 11, 27), date(2025, 12, 25), date(2026, 1, 1),
              date(2026, 1, 19), date(2025, 1, 9)}
    assert starts and not local_dates(starts) & closed
    for day in closed - {date(2025, 1, 9)}:
        noon = datetime(day.year, day.month, day.day, 17, 0, tzinfo=UTC)  # 12/13:00 New York
        assert bar_start(noon, interval, NY) is None and not NY.is_open(noon)
        assert bar_start(noon, interval, PLAIN_NY) is not None  # the calendar is what closes it


def test_labor_day_week_and_month_start_on_tuesday():
    tuesday_open = u("2025-09-02T13:30")
    for t in (u("2025-09-02T13:30"), u("2025-09-05T19:59")):
        assert bar_start(t, Interval.W1, NY) == tuesday_open
        assert bar_start(t, Interval.MN1, NY) == tuesday_open
    assert bar_end(tuesday_open, Interval.W1, NY) == u("2025-09-05T20:00")
    assert bar_starts_between(u("2025-08-25T00:00"), u("2025-09-08T00:00"), Interval.W1, NY) == \
        [u("2025-08-25T13:30"), tuesday_open]
    assert bar_starts_between(u("2025-08-01T00:00"), u("2025-10-01T00:00"), Interval.MN1, NY) == \
        [u("2025-08-01T13:30"), tuesday_open]
    # the Friday before: its 1d, 1h ... bars are followed by Tuesday's, nothing on Monday
    for interval in (Interval.M1, Interval.H1, Interval.H4, Interval.D1, Interval.W1, Interval.MN1):
        assert next_bar_start(u("2025-08-29T19:59:30"), interval, NY) == tuesday_open
    gap = closed_span_epoch(u("2025-09-01T15:00").timestamp(), NY)
    assert gap == (u("2025-08-29T20:00").timestamp(), tuesday_open.timestamp())


def test_a_month_whose_first_weekday_is_a_holiday_starts_at_its_first_session():
    # 2026-01-01 is a Thursday holiday: January starts Friday the 2nd; the week of Dec 29 ends
    # on Jan 2 and its bar spans the holiday.
    friday = u("2026-01-02T14:30")
    assert bar_start(u("2026-01-30T20:59"), Interval.MN1, NY) == friday
    assert bar_start(friday, Interval.W1, NY) == u("2025-12-29T14:30")
    assert bar_end(u("2025-12-29T14:30"), Interval.W1, NY) == u("2026-01-02T21:00")
    assert bar_end(u("2025-12-01T14:30"), Interval.MN1, NY) == u("2025-12-31T21:00")
    assert bar_starts_between(u("2025-12-31T21:00"), u("2026-01-03T00:00"), Interval.D1, NY) == [friday]


# --- early closes -----------------------------------------------------------------------------


def test_early_close_cuts_intraday_daily_and_weekly_bars():
    friday = u("2025-11-28T14:30")  # the day after Thanksgiving, 09:30-13:00 EST
    assert bar_end(friday, Interval.D1, NY) == u("2025-11-28T18:00")
    hours = bar_starts_between(friday, u("2025-11-29T00:00"), Interval.H1, NY)
    assert [h.strftime("%H:%M") for h in hours] == ["14:30", "15:30", "16:30", "17:30"]
    assert bar_end(u("2025-11-28T17:30"), Interval.H1, NY) == u("2025-11-28T18:00")
    assert bar_end(friday, Interval.H4, NY) == u("2025-11-28T18:00")
    assert bar_end(u("2025-11-28T17:45"), Interval.M45, NY) == u("2025-11-28T18:00")
    assert bar_start(u("2025-11-28T18:00"), Interval.M1, NY) is None  # 13:00: closed
    assert len(bar_starts_between(friday, u("2025-11-29T00:00"), Interval.M1, NY)) == 210
    # the week of Nov 24 has its holiday Thursday and ends at Friday's early close
    assert bar_end(u("2025-11-24T14:30"), Interval.W1, NY) == u("2025-11-28T18:00")
    # December ends on a full day; Christmas Eve is short
    assert bar_end(u("2025-12-24T14:30"), Interval.D1, NY) == u("2025-12-24T18:00")
    assert bar_end(u("2025-12-01T14:30"), Interval.MN1, NY) == u("2025-12-31T21:00")


def test_early_close_follows_dst_and_the_overnight_session_keeps_its_previous_evening():
    # July 3 (EDT): 13:00 New York is 17:00 UTC; Nov 28 (EST): 18:00 UTC.
    assert bar_end(u("2025-07-03T13:30"), Interval.D1, NY) == u("2025-07-03T17:00")
    assert bar_end(u("2025-07-03T13:30"), Interval.W1, NY) == u("2025-07-03T17:00")  # Friday the 4th is closed
    assert bar_start(u("2026-03-09T13:30"), Interval.D1, NY) == u("2026-03-09T13:30")  # after spring forward
    assert bar_start(u("2026-03-06T14:30"), Interval.D1, NY) == u("2026-03-06T14:30")
    # CME: Labor Day closed, so Tuesday's session opens Monday 17:00 CDT as usual; Thanksgiving
    # Thursday closed; Friday's correction 1700-1200 opens Thursday 17:00 and ends 12:00 CST.
    assert bar_start(u("2025-09-01T16:00"), Interval.M1, CME) is None
    assert bar_start(u("2025-09-01T22:00"), Interval.D1, CME) == u("2025-09-01T22:00")
    assert bar_start(u("2025-09-02T12:00"), Interval.W1, CME) == u("2025-09-01T22:00")
    assert bar_start(u("2025-11-27T12:00"), Interval.M1, CME) is None
    assert bar_start(u("2025-11-27T23:00"), Interval.D1, CME) == u("2025-11-27T23:00")
    assert bar_end(u("2025-11-27T23:00"), Interval.D1, CME) == u("2025-11-28T18:00")


def test_correction_opening_days_early_and_a_corrected_weekend_day():
    # Charting Library example: 2018-11-13 trades 19:00-23:50 four days earlier (Friday the 9th)
    # and 10:00-18:45; 2018-11-14 trades 10:00-14:00. Monday the 12th is a holiday here.
    cal = build_calendar(parse_holidays("20181112"),
                         parse_corrections("1900F4-2350F4,1000-1845:20181113;1000-1400:20181114"))
    moex = Session.parse("1000-1845", "Europe/Moscow", cal)  # UTC+3, no DST
    assert bar_start(u("2018-11-09T17:00"), Interval.D1, moex) == u("2018-11-09T16:00")  # Fri 19:00 -> Tue's bar
    assert bar_start(u("2018-11-09T12:00"), Interval.D1, moex) == u("2018-11-09T07:00")  # Friday's own
    assert bar_end(u("2018-11-09T16:00"), Interval.D1, moex) == u("2018-11-13T15:45")
    assert bar_end(u("2018-11-14T07:00"), Interval.D1, moex) == u("2018-11-14T11:00")
    days = bar_starts_between(u("2018-11-05T00:00"), u("2018-11-17T00:00"), Interval.D1, moex)
    assert days == sorted(days) and u("2018-11-09T16:00") in days and len(days) == 9
    # that evening's hours follow its own 19:00 open and stop at 23:50 Moscow (20:50 UTC)
    assert bar_start(u("2018-11-09T20:49"), Interval.H1, moex) == u("2018-11-09T20:00")
    assert bar_end(u("2018-11-09T20:00"), Interval.H1, moex) == u("2018-11-09T20:50")
    assert bar_start(u("2018-11-09T20:50"), Interval.M1, moex) is None
    assert next_bar_start(u("2018-11-09T15:44"), Interval.D1, moex) == u("2018-11-09T16:00")
    # the week of Nov 12 starts at its first session: Tuesday's, which opens on Friday evening
    assert bar_start(u("2018-11-14T08:00"), Interval.W1, moex) == u("2018-11-09T16:00")
    saturday = Session.parse("0930-1600", "America/New_York",
                             build_calendar(corrections=parse_corrections("1000-1200:20250906")))
    assert bar_start(u("2025-09-06T14:30"), Interval.D1, saturday) == u("2025-09-06T14:00")
    assert bar_end(u("2025-09-01T13:30"), Interval.W1, saturday) == u("2025-09-06T16:00")


def test_history_closure_outside_the_holiday_list():
    listed = parse_holidays("20181122,20181225")
    history = CalendarHistory(date(2018, 11, 1), date(2018, 12, 31), closed=(date(2018, 11, 22), date(2018, 12, 5),
                                                                              date(2018, 12, 25)))
    session = Session.parse("0930-1600", "America/New_York", build_calendar(listed, (), history))
    assert bar_start(u("2018-12-05T15:00"), Interval.D1, session) is None
    assert bar_start(u("2018-12-03T15:00"), Interval.W1, session) == u("2018-12-03T14:30")


# --- the Session API ------------------------------------------------------------------------------


def test_calendar_is_part_of_the_session_identity():
    same = Session.parse("0930-1600", "America/New_York", build_calendar(
        parse_holidays("20250704,20250901,20251127,20251225,20260101,20260119,20260403,20260703,20250109"),
        parse_corrections("0930-1300:20251224,20251128,20250703")))
    assert same == NY and hash(same) == hash(NY)
    assert NY != PLAIN_NY and PLAIN_NY == Session("America/New_York", "0930-1600", EMPTY_CALENDAR)
    assert NY.without_calendar() == PLAIN_NY and not NY.is_24x7
    assert Session.parse("24x7", "Etc/UTC", build_calendar(parse_holidays("20251225"))).is_24x7 is False
    with pytest.raises(InvalidSessionError, match="'20250901'"):
        Session("America/New_York", "0930-1600", "20250901")  # type: ignore[arg-type]


def test_24x7_with_a_closed_day_leaves_the_arithmetic_path():
    closed = Session.parse("24x7", "Etc/UTC", build_calendar(parse_holidays("20251225")))
    days = bar_starts_between(u("2025-12-24T00:00"), u("2025-12-27T00:00"), Interval.D1, closed)
    assert days == [u("2025-12-24T00:00"), u("2025-12-26T00:00")]
    assert bar_start(u("2025-12-25T12:00"), Interval.H1, closed) is None
    assert bar_start(u("2025-12-25T12:00"), Interval.H1, SESSION_24X7) == u("2025-12-25T12:00")
    assert bar_bounds_epoch(u("2025-12-26T00:00").timestamp(), Interval.W1, closed) == \
        (u("2025-12-22T00:00").timestamp(), u("2025-12-29T00:00").timestamp())


# --- properties -------------------------------------------------------------------------------

_SESSIONS = [NY, CME, Session.parse("24x7", "Etc/UTC", build_calendar(parse_holidays("20251225,20260101")))]
_INSTANTS = st.datetimes(min_value=datetime(2025, 6, 1), max_value=datetime(2026, 2, 28), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(t=_INSTANTS, interval=st.sampled_from(ALL_INTERVALS), session=st.sampled_from(_SESSIONS))
def test_alignment_properties_with_a_calendar(t, interval, session):
    start = bar_start(t, interval, session)
    if start is None:
        assert not session.is_open(t)
        nxt = next_bar_start(t, interval, session)
        assert nxt > t and session.is_open(nxt)
        assert bar_starts_between(t, nxt, interval, session) == []
        return
    end = bar_end(start, interval, session)
    assert start <= t < end
    assert bar_start(start, interval, session) == start
    assert bar_starts_between(start, end, interval, session) == [start]
    nxt = next_bar_start(start, interval, session)
    assert nxt >= end and bar_start(nxt, interval, session) == nxt
    assert bar_starts_between(end, nxt, interval, session) == []


def grouped(ticks, interval, session):
    groups: dict = {}
    for t, price, volume in ticks:
        start = bar_start(datetime.fromtimestamp(t, UTC), interval, session)
        if start is not None:
            groups.setdefault(start, []).append((price, volume))
    return [(s, g[0][0], max(p for p, _ in g), min(p for p, _ in g), g[-1][0], sum(v for _, v in g))
            for s, g in sorted(groups.items())]


@settings(max_examples=60, deadline=None)
@given(
    session=st.sampled_from(_SESSIONS),
    start=st.datetimes(min_value=datetime(2025, 8, 25), max_value=datetime(2026, 1, 10), timezones=st.just(UTC)),
    gaps=st.lists(st.floats(min_value=0.0, max_value=30_000.0), min_size=1, max_size=80),
    prices=st.lists(st.floats(min_value=1.0, max_value=1000.0), min_size=80, max_size=80),
)
def test_aggregation_with_a_calendar_equals_grouping_by_bar_start(session, start, gaps, prices):
    t = start.timestamp()
    ticks = []
    for gap, price in zip(gaps, prices):
        t += gap
        ticks.append((t, price, 1.5))
    agg = BarAggregator("TEST:X", session)
    bars = []
    for tick in ticks:
        bars += agg.on_tick_values(*tick)
    bars += agg.flush()
    for interval in ALL_INTERVALS:
        got = [(b.time, b.open, b.high, b.low, b.close, b.volume) for b in bars if b.interval is interval]
        assert got == grouped(ticks, interval, session), interval


def test_aggregator_over_a_holiday_week_and_an_early_close():
    # Ticks every 7 s around the clock through Thanksgiving week 2025 (closed Thursday, 13:00
    # close on Friday): the bars are checkable by hand.
    rng = random.Random(3)
    t, stop = u("2025-11-24T00:00").timestamp(), u("2025-12-01T00:00").timestamp()
    ticks = []
    while t < stop:
        ticks.append((t, round(100 + rng.random(), 2), 1.0))
        t += 7
    agg = BarAggregator("TEST:X", NY)
    bars = []
    for tick in ticks:
        bars += agg.on_tick_values(*tick)
    bars += agg.flush()
    days = [b.time for b in bars if b.interval is Interval.D1]
    assert days == [u("2025-11-24T14:30"), u("2025-11-25T14:30"), u("2025-11-26T14:30"), u("2025-11-28T14:30")]
    [week] = [b for b in bars if b.interval is Interval.W1]
    assert week.time == u("2025-11-24T14:30")
    friday_hours = [b.time.strftime("%H:%M") for b in bars
                    if b.interval is Interval.H1 and b.time.date() == date(2025, 11, 28)]
    assert friday_hours == ["14:30", "15:30", "16:30", "17:30"]
    in_session = sum(1 for tt, _, _ in ticks if NY.is_open(datetime.fromtimestamp(tt, UTC)))
    assert agg.out_of_session_ticks == len(ticks) - in_session
    # the last tick of the week is Friday's before 13:00 New York
    last_in = max(tt for tt, _, _ in ticks if NY.is_open(datetime.fromtimestamp(tt, UTC)))
    assert math.floor(last_in) < u("2025-11-28T18:00").timestamp()
    assert week.close == next(p for tt, p, _ in ticks if tt == last_in)
