"""Bar alignment: 24x7 (crypto) and session-based (US equities) symbols at all 13 intervals.

Expected values are worked out from the rules in docs/alignment.md (and, for 24x7, checked
against pandas as an independent oracle in test_alignment_oracle below).
"""

import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pocketquant_pipelines.errors import InvalidInputError, InvalidSessionError
from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval
from pocketquant_pipelines.market.sessions import (
    SESSION_24X7,
    Session,
    bar_end,
    bar_start,
    bar_starts_between,
    next_bar_start,
)

NY = Session.parse("0930-1600", "America/New_York")
US = timedelta(microseconds=1)


def u(text: str) -> datetime:
    """ISO text (UTC) -> aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- 24x7 ------------------------------------------------------------------------------------

# 2024-02-29 (a leap day, Thursday) 23:59:59.999999 UTC: the last microsecond of many buckets.
CRYPTO_T = "2024-02-29T23:59:59.999999"
CRYPTO_EXPECTED = {
    Interval.M1: ("2024-02-29T23:59", "2024-03-01T00:00"),
    Interval.M3: ("2024-02-29T23:57", "2024-03-01T00:00"),
    Interval.M5: ("2024-02-29T23:55", "2024-03-01T00:00"),
    Interval.M15: ("2024-02-29T23:45", "2024-03-01T00:00"),
    Interval.M30: ("2024-02-29T23:30", "2024-03-01T00:00"),
    Interval.M45: ("2024-02-29T23:15", "2024-03-01T00:00"),  # 1440/45 = 32 buckets a day
    Interval.H1: ("2024-02-29T23:00", "2024-03-01T00:00"),
    Interval.H2: ("2024-02-29T22:00", "2024-03-01T00:00"),
    Interval.H3: ("2024-02-29T21:00", "2024-03-01T00:00"),
    Interval.H4: ("2024-02-29T20:00", "2024-03-01T00:00"),
    Interval.D1: ("2024-02-29T00:00", "2024-03-01T00:00"),
    Interval.W1: ("2024-02-26T00:00", "2024-03-04T00:00"),  # Monday-based week
    Interval.MN1: ("2024-02-01T00:00", "2024-03-01T00:00"),
}


@pytest.mark.parametrize("interval", ALL_INTERVALS, ids=str)
def test_24x7_every_interval_last_microsecond_and_boundary(interval):
    start, end = (u(x) for x in CRYPTO_EXPECTED[interval])
    t = u(CRYPTO_T)
    assert bar_start(t, interval) == start
    assert bar_end(start, interval) == end
    # The next microsecond is exactly the boundary: a new bar at every interval.
    assert bar_start(t + US, interval) == (end if end == t + US else start)
    assert bar_start(end, interval) == end
    assert bar_start(end - US, interval) == start


@pytest.mark.parametrize(
    "t, interval, start, end",
    [
        # Year end: the week of Monday 2024-12-30 contains 2025-01-01.
        ("2025-01-01T12:00", Interval.W1, "2024-12-30T00:00", "2025-01-06T00:00"),
        ("2025-01-01T12:00", Interval.MN1, "2025-01-01T00:00", "2025-02-01T00:00"),
        ("2024-12-31T23:59:59.999999", Interval.MN1, "2024-12-01T00:00", "2025-01-01T00:00"),
        ("2024-12-31T23:59:59.999999", Interval.D1, "2024-12-31T00:00", "2025-01-01T00:00"),
        # Week straddling a month end (Mon 2024-09-30 .. Sun 2024-10-06).
        ("2024-10-06T23:59:59", Interval.W1, "2024-09-30T00:00", "2024-10-07T00:00"),
        ("2024-10-06T23:59:59", Interval.MN1, "2024-10-01T00:00", "2024-11-01T00:00"),
        # Sunday belongs to the week that started the Monday before; Monday starts a new one.
        ("2024-06-09T10:00", Interval.W1, "2024-06-03T00:00", "2024-06-10T00:00"),
        ("2024-06-10T00:00", Interval.W1, "2024-06-10T00:00", "2024-06-17T00:00"),
        # 45m grid restarts at UTC midnight: 23:15-24:00 is a full 45-minute bucket.
        ("2024-06-09T23:20", Interval.M45, "2024-06-09T23:15", "2024-06-10T00:00"),
        ("2024-06-10T00:44:59", Interval.M45, "2024-06-10T00:00", "2024-06-10T00:45"),
        # DST dates mean nothing in UTC.
        ("2024-03-10T07:30", Interval.H3, "2024-03-10T06:00", "2024-03-10T09:00"),
        ("2024-11-03T06:30", Interval.D1, "2024-11-03T00:00", "2024-11-04T00:00"),
        # February of a non-leap year.
        ("2023-02-28T12:00", Interval.MN1, "2023-02-01T00:00", "2023-03-01T00:00"),
    ],
)
def test_24x7_calendar_edges(t, interval, start, end):
    assert bar_start(u(t), interval, SESSION_24X7) == u(start)
    assert bar_end(u(start), interval, SESSION_24X7) == u(end)


def test_24x7_is_always_open_and_produces_every_bar():
    assert SESSION_24X7.is_24x7
    assert SESSION_24X7.is_open(u("2024-06-08T03:00"))  # a Saturday
    day = u("2024-06-08T00:00")
    nxt = day + timedelta(days=1)
    assert len(bar_starts_between(day, nxt, Interval.M1)) == 1440
    assert len(bar_starts_between(day, nxt, Interval.M45)) == 32
    assert bar_starts_between(day, nxt, Interval.H4) == [day + timedelta(hours=4 * k) for k in range(6)]
    assert len(bar_starts_between(u("2024-06-03T00:00"), u("2024-06-10T00:00"), Interval.D1)) == 7
    assert bar_starts_between(u("2024-01-01T00:00"), u("2025-01-01T00:00"), Interval.MN1) == [
        datetime(2024, m, 1, tzinfo=UTC) for m in range(1, 13)
    ]
    # Half-open range: the start is included only on a boundary, the end never.
    assert bar_starts_between(u("2024-06-08T00:00:01"), u("2024-06-08T03:00"), Interval.H1) == [
        u("2024-06-08T01:00"), u("2024-06-08T02:00")
    ]
    assert bar_starts_between(nxt, day, Interval.H1) == []


# --- America/New_York 0930-1600 ---------------------------------------------------------------

# Summer (EDT, UTC-4): Tuesday 2024-07-16 15:59:59.999999 local = 19:59:59.999999 UTC.
NY_SUMMER_T = "2024-07-16T19:59:59.999999"
NY_SUMMER_EXPECTED = {
    Interval.M1: ("2024-07-16T19:59", "2024-07-16T20:00"),
    Interval.M3: ("2024-07-16T19:57", "2024-07-16T20:00"),
    Interval.M5: ("2024-07-16T19:55", "2024-07-16T20:00"),
    Interval.M15: ("2024-07-16T19:45", "2024-07-16T20:00"),
    Interval.M30: ("2024-07-16T19:30", "2024-07-16T20:00"),
    # 09:30 + 8*45m = 15:30 local; cut short at the 16:00 close.
    Interval.M45: ("2024-07-16T19:30", "2024-07-16T20:00"),
    Interval.H1: ("2024-07-16T19:30", "2024-07-16T20:00"),
    Interval.H2: ("2024-07-16T19:30", "2024-07-16T20:00"),
    Interval.H3: ("2024-07-16T19:30", "2024-07-16T20:00"),  # 09:30, 12:30, 15:30 local
    Interval.H4: ("2024-07-16T17:30", "2024-07-16T20:00"),
    Interval.D1: ("2024-07-16T13:30", "2024-07-16T20:00"),
    Interval.W1: ("2024-07-15T13:30", "2024-07-19T20:00"),
    Interval.MN1: ("2024-07-01T13:30", "2024-07-31T20:00"),
}


@pytest.mark.parametrize("interval", ALL_INTERVALS, ids=str)
def test_ny_every_interval_at_the_close(interval):
    start, end = (u(x) for x in NY_SUMMER_EXPECTED[interval])
    t = u(NY_SUMMER_T)
    assert bar_start(t, interval, NY) == start
    assert bar_end(start, interval, NY) == end
    assert bar_start(start, interval, NY) == start
    # The close itself is outside the session.
    assert bar_start(t + US, interval, NY) is None
    assert not NY.is_open(t + US)


@pytest.mark.parametrize("interval", ALL_INTERVALS, ids=str)
def test_ny_open_boundary_and_microsecond_before(interval):
    open_ = u("2024-07-16T13:30")  # Tuesday 09:30 EDT
    expected = {Interval.W1: u("2024-07-15T13:30"), Interval.MN1: u("2024-07-01T13:30")}.get(interval, open_)
    assert bar_start(open_, interval, NY) == expected
    assert bar_start(open_ - US, interval, NY) is None  # 09:29:59.999999 local: pre-market


@pytest.mark.parametrize("interval", [i for i in ALL_INTERVALS if i.is_intraday], ids=str)
def test_ny_intraday_boundaries_inside_the_day(interval):
    day = u("2024-07-16T00:00")
    starts = bar_starts_between(day, day + timedelta(days=1), interval, NY)
    assert starts[0] == u("2024-07-16T13:30")
    for previous, boundary in zip(starts, starts[1:]):
        assert bar_start(boundary, interval, NY) == boundary
        assert bar_start(boundary - US, interval, NY) == previous
        assert bar_end(previous, interval, NY) == boundary
    assert bar_end(starts[-1], interval, NY) == u("2024-07-16T20:00")
    assert len(starts) == -(-390 // interval.minutes)  # ceil(6.5 h / length)


@pytest.mark.parametrize(
    "day, open_utc, close_utc",
    [
        # 2024-03-10 (Sunday) US clocks spring forward: Friday EST, Monday EDT.
        ("2024-03-08", "2024-03-08T14:30", "2024-03-08T21:00"),
        ("2024-03-11", "2024-03-11T13:30", "2024-03-11T20:00"),
        # 2024-11-03 (Sunday) clocks fall back: Friday EDT, Monday EST.
        ("2024-11-01", "2024-11-01T13:30", "2024-11-01T20:00"),
        ("2024-11-04", "2024-11-04T14:30", "2024-11-04T21:00"),
    ],
)
def test_ny_daily_bar_follows_dst(day, open_utc, close_utc):
    noon = u(f"{day}T16:00")  # 12:00 local in EDT, 11:00 in EST: inside the session either way
    assert bar_start(noon, Interval.D1, NY) == u(open_utc)
    assert bar_end(u(open_utc), Interval.D1, NY) == u(close_utc)
    assert bar_start(u(open_utc) + timedelta(minutes=130), Interval.H1, NY) == u(open_utc) + timedelta(hours=2)
    hours = bar_starts_between(u(f"{day}T00:00"), u(f"{day}T23:59"), Interval.H1, NY)
    assert hours == [u(open_utc) + timedelta(hours=k) for k in range(7)]


def test_ny_week_spanning_dst_change_starts_monday_open_and_ends_friday_close():
    # Week of Mon 2024-11-04 (EST): Monday 14:30 UTC .. Friday 21:00 UTC.
    assert bar_start(u("2024-11-08T18:00"), Interval.W1, NY) == u("2024-11-04T14:30")
    # Week of Mon 2024-10-28 (EDT) .. Fri 2024-11-01 (EDT); the DST change is on the Sunday.
    assert bar_end(u("2024-10-28T13:30"), Interval.W1, NY) == u("2024-11-01T20:00")
    # March: week of Mon 2024-03-04 is all EST.
    assert bar_start(u("2024-03-08T20:59"), Interval.W1, NY) == u("2024-03-04T14:30")
    assert bar_start(u("2024-03-11T13:30"), Interval.W1, NY) == u("2024-03-11T13:30")


@pytest.mark.parametrize(
    "t, interval, start, end",
    [
        # Week of Mon 2024-09-30 straddles the month end; its bar starts Monday.
        ("2024-10-02T15:00", Interval.W1, "2024-09-30T13:30", "2024-10-04T20:00"),
        ("2024-10-02T15:00", Interval.MN1, "2024-10-01T13:30", "2024-10-31T20:00"),
        # Week of Mon 2024-12-30 contains 2025-01-01 (holidays are not modelled: Jan 1 trades).
        ("2025-01-02T15:00", Interval.W1, "2024-12-30T14:30", "2025-01-03T21:00"),
        ("2025-01-02T15:00", Interval.MN1, "2025-01-01T14:30", "2025-01-31T21:00"),
        ("2024-12-31T20:59", Interval.MN1, "2024-12-02T14:30", "2024-12-31T21:00"),
        # June 2024 starts on a Saturday: the month's first session is Monday the 3rd, and the
        # last is Friday the 28th.
        ("2024-06-10T15:00", Interval.MN1, "2024-06-03T13:30", "2024-06-28T20:00"),
        # March 2024 begins in EST and ends in EDT.
        ("2024-03-29T19:00", Interval.MN1, "2024-03-01T14:30", "2024-03-29T20:00"),
    ],
)
def test_ny_weeks_and_months_at_calendar_edges(t, interval, start, end):
    assert bar_start(u(t), interval, NY) == u(start)
    assert bar_end(u(start), interval, NY) == u(end)


@pytest.mark.parametrize(
    "t",
    [
        "2024-07-13T15:00",  # Saturday during trading hours
        "2024-07-14T15:00",  # Sunday
        "2024-07-16T13:29",  # 09:29 local, pre-market
        "2024-07-16T20:00",  # 16:00 local, the close (exclusive)
        "2024-07-16T23:00",  # evening
        "2024-03-08T14:29",  # 09:29 EST: the same UTC time is open after the DST change
    ],
)
@pytest.mark.parametrize("interval", ALL_INTERVALS, ids=str)
def test_ny_outside_session_has_no_bar(t, interval):
    assert bar_start(u(t), interval, NY) is None
    assert not NY.is_open(u(t))
    with pytest.raises(InvalidInputError, match="outside the session"):
        bar_end(u(t), interval, NY)


def test_ny_bar_starts_between_counts():
    monday, saturday = u("2024-07-15T00:00"), u("2024-07-20T00:00")
    assert len(bar_starts_between(monday, monday + timedelta(days=1), Interval.M1, NY)) == 390
    assert len(bar_starts_between(monday, monday + timedelta(days=1), Interval.M45, NY)) == 9
    assert [t.strftime("%H:%M") for t in bar_starts_between(monday, saturday, Interval.H4, NY)][:2] == [
        "13:30", "17:30"
    ]
    assert len(bar_starts_between(monday, saturday, Interval.D1, NY)) == 5
    # A weekend has no bars at all, at any interval.
    for interval in ALL_INTERVALS:
        assert bar_starts_between(saturday, saturday + timedelta(days=2), interval, NY) == []
    assert bar_starts_between(u("2024-07-01T00:00"), u("2024-08-01T00:00"), Interval.W1, NY) == [
        u("2024-07-01T13:30"), u("2024-07-08T13:30"), u("2024-07-15T13:30"), u("2024-07-22T13:30"),
        u("2024-07-29T13:30"),
    ]
    months = bar_starts_between(u("2024-01-01T00:00"), u("2025-01-01T00:00"), Interval.MN1, NY)
    assert [t.date().isoformat() for t in months] == [
        "2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01", "2024-05-01", "2024-06-03",
        "2024-07-01", "2024-08-01", "2024-09-02", "2024-10-01", "2024-11-01", "2024-12-02",
    ]
    # Every start is aligned, and the starts are exactly the bar_start values of the minutes.
    minutes = bar_starts_between(monday, saturday, Interval.M1, NY)
    for interval in ALL_INTERVALS:
        expected = sorted({bar_start(m, interval, NY) for m in minutes})
        # The July bar started on the 1st, before the range, so it is not listed.
        expected = [s for s in expected if s >= monday]
        assert bar_starts_between(monday, saturday, interval, NY) == expected


def test_next_bar_start():
    assert next_bar_start(u("2024-07-16T19:30"), Interval.H1, NY) == u("2024-07-17T13:30")
    assert next_bar_start(u("2024-07-16T19:45:10"), Interval.M5, NY) == u("2024-07-16T19:50")
    assert next_bar_start(u("2024-07-19T13:30"), Interval.D1, NY) == u("2024-07-22T13:30")
    assert next_bar_start(u("2024-07-13T12:00"), Interval.M1, NY) == u("2024-07-15T13:30")  # Sat
    assert next_bar_start(u("2024-11-01T13:30"), Interval.D1, NY) == u("2024-11-04T14:30")  # DST
    assert next_bar_start(u("2024-06-28T13:30"), Interval.MN1, NY) == u("2024-07-01T13:30")
    assert next_bar_start(u("2024-12-30T00:00"), Interval.W1) == u("2025-01-06T00:00")
    assert next_bar_start(u("2024-02-29T23:15"), Interval.M45) == u("2024-03-01T00:00")


@pytest.mark.parametrize("call", [
    lambda t: bar_start(t, Interval.H1),
    lambda t: bar_start(t, Interval.H1, NY),
    lambda t: bar_end(t, Interval.D1, NY),
    lambda t: bar_starts_between(t, t, Interval.D1, NY),
    lambda t: next_bar_start(t, Interval.D1, NY),
    lambda t: NY.is_open(t),
])
def test_naive_datetimes_are_rejected(call):
    with pytest.raises(InvalidInputError, match="2024-07-16T15:00:00"):
        call(datetime(2024, 7, 16, 15, 0))


def test_non_utc_aware_input_is_converted():
    from zoneinfo import ZoneInfo

    local = datetime(2024, 7, 16, 10, 15, tzinfo=ZoneInfo("America/New_York"))
    assert bar_start(local, Interval.H1, NY) == u("2024-07-16T13:30")
    assert bar_start(local, Interval.H1, NY).tzinfo is UTC


def test_interval_names_are_accepted_as_strings():
    assert bar_start(u("2024-07-16T15:00"), "1h", NY) == u("2024-07-16T14:30")
    assert bar_start(u("2024-07-16T15:00"), "240") == u("2024-07-16T12:00")


# --- Other sessions ---------------------------------------------------------------------------


def test_session_parse_forms():
    assert Session.parse("24x7", "Etc/UTC") == SESSION_24X7
    assert Session.parse("2;0000-0000:1234567", "Etc/UTC").is_24x7
    assert not NY.is_24x7
    sundays = Session.parse("0930-1600:1", "America/New_York")  # TradingView day 1 = Sunday
    assert sundays.is_open(u("2024-07-14T15:00")) and not sundays.is_open(u("2024-07-15T15:00"))
    saturdays = Session.parse("0930-1600:7", "America/New_York")
    assert saturdays.is_open(u("2024-07-13T15:00"))
    explicit = Session.parse("0930-1600:23456", "America/New_York")
    assert bar_starts_between(u("2024-07-13T00:00"), u("2024-07-20T00:00"), Interval.D1, explicit) == \
        bar_starts_between(u("2024-07-13T00:00"), u("2024-07-20T00:00"), Interval.D1, NY)
    # Per-day sessions joined by '|': a short Friday.
    short_friday = Session.parse("0930-1600:2345|0930-1300:6", "America/New_York")
    assert bar_end(u("2024-07-19T13:30"), Interval.D1, short_friday) == u("2024-07-19T17:00")
    assert bar_end(u("2024-07-15T13:30"), Interval.W1, short_friday) == u("2024-07-19T17:00")


@pytest.mark.parametrize("spec, timezone, needle", [
    ("", "Etc/UTC", "''"),
    ("0930", "America/New_York", "'0930'"),
    ("0930-1600:89", "America/New_York", "'0930-1600:89'"),
    ("0930-1600:", "America/New_York", "'0930-1600:'"),
    ("2500-1600", "America/New_York", "'2500-1600'"),
    ("0960-1600", "America/New_York", "'0960-1600'"),
    ("0930-1600,1000-1100", "America/New_York", "overlap"),
    ("x;0930-1600", "America/New_York", "'x;0930-1600'"),
    ("24x5", "Etc/UTC", "'24x5'"),
    (None, "Etc/UTC", "None"),
    ("0930-1600", "America/Nowhere", "'America/Nowhere'"),
    ("0930-1600", "", "''"),
    ("0930-1600", None, "None"),
    ("0930-1600", "../etc/passwd", "'../etc/passwd'"),
])
def test_session_parse_rejects_bad_input_naming_it(spec, timezone, needle):
    with pytest.raises(InvalidSessionError) as info:
        Session.parse(spec, timezone)
    assert needle in str(info.value)
    assert isinstance(info.value, InvalidInputError)


def test_extended_hours_session_daily_from_first_open_intraday_per_range():
    ext = Session.parse("0400-0930,0930-1600:23456", "America/New_York")
    assert bar_start(u("2024-07-16T19:00"), Interval.D1, ext) == u("2024-07-16T08:00")  # 04:00 EDT
    assert bar_end(u("2024-07-16T08:00"), Interval.D1, ext) == u("2024-07-16T20:00")
    # Each range anchors its own grid, so regular-hours buckets keep their 09:30 keys.
    assert bar_start(u("2024-07-16T14:00"), Interval.H1, ext) == u("2024-07-16T13:30")
    assert bar_start(u("2024-07-16T13:15"), Interval.H1, ext) == u("2024-07-16T13:00")
    assert bar_end(u("2024-07-16T13:00"), Interval.H1, ext) == u("2024-07-16T13:30")
    hours = bar_starts_between(u("2024-07-16T00:00"), u("2024-07-17T00:00"), Interval.H1, ext)
    assert [h.strftime("%H:%M") for h in hours] == [
        "08:00", "09:00", "10:00", "11:00", "12:00", "13:00",
        "13:30", "14:30", "15:30", "16:30", "17:30", "18:30", "19:30",
    ]


def test_lunch_break_session():
    hk = Session.parse("0930-1200,1300-1600", "Asia/Hong_Kong")  # UTC+8, no DST
    assert bar_start(u("2024-07-16T03:45"), Interval.H1, hk) == u("2024-07-16T03:30")
    assert bar_end(u("2024-07-16T03:30"), Interval.H1, hk) == u("2024-07-16T04:00")  # 12:00 local
    assert bar_start(u("2024-07-16T04:30"), Interval.H1, hk) is None  # lunch
    assert bar_start(u("2024-07-16T05:10"), Interval.H1, hk) == u("2024-07-16T05:00")
    assert bar_start(u("2024-07-16T05:10"), Interval.D1, hk) == u("2024-07-16T01:30")


def test_overnight_futures_session():
    cme = Session.parse("1700-1600:23456", "America/Chicago")
    # Monday's session opens Sunday 17:00 CDT = 22:00 UTC; the daily bar starts there.
    sunday_evening = u("2024-07-14T23:10")
    assert bar_start(sunday_evening, Interval.D1, cme) == u("2024-07-14T22:00")
    assert bar_start(sunday_evening, Interval.W1, cme) == u("2024-07-14T22:00")
    assert bar_start(sunday_evening, Interval.H1, cme) == u("2024-07-14T23:00")
    assert bar_end(u("2024-07-14T22:00"), Interval.D1, cme) == u("2024-07-15T21:00")
    # The daily maintenance break 16:00-17:00 and Friday evening are closed.
    assert bar_start(u("2024-07-15T21:30"), Interval.M1, cme) is None
    assert bar_start(u("2024-07-19T22:30"), Interval.M1, cme) is None
    assert bar_start(u("2024-07-13T12:00"), Interval.D1, cme) is None  # Saturday
    # Tuesday's session opens Monday 17:00.
    assert bar_start(u("2024-07-15T22:00"), Interval.D1, cme) == u("2024-07-15T22:00")
    assert bar_end(u("2024-07-14T22:00"), Interval.W1, cme) == u("2024-07-19T21:00")
    days = bar_starts_between(u("2024-07-14T00:00"), u("2024-07-21T00:00"), Interval.D1, cme)
    assert [d.isoformat() for d in days] == [
        f"2024-07-{n}T22:00:00+00:00" for n in (14, 15, 16, 17, 18)
    ]


# --- Oracles and properties -------------------------------------------------------------------

_PANDAS_FLOOR = {
    Interval.M1: "1min", Interval.M3: "3min", Interval.M5: "5min", Interval.M15: "15min",
    Interval.M30: "30min", Interval.M45: "45min", Interval.H1: "1h", Interval.H2: "2h",
    Interval.H3: "3h", Interval.H4: "4h", Interval.D1: "1D",
}


def _pandas_start(ts: pd.Timestamp, interval: Interval) -> pd.Timestamp:
    if interval in _PANDAS_FLOOR:
        return ts.floor(_PANDAS_FLOOR[interval])
    naive = ts.tz_localize(None)
    # W-SUN periods run Monday..Sunday, so start_time is the Monday (W-MON would be Tue..Mon).
    freq = "W-SUN" if interval is Interval.W1 else "M"
    return naive.to_period(freq).start_time.tz_localize("UTC")


def _random_instants(n: int, seed: int) -> list[datetime]:
    rng = random.Random(seed)
    lo, hi = u("2019-01-01T00:00").timestamp(), u("2026-12-31T23:59").timestamp()
    out = []
    for _ in range(n):
        t = datetime.fromtimestamp(rng.uniform(lo, hi), UTC).replace(microsecond=rng.randrange(1_000_000))
        out.append(t)
    # Include exact boundaries and the microsecond before them.
    for _ in range(200):
        b = datetime.fromtimestamp(rng.randrange(int(lo), int(hi)) // 2700 * 2700, UTC)
        out += [b, b - US]
    return out


@pytest.mark.parametrize("interval", ALL_INTERVALS, ids=str)
def test_24x7_matches_pandas_oracle(interval):
    for t in _random_instants(2000, seed=7):
        expected = _pandas_start(pd.Timestamp(t), interval).to_pydatetime()
        start = bar_start(t, interval)
        assert start == expected, t
        assert start <= t < bar_end(start, interval)


def test_24x7_arithmetic_path_matches_calendar_path():
    # Reykjavik has been UTC+0 without DST since 1968; its 24x7 session goes through the
    # general trading-day code, SESSION_24X7 through epoch arithmetic. They must agree.
    iceland = Session.parse("24x7", "Atlantic/Reykjavik")
    for t in _random_instants(300, seed=11):
        for interval in ALL_INTERVALS:
            assert bar_start(t, interval, iceland) == bar_start(t, interval), (t, interval)
            start = bar_start(t, interval)
            assert bar_end(start, interval, iceland) == bar_end(start, interval)
    a, b = u("2024-02-27T05:00"), u("2024-03-02T07:00")
    for interval in ALL_INTERVALS:
        assert bar_starts_between(a, b, interval, iceland) == bar_starts_between(a, b, interval)


_INSTANTS = st.datetimes(
    min_value=datetime(2019, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(t=_INSTANTS, interval=st.sampled_from(ALL_INTERVALS),
       session=st.sampled_from([SESSION_24X7, NY, Session.parse("1700-1600:23456", "America/Chicago")]))
def test_alignment_properties(t, interval, session):
    start = bar_start(t, interval, session)
    if start is None:
        assert not session.is_open(t)
        nxt = next_bar_start(t, interval, session)
        assert nxt > t and session.is_open(nxt)
        assert bar_starts_between(t, nxt, interval, session) == []
        return
    assert session.is_open(t)
    end = bar_end(start, interval, session)
    assert start <= t < end
    assert bar_start(start, interval, session) == start  # idempotent
    assert bar_end(t, interval, session) == end  # any instant of the bar gives the same end
    assert bar_starts_between(start, end, interval, session) == [start]
    nxt = next_bar_start(start, interval, session)
    assert nxt >= end and bar_start(nxt, interval, session) == nxt
    assert bar_starts_between(end, nxt, interval, session) == []


def test_real_dxy_session_with_previous_day_open_marker():
    # TVC:DXY's symbol_resolved (captured): "1900-1900:3456|1700F-1900:2", America/New_York.
    # Monday's session opens Sunday 17:00 ("F"), Tuesday-Friday's the evening before at 19:00.
    dxy = Session.parse("1900-1900:3456|1700F-1900:2", "America/New_York")
    assert bar_start(u("2024-07-14T20:59"), Interval.M1, dxy) is None  # Sunday 16:59 EDT
    assert bar_start(u("2024-07-14T21:00"), Interval.W1, dxy) == u("2024-07-14T21:00")
    assert bar_end(u("2024-07-14T21:00"), Interval.D1, dxy) == u("2024-07-15T23:00")  # Mon 19:00
    assert bar_start(u("2024-07-15T23:00"), Interval.D1, dxy) == u("2024-07-15T23:00")
    assert bar_start(u("2024-07-19T22:59"), Interval.D1, dxy) == u("2024-07-18T23:00")
    assert bar_start(u("2024-07-19T23:00"), Interval.D1, dxy) is None  # Friday 19:00: weekend
    assert bar_end(u("2024-07-14T21:00"), Interval.W1, dxy) == u("2024-07-19T23:00")
    days = bar_starts_between(u("2024-07-14T00:00"), u("2024-07-21T00:00"), Interval.D1, dxy)
    assert len(days) == 5 and days[0] == u("2024-07-14T21:00")


@pytest.mark.parametrize("spec", ["0930-1610", "0900-1615", "0900-0930", "24x7", "2;0000-0000:1234567",
                                  "1900-1900:3456|1700F-1900:2"])
def test_every_session_string_seen_in_captures_parses(spec):
    session = Session.parse(spec, "America/New_York")
    week = bar_starts_between(u("2024-07-15T00:00"), u("2024-07-22T00:00"), Interval.D1, session)
    assert 5 <= len(week) <= 7


@pytest.mark.parametrize("spec, timezone, needle", [
    (["0930-1600"], "America/New_York", "['0930-1600']"),
    ("0930-1600", 5, "5"),
    ("0930-1600", "Mars/Base", "'Mars/Base'"),
])
def test_direct_construction_validates_too(spec, timezone, needle):
    with pytest.raises(InvalidSessionError) as info:
        Session(timezone, spec)
    assert needle in str(info.value)
