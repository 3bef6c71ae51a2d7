"""The exchange calendar's parsers and semantics (market.calendar): holidays, corrections,
what daily history adds, the registry's JSON form."""

import pickle
from datetime import UTC, date, datetime

import pytest

from pocketquant_pipelines.errors import InvalidCalendarError, InvalidInputError
from pocketquant_pipelines.market.calendar import (
    EMPTY_CALENDAR,
    CalendarHistory,
    TradingCalendar,
    build_calendar,
    calendar_from_record,
    calendar_from_symbol_info,
    calendar_record,
    corrections_in_force,
    derive_history,
    parse_corrections,
    parse_holidays,
)
from pocketquant_pipelines.market.session_rules import local_epoch, session_zone

D = date


def ny_open(day: date, hhmm: str = "0930", zone: str = "America/New_York") -> float:
    return local_epoch(session_zone(zone), day.toordinal(), int(hhmm[:2]) * 60 + int(hhmm[2:]))


# --- session_holidays ---------------------------------------------------------------------------


def test_holidays_unsorted_duplicates_and_trailing_comma():
    # lists need not be sorted (an out-of-order 20150502 was seen on SET:AOT) and reach years ahead
    assert parse_holidays("20261231,20150502,20150101,20150502,") == (D(2015, 1, 1), D(2015, 5, 2), D(2026, 12, 31))
    assert parse_holidays(["20250901", " 20250101 "]) == (D(2025, 1, 1), D(2025, 9, 1))
    assert parse_holidays("") == () and parse_holidays(None) == ()


@pytest.mark.parametrize("bad, needle", [
    ("20240101,2024013", "'2024013'"),
    ("20240230", "'20240230'"),
    ("2024-01-01", "'2024-01-01'"),
    ("20240101;20240102", "'20240101;20240102'"),
    (20240101, "20240101"),
    ({"20240101": 1}, "{'20240101': 1}"),
])
def test_bad_holiday_lists_name_the_value(bad, needle):
    with pytest.raises(InvalidCalendarError) as info:
        parse_holidays(bad)
    assert needle in str(info.value) and isinstance(info.value, InvalidInputError)


# --- corrections ------------------------------------------------------------------------------


def test_charting_library_example_with_fn_on_both_times():
    # protocol notes §5.3: on 2018-11-13 the first range opens at 19:00 four days earlier
    parsed = parse_corrections("1900F4-2350F4,1000-1845:20181113;1000-1400:20181114")
    assert parsed == (
        (D(2018, 11, 13), ((19 * 60 - 4 * 1440, 23 * 60 + 50 - 4 * 1440), (10 * 60, 18 * 60 + 45))),
        (D(2018, 11, 14), ((10 * 60, 14 * 60),)),
    )


def test_reported_aapl_correction_with_dayoff_and_dates_latest_first():
    text = ("0930-1300:20190703,20241224,20250703,20251128,20251224,20261127,20261224,20271126,20271223;"
            "dayoff:20250109")
    parsed = parse_corrections(text)
    assert len(parsed) == 10
    assert parsed[-1] == (D(2025, 1, 9), None)  # dayoff: the whole day is closed
    assert {ranges for _, ranges in parsed[:-1]} == {((570, 780),)}
    calendar = build_calendar(corrections=parsed)
    assert calendar.closed == {D(2025, 1, 9).toordinal()}
    assert calendar.correction(D(2025, 11, 28).toordinal()) == ((570, 780),)


@pytest.mark.parametrize("text", [
    "0930-1300:20190703,20191129,20191224",   # Charting Library extended-sessions example, regular
    "0400-2100:20190703,20191129,20191224",   # ... extended
    "1300-2100:20190703,20191129,20191224",   # ... post-market
    "1700F2-1200F1,1700-1215:20251128,20261127",
    "1900-1300:20241224",                     # overnight without F
    "DAYOFF:20250109",
])
def test_correction_forms_parse(text):
    parsed = parse_corrections(text)
    assert parsed and all(isinstance(d, date) for d, _ in parsed)


