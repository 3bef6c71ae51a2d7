"""The 13 intervals: our names, TradingView resolutions, and errors that name the bad value."""

import pytest

from pocketquant_pipelines.errors import InvalidInputError, InvalidIntervalError
from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval

NAMES = ["1m", "3m", "5m", "15m", "30m", "45m", "1h", "2h", "3h", "4h", "1d", "1w", "1M"]


def test_there_are_exactly_the_13_intervals_in_order():
    assert [i.value for i in ALL_INTERVALS] == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_name_parses_to_itself(name):
    interval = Interval.parse(name)
    assert interval.value == name and str(interval) == name
    assert Interval.parse(interval) is interval
    # Each interval's own resolution string maps back to it.
    assert Interval.from_tv_resolution(interval.tv_resolution) is interval
    assert Interval.parse(interval.tv_resolution) is interval


@pytest.mark.parametrize("resolution, expected", [
    ("1", Interval.M1), ("3", Interval.M3), ("5", Interval.M5), ("15", Interval.M15),
    ("30", Interval.M30), ("45", Interval.M45), ("60", Interval.H1), ("120", Interval.H2),
    ("180", Interval.H3), ("240", Interval.H4), ("1H", Interval.H1), ("4H", Interval.H4),
    ("1D", Interval.D1), ("D", Interval.D1), ("1W", Interval.W1), ("W", Interval.W1),
    ("1M", Interval.MN1), ("M", Interval.MN1),
])
def test_tradingview_resolutions(resolution, expected):
    assert Interval.from_tv_resolution(resolution) is expected
    assert Interval.parse(resolution) is expected


def test_minutes_send_as_bare_integers():
    assert [i.tv_resolution for i in ALL_INTERVALS] == [
        "1", "3", "5", "15", "30", "45", "60", "120", "180", "240", "1D", "1W", "1M"
    ]


def test_case_matters_minute_versus_month():
    assert Interval.parse("1m") is Interval.M1
    assert Interval.parse("1M") is Interval.MN1
    assert Interval.parse("1m").minutes == 1 and Interval.parse("1M").minutes is None
    with pytest.raises(InvalidIntervalError):
        Interval.parse("1MIN")


def test_lengths_and_kinds():
    assert [i.minutes for i in ALL_INTERVALS if i.is_intraday] == [1, 3, 5, 15, 30, 45, 60, 120, 180, 240]
    assert [i.is_intraday for i in (Interval.D1, Interval.W1, Interval.MN1)] == [False] * 3
    assert Interval.H4.nominal_seconds == 14_400 and Interval.W1.nominal_seconds == 604_800


@pytest.mark.parametrize("spelling, expected", [
    ("60m", Interval.H1), ("1H", Interval.H1), ("60", Interval.H1), ("h", Interval.H1),
    ("240m", Interval.H4), ("4H", Interval.H4), ("120", Interval.H2), ("m", Interval.M1),
    ("d", Interval.D1), ("1D", Interval.D1), ("w", Interval.W1), ("W", Interval.W1),
    ("M", Interval.MN1),
])
def test_one_rule_any_spelling_of_the_same_span_is_the_same_interval(spelling, expected):
    assert Interval.parse(spelling) is expected


@pytest.mark.parametrize("span", ["90m", "2m", "24h", "5h", "2d", "7d", "2w", "3M"])
def test_a_well_spelled_span_that_is_not_one_of_the_13_says_so(span):
    with pytest.raises(InvalidIntervalError, match=f"'{span}': not one of the 13 intervals"):
        Interval.parse(span)


@pytest.mark.parametrize("bad", ["2m", "1x", "", "1 m", " 1m", "1d ", "1y", "0", "-1", "01h", "1MIN", "1mn"])
def test_bad_names_are_rejected_naming_the_value(bad):
    with pytest.raises(InvalidIntervalError) as info:
        Interval.parse(bad)
    assert repr(bad) in str(info.value)
    assert isinstance(info.value, InvalidInputError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("bad", [None, 60, 1.0, ["1m"]])
def test_non_strings_are_rejected_naming_the_value(bad):
    with pytest.raises(InvalidIntervalError, match=repr(bad).replace("[", r"\[").replace("]", r"\]")):
        Interval.parse(bad)


@pytest.mark.parametrize("bad", ["15m", "1h", "1d", "XX", "20", "", None])
def test_our_names_are_not_tradingview_resolutions(bad):
    # TradingView rejects a lowercase "15m"; we must never send it.
    with pytest.raises(InvalidIntervalError) as info:
        Interval.from_tv_resolution(bad)
    assert repr(bad) in str(info.value)
