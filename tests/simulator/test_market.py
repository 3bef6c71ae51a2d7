"""The synthetic markets: deterministic, session-aligned, and history == aggregated ticks."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from pocketquant_pipelines.errors import InvalidSymbolError
from pocketquant_pipelines.market.aggregator import BarAggregator
from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval
from pocketquant_pipelines.market.sessions import bar_start
from tradingview_simulator import SyntheticMarket

NOW = datetime(2026, 3, 20, 18, 0, tzinfo=UTC)  # a Friday, US markets open, after the DST switch
NY = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(seed=42)


def tick_frame(market: SyntheticMarket, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
    spec = market.spec(symbol)
    a = market.tick_arrays(symbol, start, end)
    return pd.DataFrame(
        {"price": a.units / spec.pricescale, "volume": a.vol * spec.volume_unit},
        index=pd.to_datetime(a.times, unit="s", utc=True),
    )


def test_same_seed_same_data_other_seed_other_data():
    a = SyntheticMarket(seed=7).history("BINANCE:BTCUSDT", "1h", NOW, 50)
    b = SyntheticMarket(seed=7).history("BINANCE:BTCUSDT", "1h", NOW, 50)
    c = SyntheticMarket(seed=8).history("BINANCE:BTCUSDT", "1h", NOW, 50)
    assert a == b
    assert [x.close for x in a] != [x.close for x in c]


def test_ticks_never_repeat_a_price_and_always_carry_volume(market):
    # A quote client only sees a tick when lp or volume changes: both must change every tick.
    for symbol in market.symbols:
        spec = market.spec(symbol)
        a = market.tick_arrays(symbol, NOW - timedelta(days=4), NOW)
        assert len(a) > 1000
        assert np.all(np.diff(a.units) != 0), symbol
        if spec.has_volume:
            assert np.all(a.vol > 0), symbol
        assert np.all(np.diff(a.times) > 0)
        assert np.all(a.times % spec.tick_seconds == 0)


def test_every_minute_of_a_session_starts_with_a_tick(market):
    ticks = market.tick_arrays("NASDAQ:AAPL", datetime(2026, 3, 19, tzinfo=UTC), datetime(2026, 3, 20, tzinfo=UTC))
    minutes = np.unique(ticks.times // 60 * 60)
    assert len(minutes) == 390  # 09:30-16:00
    assert set(minutes.tolist()) <= set(ticks.times.tolist())


def test_ticks_are_inside_the_session(market):
    for symbol in market.symbols:
        session = market.session(symbol)
        for tick in market.ticks(symbol, NOW - timedelta(days=3), NOW)[::97]:
            assert session.is_open(tick.time), (symbol, tick.time)


def test_unknown_symbol_is_a_clear_error(market):
    with pytest.raises(InvalidSymbolError, match="NOPE:X"):
        market.history("NOPE:X", "1d", NOW, 10)


def test_pandas_resample_of_ticks_equals_history_for_24x7(market):
    # An independent aggregation (pandas) of the same ticks must give the simulator's bars.
    start, end = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
    frame = tick_frame(market, "BINANCE:BTCUSDT", start, end)
    for interval, rule in [("1m", "1min"), ("5m", "5min"), ("45m", "45min"), ("1h", "1h"), ("4h", "4h"),
                           ("1d", "1D"), ("1w", "W-MON"), ("1M", "MS")]:
        grouped = frame.resample(rule, label="left", closed="left")
        expected = pd.concat(
            [grouped["price"].first(), grouped["price"].max(), grouped["price"].min(),
             grouped["price"].last(), grouped["volume"].sum()], axis=1,
        ).dropna()
        expected.columns = ["open", "high", "low", "close", "volume"]
        bars = market.bars_between("BINANCE:BTCUSDT", interval, start, end)
        if interval == "1w":  # the first week of February 2026 began on Monday 26 January
            expected = expected[expected.index >= pd.Timestamp(start)]
            bars = [b for b in bars if b.time >= start]
        got = pd.DataFrame(
            [(b.open, b.high, b.low, b.close, b.volume) for b in bars],
            index=pd.DatetimeIndex([b.time for b in bars]), columns=expected.columns,
        )
        if interval == "1w":
            got = got.iloc[:-1]  # the last week runs past the end of February
            expected = expected.iloc[: len(got)]
        assert len(got) == len(expected), interval
        assert (got.index == expected.index).all(), interval
        # Exact: prices are selections, volumes sums of powers of two.
        assert (got.to_numpy() == expected.to_numpy()).all(), interval


def test_history_equals_the_aggregator_fed_with_the_ticks(market):
    # Two whole weeks across the US DST switch (Sunday 8 March 2026). NQ's Monday session
    # opens on Sunday evening, so the window starts on Sunday.
    start, end = datetime(2026, 3, 1, 12, tzinfo=UTC), datetime(2026, 3, 14, tzinfo=UTC)
    for symbol, intervals in [
        ("NASDAQ:AAPL", ALL_INTERVALS[:-1]),
        ("SP:SPX", (Interval.M1, Interval.M45, Interval.H4, Interval.D1, Interval.W1)),
        ("CME_MINI:NQ1!", (Interval.M1, Interval.M30, Interval.H3, Interval.D1, Interval.W1)),
    ]:
        agg = BarAggregator(symbol, market.session(symbol), intervals)
        first_open = market.trading_days(symbol, start, end)[0][0]
        done = []
        for tick in market.ticks(symbol, first_open, end):
            done.extend(agg.on_tick(tick))
        done.extend(agg.flush())
        for interval in intervals:
            got = sorted((b for b in done if b.interval == interval), key=lambda b: b.time)
            expected = market.bars_between(symbol, interval, first_open, end)
            assert got == expected, (symbol, interval)


def test_monthly_bars_equal_the_aggregator(market):
    start, end = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
    agg = BarAggregator("NASDAQ:AAPL", market.session("NASDAQ:AAPL"), (Interval.D1, Interval.MN1))
    done = []
    for tick in market.ticks("NASDAQ:AAPL", start, end):
        done.extend(agg.on_tick(tick))
    done.extend(agg.flush())
    month = [b for b in done if b.interval is Interval.MN1]
    assert month == market.bars_between("NASDAQ:AAPL", "1M", start, end)
    assert len(month) == 1 and month[0].time == datetime(2026, 2, 2, 14, 30, tzinfo=UTC)


def test_precomputed_blocks_give_the_same_bars_as_ticks():
    # After the daily pass (warm-up), 15m..4h bars come from 15-minute blocks, not ticks.
    fresh, warmed = SyntheticMarket(seed=3), SyntheticMarket(seed=3)
    for symbol in ("BINANCE:BTCUSDT", "NASDAQ:AAPL", "CME_MINI:NQ1!", "KRX:005930"):
        warmed.warm_up(symbol, NOW)
        for interval in ("15m", "30m", "45m", "1h", "2h", "3h", "4h"):
            assert warmed.history(symbol, interval, NOW, 300) == fresh.history(symbol, interval, NOW, 300), (symbol, interval)


def test_aapl_daily_bars_open_at_0930_new_york_across_dst(market):
    bars = market.bars_between("NASDAQ:AAPL", "1d", datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 14, tzinfo=UTC))
    stamps = [(b.time.date(), b.time.hour, b.time.minute) for b in bars]
    assert stamps == [
        (date(2026, 3, 2), 14, 30), (date(2026, 3, 3), 14, 30), (date(2026, 3, 4), 14, 30),
        (date(2026, 3, 5), 14, 30), (date(2026, 3, 6), 14, 30),  # EST: weekend closed
        (date(2026, 3, 9), 13, 30), (date(2026, 3, 10), 13, 30), (date(2026, 3, 11), 13, 30),
        (date(2026, 3, 12), 13, 30), (date(2026, 3, 13), 13, 30),  # EDT
    ]
    assert all(b.time.astimezone(NY).strftime("%H:%M") == "09:30" for b in bars)


def test_bars_sit_on_market_core_alignment(market):
    for symbol in market.symbols:
        session = market.session(symbol)
        for interval in ALL_INTERVALS:
            for bar in market.history(symbol, interval, NOW, 40)[::7]:
                assert bar_start(bar.time, interval, session) == bar.time, (symbol, interval, bar.time)


def test_history_starts_at_the_history_start_so_coarse_histories_are_short(market):
    for symbol in market.symbols:
        first = market.history_start(symbol)
        assert datetime(2018, 12, 31, tzinfo=UTC) <= first < datetime(2019, 1, 3, tzinfo=UTC)
        monthly = market.history(symbol, "1M", NOW, 5000)
        weekly = market.history(symbol, "1w", NOW, 5000)
        assert 80 < len(monthly) < 100 and 350 < len(weekly) < 450
        daily = market.history(symbol, "1d", NOW, 5000)
        assert daily[0].time == first
        assert market.history(symbol, "1d", first, 10) == []  # nothing before the first tick


def test_last_bar_is_in_progress_with_the_ticks_so_far(market):
    now = datetime(2026, 3, 20, 15, 0, 25, tzinfo=UTC)
    bar = market.history("NASDAQ:AAPL", "1m", now, 1)[0]
    ticks = market.ticks("NASDAQ:AAPL", datetime(2026, 3, 20, 15, 0, tzinfo=UTC), now)
    assert [t.time.second for t in ticks] == [0, 10, 20]
    assert bar.time == datetime(2026, 3, 20, 15, 0, tzinfo=UTC)
    assert bar.open == ticks[0].price and bar.close == ticks[-1].price
    assert bar.high == max(t.price for t in ticks) and bar.volume == sum(t.volume for t in ticks)
    day = market.history("NASDAQ:AAPL", "1d", now, 1)[0]
    assert day.volume == ticks[-1].cumulative_volume  # quote volume == daily bar volume (§4.4)


def test_index_has_no_volume(market):
    bars = market.history("SP:SPX", "1h", NOW, 20)
    assert bars and all(b.volume is None for b in bars)
    assert all(t.volume is None and t.cumulative_volume is None for t in market.ticks("SP:SPX", NOW - timedelta(hours=1), NOW))


def test_cumulative_volume_resets_at_each_session_open(market):
    ticks = market.ticks("BINANCE:BTCUSDT", datetime(2026, 3, 19, 23, 59, 30, tzinfo=UTC), datetime(2026, 3, 20, 0, 0, 30, tzinfo=UTC))
    before = [t for t in ticks if t.time.day == 19]
    after = [t for t in ticks if t.time.day == 20]
    assert before[-1].cumulative_volume > 1000 * before[-1].volume
    assert after[0].cumulative_volume == after[0].volume
    assert after[1].cumulative_volume == after[0].volume + after[1].volume


def test_non_ascii_description_and_delayed_symbol_exist(market):
    spec = market.spec("KRX:005930")
    assert not spec.local_description.isascii()
    assert spec.update_mode == "delayed_streaming_900"
    assert market.spec("SP:SPX").has_volume is False
    assert market.find("aapl") is market.spec("NASDAQ:AAPL")  # bare code, any case