@pytest.mark.parametrize("bad, needle", [
    ("0930-1300", "'0930-1300'"),                  # no dates
    ("0930-1300:2019070", "'2019070'"),
    ("0930-1300:20190230", "'20190230'"),
    ("xx:20190703", "'xx'"),
    ("1900F7-2000:20190101", "'1900F7-2000'"),     # n <= 6
    ("1900F-1800F:20190101", "closes before it opens"),
    ("0930-1300,1200-1400:20190101", "overlap"),
    (":20190101", "':20190101'"),
    (5, "5"),
])
def test_bad_corrections_name_the_value(bad, needle):
    with pytest.raises(InvalidCalendarError) as info:
        parse_corrections(bad)
    assert needle in str(info.value)


def test_corrections_in_force_top_level_else_selected_subsession():
    subs = [{"id": "regular", "session": "0930-1600", "session-correction": "0930-1300:20251128"},
            {"id": "extended", "session": "0400-2000", "session-correction": "0400-1700:20251128"}]
    assert corrections_in_force({"subsession_id": "regular", "subsessions": subs}) == "0930-1300:20251128"
    assert corrections_in_force({"subsession_id": "extended", "subsessions": subs}) == "0400-1700:20251128"
    assert corrections_in_force({"subsession_id": "premarket", "subsessions": subs}) == ""
    top = {"corrections": "dayoff:20250109", "subsession_id": "regular", "subsessions": subs}
    assert corrections_in_force(top) == "dayoff:20250109"
    assert corrections_in_force({}) == ""
    assert corrections_in_force({"subsessions": [{"session-correction": "dayoff:20250109"}]}) == ""  # none named
    with pytest.raises(InvalidCalendarError, match="42"):
        corrections_in_force({"corrections": 42})


# --- the calendar -----------------------------------------------------------------------------


def test_corrections_outrank_holidays_and_a_later_correction_wins():
    cal = build_calendar(
        parse_holidays("20251127,20251128"),
        parse_corrections("0930-1300:20251128;dayoff:20251126;0930-1200:20251124;1000-1100:20251124"),
    )
    o = D.toordinal
    assert cal.ranges_on(o(D(2025, 11, 28)), ((570, 960),)) == ((570, 780),)  # holiday, but corrected
    assert cal.ranges_on(o(D(2025, 11, 27)), ((570, 960),)) == ()             # holiday
    assert cal.ranges_on(o(D(2025, 11, 26)), ((570, 960),)) == ()             # dayoff
    assert cal.ranges_on(o(D(2025, 11, 24)), ((570, 960),)) == ((600, 660),)  # the later one
    assert cal.ranges_on(o(D(2025, 11, 25)), ((570, 960),)) == ((570, 960),)  # an ordinary day


def test_history_is_the_final_word_inside_its_range():
    holidays = parse_holidays("20181122,20181225,20190101")
    history = CalendarHistory(D(2018, 11, 1), D(2018, 12, 28), closed=(D(2018, 11, 22), D(2018, 12, 5)),
                              open=(D(2018, 12, 25),))
    cal = build_calendar(holidays, (), history)
    assert set(cal.closed_dates()) == {D(2018, 11, 22), D(2018, 12, 5), D(2019, 1, 1)}
    # the same effect from other lists is the same calendar (no needless aggregator rebuilds)
    assert cal == build_calendar(parse_holidays("20181205,20181122,20190101"))
    assert hash(cal) == hash(build_calendar(parse_holidays("20181205,20181122,20190101")))
    with pytest.raises(InvalidCalendarError, match="20181201"):
        CalendarHistory(D(2018, 12, 2), D(2018, 12, 28), closed=(D(2018, 12, 1),))
    with pytest.raises(InvalidCalendarError, match="20181205"):
        CalendarHistory(D(2018, 12, 2), D(2018, 12, 28), closed=(D(2018, 12, 5),), open=(D(2018, 12, 5),))


def test_calendar_is_immutable_hashable_and_pickles():
    cal = build_calendar(parse_holidays("20250901"), parse_corrections("0930-1300:20251128"))
    with pytest.raises(AttributeError):
        cal.closed = frozenset()  # type: ignore[misc]
    again = pickle.loads(pickle.dumps(cal))
    assert again == cal and hash(again) == hash(cal) and again is not cal
    assert {cal: 1}[again] == 1
    assert not EMPTY_CALENDAR and cal and TradingCalendar() == EMPTY_CALENDAR
    assert "1 closed days 20250901..20250901" in repr(cal) and "1 corrected" in repr(cal)
    # a corrected day that is also closed (history) trades nothing and is not listed as corrected
    assert TradingCalendar([D(2025, 11, 28)], {D(2025, 11, 28): ((570, 780),)}).corrected == ()


