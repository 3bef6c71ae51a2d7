"""The calendar against TradingView's own bars (tests/tradingview/data/tradingview-frames.jsonl).

SP:SPX: the real ``symbol_resolved`` (record 9) and its real daily history (record 16, 368 bars
2021-12-22..2023-06-09). NASDAQ:AAPL: real daily bars 2018-03..2019-05 (record 35, resolution
"D"); the captures hold no AAPL ``symbol_resolved``, so it gets session 0930-1600 New York, the
US holiday list of SP:SPX's, and what its own daily history says (the one-off closure of
2018-12-05, which that list lacks).
"""

from collections import defaultdict
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from pocketquant_pipelines.market.calendar import (
    build_calendar,
    calendar_from_symbol_info,
    corrections_in_force,
    derive_history,
    parse_corrections,
    parse_holidays,
)
from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval
from pocketquant_pipelines.market.sessions import Session, bar_start, bar_starts_between
from pocketquant_pipelines.market.timeutil import from_epoch
from tests.tradingview.test_real_frames import by_index, wire_frames

NY = ZoneInfo("America/New_York")
US = timedelta(microseconds=1)


def resolved(index: int) -> dict:
    (frame,) = wire_frames(by_index(index))
    assert frame.method == "symbol_resolved"
    return frame.params[2]


def daily_times(index: int, series: str) -> list:
    (frame,) = wire_frames(by_index(index))
    return [from_epoch(bar["v"][0]) for bar in frame.params[1][series]["s"]]


SPX_INFO = resolved(9)
SPX_DAYS = daily_times(16, "sds_7")
AAPL_DAYS = daily_times(35, "s1")


def spx_session() -> Session:
    return Session.parse(SPX_INFO["session"], SPX_INFO["timezone"], calendar_from_symbol_info(SPX_INFO))


def aapl_session(with_history: bool = True) -> Session:
    listed = build_calendar(parse_holidays(SPX_INFO["session_holidays"]))
    history = derive_history([t.timestamp() for t in AAPL_DAYS], "0930-1600", "America/New_York", listed) \
        if with_history else None
    return Session.parse("0930-1600", "America/New_York",
                         build_calendar(parse_holidays(SPX_INFO["session_holidays"]), (), history))


def listed_days(days, session) -> list:
    return bar_starts_between(days[0], days[-1] + US, Interval.D1, session)


def first_bar_per(days, key) -> dict:
    """The first real daily bar of each week/month, by its exchange-local date."""
    out: dict = {}
    for t in days:
        out.setdefault(key(t.astimezone(NY).date()), t)
    return out


def week_of(d):
    return d - timedelta(days=d.weekday())


def month_of(d):
    return d.year, d.month


CASES = {"SP:SPX": (SPX_DAYS, spx_session), "NASDAQ:AAPL": (AAPL_DAYS, aapl_session)}


def test_the_captures_are_what_these_tests_rely_on():
    assert len(SPX_DAYS) == 368 and SPX_DAYS[0].date().isoformat() == "2021-12-22"
    assert SPX_DAYS[-1].date().isoformat() == "2023-06-09"
    assert len(AAPL_DAYS) == 300 and AAPL_DAYS[0].date().isoformat() == "2018-03-13"
    holidays = parse_holidays(SPX_INFO["session_holidays"])
    assert len(holidays) == 226 and "20181205" not in SPX_INFO["session_holidays"]
    assert "corrections" not in SPX_INFO and corrections_in_force(SPX_INFO) == ""


@pytest.mark.parametrize("symbol", CASES)
def test_daily_starts_between_the_first_and_last_real_bar_are_exactly_the_real_ones(symbol):
    days, session = CASES[symbol]
    assert listed_days(days, session()) == days


def test_without_the_calendar_the_listing_has_the_26_phantom_days():
    spx = Session.parse(SPX_INFO["session"], SPX_INFO["timezone"])
    phantom_spx = set(listed_days(SPX_DAYS, spx)) - set(SPX_DAYS)
    assert len(phantom_spx) == 15
    phantom_aapl = set(listed_days(AAPL_DAYS, Session.parse("0930-1600", "America/New_York"))) - set(AAPL_DAYS)
    assert len(phantom_aapl) == 11
    # TradingView's own list closes ten of AAPL's; only the daily history knows the eleventh
    without_history = set(listed_days(AAPL_DAYS, aapl_session(with_history=False))) - set(AAPL_DAYS)
    assert [t.astimezone(NY).date().isoformat() for t in without_history] == ["2018-12-05"]


