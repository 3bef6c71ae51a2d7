"""The simulator's exchange calendars: NYSE holidays and 13:00 early closes for its US symbols,
sent in symbol_resolved as TradingView sends them and modelled from exactly that, so its
history has no holiday bars and its early-close days end early; crypto stays 24x7."""

import asyncio
import calendar as cal
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.market.aggregator import BarAggregator
from pocketquant_pipelines.market.calendar import (
    calendar_from_symbol_info,
    corrections_in_force,
    parse_corrections,
    parse_holidays,
)
from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval
from pocketquant_pipelines.tradingview.client import TradingViewClient
from tradingview_simulator import DEFAULT_SYMBOLS, SimulatorServer, SyntheticMarket
from tradingview_simulator.calendars import (
    NYSE_CORRECTIONS,
    NYSE_EARLY_CLOSES,
    NYSE_HOLIDAYS,
)
from tradingview_simulator.payloads import symbol_info
from tests.tradingview.test_real_frames import by_index, wire_frames

NY = ZoneInfo("America/New_York")
AAPL, SPX, BTC = "NASDAQ:AAPL", "SP:SPX", "BINANCE:BTCUSDT"


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(seed=42)


# --- the facts --------------------------------------------------------------------------------


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l) // 451
    month, day = divmod(h + l - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _nth(year: int, month: int, weekday: int, n: int) -> date:
    days = [d for d in range(1, cal.monthrange(year, month)[1] + 1) if date(year, month, d).weekday() == weekday]
    return date(year, month, days[n])


def _observed(day: date) -> date | None:
    if day.weekday() == 5:  # Saturday: the Friday before, except for New Year's Day
        return None if (day.month, day.day) == (1, 1) else day - timedelta(days=1)
    return day + timedelta(days=1) if day.weekday() == 6 else day


def nyse_rules(year: int) -> tuple[set[date], set[date]]:
    """NYSE holidays and 13:00 early closes of ``year`` from the exchange's rules (Rule 7.2)."""
    fixed = [date(year, 1, 1), date(year, 7, 4), date(year, 12, 25)] + ([date(year, 6, 19)] if year >= 2022 else [])
    holidays = {d for d in map(_observed, fixed) if d is not None}
    holidays |= {_nth(year, 1, 0, 2), _nth(year, 2, 0, 2), _easter(year) - timedelta(days=2),
                 _nth(year, 5, 0, -1), _nth(year, 9, 0, 0), _nth(year, 11, 3, 3)}
    early = {_nth(year, 11, 3, 3) + timedelta(days=1)}
    for day in (date(year, 7, 3), date(year, 12, 24)):
        if day.weekday() < 4:  # Mon-Thu; a Friday July 3 / Dec 24 is itself the observed holiday
            early.add(day)
    return holidays, early


def test_nyse_tables_follow_the_exchange_rules_2018_to_2027():
    holidays = set(parse_holidays(NYSE_HOLIDAYS))
    early = set(parse_holidays(NYSE_EARLY_CLOSES))
    for year in range(2018, 2028):
        rule_holidays, rule_early = nyse_rules(year)
        assert {d for d in holidays if d.year == year} == rule_holidays, year
        assert {d for d in early if d.year == year} == rule_early, year
    assert len(NYSE_HOLIDAYS) == len(holidays)  # no repeats


def test_nyse_table_equals_tradingviews_own_list_where_both_exist():
    real = {d for d in parse_holidays(wire_frames(by_index(9))[0].params[2]["session_holidays"])
            if 2018 <= d.year <= 2024}
    ours = {d for d in parse_holidays(NYSE_HOLIDAYS) if d.year <= 2024}
    assert ours == real


# --- what clients are told ----------------------------------------------------------------------


def test_symbol_resolved_carries_holidays_and_the_regular_subsessions_correction():
    aapl = symbol_info(next(s for s in DEFAULT_SYMBOLS if s.symbol == AAPL))
    assert aapl["session_holidays"] == ",".join(NYSE_HOLIDAYS)
    [regular] = aapl["subsessions"]
    assert regular["id"] == aapl["subsession_id"] == "regular"
    assert regular["session-correction"] == NYSE_CORRECTIONS and "corrections" not in aapl
    assert corrections_in_force(aapl) == NYSE_CORRECTIONS
    assert parse_corrections(NYSE_CORRECTIONS)[-1] == (date(2025, 1, 9), None)  # dayoff
    btc = symbol_info(next(s for s in DEFAULT_SYMBOLS if s.symbol == BTC))
    assert "session_holidays" not in btc and "session-correction" not in btc["subsessions"][0]
    assert not calendar_from_symbol_info(btc)


def test_the_client_reads_the_calendar_the_history_follows(market):
    async def go():
        async with SimulatorServer(sim_start=datetime(2026, 3, 10, 15, tzinfo=UTC)) as srv:
            client = TradingViewClient(url=srv.url)
            try:
                return await client.fetch_history(AAPL, Interval.D1, 2000), srv.market
            finally:
                await client.close()

    result, served = asyncio.run(go())
    meta = result.metadata
    assert meta.session_holidays == ",".join(NYSE_HOLIDAYS) and meta.subsession_id == "regular"
    assert meta.resolved_at is not None and meta.resolved_at.tzinfo is not None
    told = calendar_from_symbol_info(meta.calendar_fields())
    # the market's calendar is what it tells, plus the closure its list does not name
    assert told.closed | {date(2018, 12, 5).toordinal()} == served.session(AAPL).calendar.closed
    days = {datetime.fromtimestamp(t, NY).date() for t in result.columns.time.tolist()}
    # the whole history since its 2019 start: every day a bar, none on a holiday
    assert len(days) == len(result.columns) > 1700 and not days & set(parse_holidays(NYSE_HOLIDAYS))
    assert date(2025, 1, 9) not in days and date(2025, 1, 8) in days and date(2025, 1, 10) in days


# --- what the market does ------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", [AAPL, SPX])
def test_no_history_bar_and_no_tick_on_a_holiday(market, symbol):
    end = datetime(2026, 3, 1, tzinfo=UTC)
    holidays = {d for d in parse_holidays(NYSE_HOLIDAYS) if d.year <= 2025} | {date(2025, 1, 9)}
    for interval in ALL_INTERVALS:
        bars = market.bars_between(symbol, interval, datetime(2025, 1, 1, tzinfo=UTC), end)
        days = {b.time.astimezone(NY).date() for b in bars}
        assert days and not days & holidays, interval
    ticks = market.tick_arrays(symbol, datetime(2025, 8, 29, 21, tzinfo=UTC), datetime(2025, 9, 2, 13, tzinfo=UTC))
    assert len(ticks) == 0  # Friday close .. Tuesday before the open: Labor Day has no ticks


def test_early_close_days_end_at_13_new_york(market):
    for day in parse_holidays(NYSE_EARLY_CLOSES):
        if day.year < 2019 or day >= date(2026, 3, 1):
            continue
        close = datetime(day.year, day.month, day.day, 13, tzinfo=NY)
        opens = datetime(day.year, day.month, day.day, 9, 30, tzinfo=NY)
        [(o, c)] = market.trading_days(AAPL, opens, opens + timedelta(hours=1))
        assert (o, c) == (opens.astimezone(UTC), close.astimezone(UTC)), day
        ticks = market.tick_arrays(AAPL, opens, opens + timedelta(hours=8))
        assert ticks.times.max() < close.timestamp() and ticks.times.min() == opens.timestamp()
    hours = market.bars_between(AAPL, "1h", datetime(2025, 11, 28, tzinfo=UTC), datetime(2025, 11, 29, tzinfo=UTC))
    assert [b.time.astimezone(NY).strftime("%H:%M") for b in hours] == ["09:30", "10:30", "11:30", "12:30"]
    [week] = market.bars_between(AAPL, "1w", datetime(2025, 11, 24, tzinfo=UTC), datetime(2025, 11, 29, tzinfo=UTC))
    assert week.time == datetime(2025, 11, 24, 14, 30, tzinfo=UTC)


def test_labor_day_week_and_september_start_on_tuesday(market):
    for interval in ("1w", "1M"):
        bars = market.bars_between(AAPL, interval, datetime(2025, 8, 30, tzinfo=UTC), datetime(2025, 9, 30, tzinfo=UTC))
        assert bars[0].time == datetime(2025, 9, 2, 13, 30, tzinfo=UTC), interval


def test_streamed_ticks_build_the_simulators_history_across_holidays_and_an_early_close(market):
    # The market core's aggregator over the simulator's ticks, with the symbol's session: the
    # same bars as the simulator's history, key for key, around Thanksgiving and Christmas.
    start, end = datetime(2025, 11, 21, 21, tzinfo=UTC), datetime(2025, 12, 27, tzinfo=UTC)
    agg = BarAggregator(AAPL, market.session(AAPL))
    bars = []
    for tick in market.ticks(AAPL, start, end):
        bars += agg.on_tick_values(tick.time.timestamp(), tick.price, tick.volume)
    bars += agg.close_due_epoch(end.timestamp())
    # December is still trading on the 26th: its month is the one bar in progress
    assert [(b.interval, b.time) for b in agg.flush()] == [(Interval.MN1, datetime(2025, 12, 1, 14, 30, tzinfo=UTC))]
    assert agg.late_ticks == 0 and agg.out_of_session_ticks == 0
    for interval in ALL_INTERVALS:
        # November's bar holds only the ticks from the 24th on: not comparable, left out
        got = [b for b in bars if b.interval is interval and b.time >= start]
        want = [b for b in market.bars_between(AAPL, interval, start, end) if interval is not Interval.MN1]
        assert got == want, interval
    weeks = [b.time for b in bars if b.interval is Interval.W1]
    assert datetime(2025, 11, 24, 14, 30, tzinfo=UTC) in weeks and datetime(2025, 12, 22, 14, 30, tzinfo=UTC) in weeks


def test_unlisted_closure_is_only_in_the_history():
    spec = replace(next(s for s in DEFAULT_SYMBOLS if s.symbol == AAPL), history_start=date(2018, 11, 1))
    market = SyntheticMarket(seed=1, symbols=[spec])
    days = {b.time.astimezone(NY).date() for b in market.history(AAPL, "1d", datetime(2019, 1, 10, tzinfo=UTC))}
    assert date(2018, 12, 4) in days and date(2018, 12, 5) not in days and date(2018, 12, 6) in days
    assert "20181205" not in symbol_info(spec)["session_holidays"]


@pytest.mark.parametrize("field, value, needle", [
    ("holidays", ("2025-12-25",), "'2025-12-25'"),
    ("corrections", "0930-1300:20251128x", "'20251128x'"),
    ("corrections", "0930-1100,1200-1300:20251128", "one window per trading day"),
    ("unlisted_closures", ("20181305",), "'20181305'"),
])
def test_bad_calendar_specs_name_the_value(field, value, needle):
    with pytest.raises(InvalidInputError) as info:
        replace(DEFAULT_SYMBOLS[1], **{field: value})
    assert needle in str(info.value)


def test_deterministic_with_the_calendar():
    a = SyntheticMarket(seed=9).history(AAPL, "1h", datetime(2025, 12, 1, tzinfo=UTC), 200)
    b = SyntheticMarket(seed=9).history(AAPL, "1h", datetime(2025, 12, 1, tzinfo=UTC), 200)
    assert a == b and np.unique([x.time.date() for x in a]).size > 10