def test_symbol_info_record_round_trip_keeps_history():
    info = {"session_holidays": "20251225,20250901,20250901", "subsession_id": "regular",
            "subsessions": [{"id": "regular", "session": "0930-1600",
                             "session-correction": "0930-1300:20251128;dayoff:20250109"}]}
    history = {"first": "20250801", "last": "20250905", "closed": ["20250901"], "open": []}
    record = calendar_record(info, "2025-09-06T00:00:00+00:00", history)
    assert record == {"holidays": ["20250901", "20251225"], "corrections": "0930-1300:20251128;dayoff:20250109",
                      "resolved_at": "2025-09-06T00:00:00+00:00", "history": history}
    assert calendar_from_record(record) == calendar_from_symbol_info(info)  # the history agrees
    assert calendar_from_record(record, with_history=False) == calendar_from_symbol_info(info)
    assert calendar_from_record({}) is EMPTY_CALENDAR and calendar_from_record(None) is EMPTY_CALENDAR
    with pytest.raises(InvalidCalendarError, match="2025-12-25"):
        calendar_record({"session_holidays": "2025-12-25"}, "2025-09-06T00:00:00+00:00")


@pytest.mark.parametrize("record, needle", [
    ({"holidays": 5}, "5"),
    ({"holidays": ["2025"]}, "'2025'"),
    ({"corrections": "0930:20250101"}, "'0930'"),
    ({"history": {"first": "20250101"}}, "last day None"),
    ({"history": {"first": "20250101", "last": "20250131", "closed": "20250102"}}, "'20250102'"),
    ({"history": ["x"]}, "['x']"),
    ({"holidays": [["20250101"]]}, "[['20250101']]"),
])
def test_bad_records_name_the_value(record, needle):
    with pytest.raises(InvalidCalendarError) as info:
        calendar_from_record(record)
    assert needle in str(info.value)


# --- what daily history says -----------------------------------------------------------------


def test_derive_history_closed_weekdays_and_open_listed_holidays():
    listed = build_calendar(parse_holidays("20250901,20250904"))
    days = [D(2025, 8, 29), D(2025, 9, 2), D(2025, 9, 3), D(2025, 9, 4), D(2025, 9, 8)]  # no bar on Fri 09-05
    history = derive_history([ny_open(d) for d in days], "0930-1600", "America/New_York", listed)
    assert (history.first, history.last) == (D(2025, 8, 29), D(2025, 9, 8))
    assert history.closed == (D(2025, 9, 1), D(2025, 9, 5))  # the weekend is no closure
    assert history.open == (D(2025, 9, 4),)                  # listed, but it has a daily bar
    assert history.to_record() == {"first": "20250829", "last": "20250908",
                                   "closed": ["20250901", "20250905"], "open": ["20250904"]}
    assert CalendarHistory.from_record(history.to_record()) == history
    assert derive_history([], "0930-1600", "America/New_York") is None


def test_derive_history_places_overnight_bars_on_the_day_they_close():
    # CME's Monday session opens Sunday 17:00 Chicago: its daily bar belongs to Monday.
    sunday, monday = D(2024, 7, 14), D(2024, 7, 15)
    starts = [ny_open(sunday, "1700", "America/Chicago"), ny_open(monday, "1700", "America/Chicago"),
              ny_open(D(2024, 7, 17), "1700", "America/Chicago")]  # Tue, Wed, Thu opens: no Wed bar
    history = derive_history(starts, "1700-1600:23456", "America/Chicago")
    assert (history.first, history.last) == (monday, D(2024, 7, 18))
    assert history.closed == (D(2024, 7, 17),) and history.open == ()


def test_derive_history_a_bar_on_a_day_the_session_does_not_trade_is_open():
    saturday = D(2025, 9, 6)
    history = derive_history([ny_open(D(2025, 9, 5)), ny_open(saturday), ny_open(D(2025, 9, 8))],
                             "0930-1600", "America/New_York")
    assert history.open == (saturday,) and history.closed == ()


def test_derive_history_rejects_a_bad_session_naming_it():
    with pytest.raises(InvalidInputError, match="'0930'"):
        derive_history([datetime(2025, 9, 2, 13, 30, tzinfo=UTC).timestamp()], "0930", "America/New_York")