@pytest.mark.parametrize("symbol", CASES)
@pytest.mark.parametrize("interval, period", [(Interval.W1, week_of), (Interval.MN1, month_of)], ids=["1w", "1M"])
def test_weekly_and_monthly_keys_are_the_first_real_daily_bar_of_the_period(symbol, interval, period):
    days, make = CASES[symbol]
    session = make()
    firsts = first_bar_per(days, period)
    # every real daily bar falls in the bar that starts at its period's first real daily bar;
    # the first period began before the capture (its first session is not in it)
    first_period = period(days[0].astimezone(NY).date())
    for t in days:
        p = period(t.astimezone(NY).date())
        if p != first_period:
            assert bar_start(t, interval, session) == firsts[p], (symbol, interval, t)
    listed = bar_starts_between(days[0], days[-1] + US, interval, session)
    assert listed == [t for p, t in firsts.items() if p != first_period]


def test_without_the_calendar_15_weeks_and_3_months_start_at_a_holiday():
    wrong = defaultdict(int)
    total = defaultdict(int)
    plain = {"SP:SPX": Session.parse(SPX_INFO["session"], SPX_INFO["timezone"]),
             "NASDAQ:AAPL": Session.parse("0930-1600", "America/New_York")}
    for symbol, (days, _) in CASES.items():
        for interval, period in ((Interval.W1, week_of), (Interval.MN1, month_of)):
            # the capture's first week and month began before its first bar: not judged
            for p, first in list(first_bar_per(days, period).items())[1:]:
                total[interval] += 1
                wrong[interval] += bar_start(first, interval, plain[symbol]) != first
    assert (wrong[Interval.W1], total[Interval.W1]) == (15, 138)
    assert (wrong[Interval.MN1], total[Interval.MN1]) == (3, 32)


@pytest.mark.parametrize("symbol", CASES)
def test_no_bar_starts_on_a_closed_day_at_any_interval(symbol):
    days, make = CASES[symbol]
    session = make()
    traded = {t.astimezone(NY).date() for t in days}
    for interval in ALL_INTERVALS:
        for start in bar_starts_between(days[0], days[-1] + US, interval, session):
            assert start.astimezone(NY).date() in traded, (symbol, interval, start)


# --- parsers on the real symbol_resolved records and the protocol notes' examples (§5.3) -----


def test_real_rut_and_dxy_calendars():
    rut, dxy = resolved(10), resolved(11)
    assert rut["subsession_id"] == "extended" and corrections_in_force(rut) == ""
    assert calendar_from_symbol_info(rut) == calendar_from_symbol_info(SPX_INFO)  # the same US list
    session = Session.parse(rut["session"], rut["timezone"], calendar_from_symbol_info(rut))
    assert bar_start(from_epoch(1672756200), Interval.D1, session) is not None  # Tue 2023-01-03
    assert not session.is_open(from_epoch(1672669800))                         # Mon 2023-01-02, listed
    for sub in rut["subsessions"]:
        Session.parse(sub["session"], rut["timezone"], calendar_from_symbol_info(rut))
    assert "session_holidays" not in dxy and not calendar_from_symbol_info(dxy)
    assert Session.parse(dxy["session"], dxy["timezone"], calendar_from_symbol_info(dxy)) == \
        Session.parse(dxy["session"], dxy["timezone"])


@pytest.mark.parametrize("spec", [
    "24x7", "0930-1600", "0930-1610", "0930-1600:23456", "2;0000-0000:1234567", "1900-1900:3456|1700F-1900:2",
    "0930-1700", "0400-2000", "0400-0930", "1700-2000", "1900F4-2350F4,1000-1845",
])
def test_every_session_string_of_the_notes_parses(spec):
    Session.parse(spec, "America/New_York")


@pytest.mark.parametrize("text", [
    "1900F4-2350F4,1000-1845:20181113;1000-1400:20181114",
    "0930-1300:20190703,20191129,20191224",
    "0400-2100:20190703,20191129,20191224",
    "1300-2100:20190703,20191129,20191224",
    "0930-1300:20190703,20241224,20250703,20251128,20251224,20261127,20261224,20271126,20271223;dayoff:20250109",
])
def test_every_correction_of_the_notes_parses(text):
    assert parse_corrections(text)
