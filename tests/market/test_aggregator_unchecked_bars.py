"""The aggregator builds its bars without re-validating them (``unchecked_bar``): every bar it
hands out must still be exactly the validated ``Bar`` of the same values, and ticks whose values
would not make a valid bar must be refused up front, as they were refused before (then by the
bar constructor)."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pocketquant_pipelines.errors import InvalidBarError, InvalidInputError
from pocketquant_pipelines.market.aggregator import BarAggregator
from pocketquant_pipelines.market.bars import Bar, bar_problem, unchecked_bar
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.sessions import Session
from pocketquant_pipelines.market.timeutil import from_epoch

T0 = 1769990400.0  # 2026-02-02 00:00 UTC, a Monday
NY = Session.parse("0930-1600", "America/New_York")


def validated(bar: Bar) -> Bar:
    """The same values through the validating constructor (raises if they are not a bar)."""
    return Bar(bar.symbol, bar.interval, bar.time, bar.open, bar.high, bar.low, bar.close, bar.volume)


def check(bars) -> None:
    for bar in bars:
        assert type(bar) is Bar
        assert bar_problem(bar.time, bar.open, bar.high, bar.low, bar.close, bar.volume) is None
        twin = validated(bar)
        assert twin == bar and hash(twin) == hash(bar) and repr(twin) == repr(bar)
        assert bar.time.tzinfo is not None and bar.time.utcoffset().total_seconds() == 0


_prices = st.one_of(st.floats(0.01, 1e6), st.integers(1, 10**6), st.sampled_from([0.0, -5.0, 1e300]))
_volumes = st.one_of(st.none(), st.floats(0, 1e6), st.integers(0, 10**6))
_steps = st.lists(st.tuples(st.floats(0, 4000), _prices, _volumes, st.booleans()), min_size=1, max_size=80)


@settings(max_examples=150, deadline=None)
@given(_steps, st.sampled_from(["24x7", "ny"]))
def test_every_bar_handed_out_equals_the_validated_bar(steps, session):
    agg = BarAggregator("X:Y", NY if session == "ny" else Session.parse("24x7", "Etc/UTC"))
    t = T0 + 13.5 * 3600  # 08:30 New York: the session opens an hour later
    for gap, price, volume, close_now in steps:
        t += gap
        check(agg.on_tick_values(t, price, volume))
        check(agg.current_bars().values())
        if close_now:
            check(agg.close_due_epoch(t + gap))
    check(agg.flush())


def test_unchecked_bar_is_the_bar_of_the_same_values():
    when = from_epoch(T0)
    bar = unchecked_bar("X:Y", Interval.H1, when, 1.0, 2.0, 0.5, 1.5, 3.0)
    assert bar == Bar("X:Y", Interval.H1, when, 1.0, 2.0, 0.5, 1.5, 3.0)
    with pytest.raises(AttributeError):
        bar.open = 2.0  # still frozen


@pytest.mark.parametrize("price", [True, Decimal("1.5"), 10**400, "1.5", None, float("nan"), float("inf")])
def test_ticks_that_cannot_make_a_bar_are_refused_up_front(price):
    agg = BarAggregator("X:Y")
    agg.on_tick_values(T0, 100.0, 1.0)
    with pytest.raises(InvalidInputError, match="bad tick"):
        agg.on_tick_values(T0 + 1, price, 1.0)
    with pytest.raises(InvalidInputError, match="bad tick"):
        agg.on_tick_values(T0 + 2, 100.0, price if price is not None else -1.0)
    check(agg.flush())  # the refused ticks left no trace
    assert agg.late_ticks == 0


def test_a_volume_sum_that_overflows_is_still_refused_by_the_bar_contract():
    agg = BarAggregator("X:Y")
    agg.on_tick_values(T0, 100.0, 1e308)
    agg.on_tick_values(T0 + 1, 100.0, 1e308)  # the minute's volume is now inf
    with pytest.raises(InvalidBarError, match="volume"):
        agg.current_bars()
