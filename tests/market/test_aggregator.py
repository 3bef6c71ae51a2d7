"""BarAggregator: streamed ticks must give the same bars as history over the same ticks."""

import math
import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.market.aggregator import BarAggregator
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval
from pocketquant_pipelines.market.sessions import SESSION_24X7, Session, bar_end, bar_start
from pocketquant_pipelines.market.ticks import Tick

NY = Session.parse("0930-1600", "America/New_York")


def u(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def feed(agg: BarAggregator, ticks) -> list[Bar]:
    out: list[Bar] = []
    for t, price, volume in ticks:
        out.extend(agg.on_tick_values(t, price, volume))
    return out


def random_ticks(start: datetime, end: datetime, seed: int, mean_gap: float = 20.0):
    """Irregular ticks: bursts, quiet hours, some exactly on minute boundaries; volumes are
    multiples of 1/4 so sums are exact in binary floating point."""
    rng = random.Random(seed)
    t, stop = start.timestamp(), end.timestamp()
    price = 100.0
    out = []
    while t < stop:
        roll = rng.random()
        if roll < 0.002:
            t += rng.uniform(3600, 5 * 3600)  # a quiet spell: whole buckets with no tick
        elif roll < 0.05:
            t = math.floor(t / 60 + 1) * 60  # exactly on a boundary
        else:
            t += rng.expovariate(1 / mean_gap)
        if t >= stop:
            break
        price = max(1.0, price + rng.gauss(0, 0.3))
        out.append((t, round(price, 4), rng.randrange(0, 400) / 4))
    return out


# --- 24x7 against pandas resample ---------------------------------------------------------------

_RESAMPLE_RULE = {
    Interval.M1: "1min", Interval.M3: "3min", Interval.M5: "5min", Interval.M15: "15min",
    Interval.M30: "30min", Interval.M45: "45min", Interval.H1: "1h", Interval.H2: "2h",
    Interval.H3: "3h", Interval.H4: "4h", Interval.D1: "1D",
}


def pandas_bars(ticks, interval: Interval) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"price": [p for _, p, _ in ticks], "volume": [v for _, _, v in ticks]},
        index=pd.to_datetime([t for t, _, _ in ticks], unit="s", utc=True),
    )
    if interval in _RESAMPLE_RULE:
        grouped = frame.resample(_RESAMPLE_RULE[interval], closed="left", label="left")
    else:
        # (The default origin, midnight of the first day, gives UTC-midnight grids: every
        # intraday length divides a day.) Calendar weeks starting Monday (W-SUN periods run Mon..Sun) and calendar months.
        freq = "W-SUN" if interval is Interval.W1 else "M"
        key = frame.index.tz_localize(None).to_period(freq).start_time.tz_localize("UTC")
        grouped = frame.groupby(key)
    ohlc = grouped["price"].ohlc()
    ohlc["volume"] = grouped["volume"].sum()
    return ohlc.dropna(subset=["open"])


@pytest.mark.parametrize("first, last", [
    ("2024-02-12T07:13", "2024-03-11T05:00"),  # four weeks across the end of a leap February
    ("2024-12-16T21:40", "2025-01-13T02:00"),  # across a year end; week of Mon 12-30 holds 01-01
])
def test_24x7_all_intervals_match_pandas_resample(first, last):
    ticks = random_ticks(u(first), u(last), seed=3, mean_gap=30.0)
    agg = BarAggregator("BINANCE:BTCUSDT", SESSION_24X7)
    completed = feed(agg, ticks)
    partial = agg.flush()
    assert agg.current_bars() == {}
    assert agg.late_ticks == 0 and agg.out_of_session_ticks == 0

    last_t = ticks[-1][0]
    for bar in completed:  # completed means a later tick proved the bar over
        assert bar_end(bar.time, bar.interval).timestamp() <= last_t
    for bar in partial:
        assert bar_end(bar.time, bar.interval).timestamp() > last_t
    assert len(partial) == 13  # one in-progress bar per interval

    everything = completed + partial
    assert len({b.key for b in everything}) == len(everything)  # each bar emitted once
    for interval in ALL_INTERVALS:
        ours = [b for b in everything if b.interval is interval]
        expected = pandas_bars(ticks, interval)
        assert [b.time for b in ours] == list(expected.index.to_pydatetime()), interval
        for bar, row in zip(ours, expected.itertuples()):
            assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
                row.open, row.high, row.low, row.close, row.volume
            ), (interval, bar.time)


def test_completed_bars_come_oldest_first():
    agg = BarAggregator("BINANCE:BTCUSDT")
    feed(agg, [(u("2024-03-31T23:59:10").timestamp(), 10.0, 1.0)])
    done = agg.on_tick_values(u("2024-04-01T00:00:05").timestamp(), 11.0, 1.0)
    # The first tick of April (a Monday) completes a bar at every interval, oldest first; bars
    # with the same start come in interval order.
    assert [b.interval for b in done] == [
        Interval.MN1, Interval.W1, Interval.D1, Interval.H4, Interval.H3, Interval.H2,
        Interval.H1, Interval.M45, Interval.M30, Interval.M15, Interval.M5, Interval.M3,
        Interval.M1,
    ]
    assert [b.time for b in done] == sorted(b.time for b in done)
    assert {b.interval for b in done} == set(ALL_INTERVALS)
    assert done[0].interval is Interval.MN1 and done[0].time == u("2024-03-01T00:00")
    assert done[-1].interval is Interval.M1 and done[-1].time == u("2024-03-31T23:59")


# --- NY session ---------------------------------------------------------------------------------


def grouped_by_alignment(ticks, interval: Interval, session: Session) -> list[tuple]:
    """Oracle: assign each in-session tick to bar_start(t) directly and take OHLCV per group."""
    groups: dict[datetime, list] = {}
    for t, price, volume in ticks:
        start = bar_start(datetime.fromtimestamp(t, UTC), interval, session)
        if start is not None:
            groups.setdefault(start, []).append((price, volume))
    out = []
    for start in sorted(groups):
        prices = [p for p, _ in groups[start]]
        vols = [v for _, v in groups[start] if v is not None]
        out.append((start, prices[0], max(prices), min(prices), prices[-1], sum(vols) if vols else None))
    return out


def as_tuples(bars: list[Bar], interval: Interval) -> list[tuple]:
    return [(b.time, b.open, b.high, b.low, b.close, b.volume) for b in bars if b.interval is interval]


def test_ny_session_across_dst_drops_and_counts_out_of_session_ticks():
    # Wed 2024-03-06 .. Wed 2024-03-13: the US switches to EDT on Sunday the 10th. Ticks come
    # around the clock; only those inside 09:30-16:00 New York time may form bars.
    ticks = random_ticks(u("2024-03-06T00:00"), u("2024-03-13T23:00"), seed=5, mean_gap=30.0)
    in_session = [tk for tk in ticks if NY.is_open(datetime.fromtimestamp(tk[0], UTC))]
    agg = BarAggregator("NASDAQ:AAPL", NY)
    everything = feed(agg, ticks) + agg.flush()
    assert agg.out_of_session_ticks == len(ticks) - len(in_session) > 0
    assert agg.late_ticks == 0
    for interval in ALL_INTERVALS:
        assert as_tuples(everything, interval) == grouped_by_alignment(in_session, interval, NY), interval
    daily = [b.time for b in everything if b.interval is Interval.D1]
    assert daily == [u("2024-03-06T14:30"), u("2024-03-07T14:30"), u("2024-03-08T14:30"),
                     u("2024-03-11T13:30"), u("2024-03-12T13:30"), u("2024-03-13T13:30")]
    # The 45m grid restarts at each open (09:30 local, 13:30 UTC after the change).
    m45 = {b.time for b in everything if b.interval is Interval.M45 and b.time.date().day == 11}
    assert m45 and m45 <= {u("2024-03-11T13:30") + timedelta(minutes=45 * k) for k in range(9)}


def test_late_ticks_are_dropped_and_counted():
    agg = BarAggregator("NASDAQ:AAPL", NY)
    base = u("2024-07-16T14:00").timestamp()
    feed(agg, [(base + 5, 10.0, 1.0), (base + 65, 11.0, 1.0)])  # 10:00 and 10:01 local
    assert agg.on_tick_values(base + 30, 99.0, 5.0) == []  # belongs to the finished 10:00 minute
    assert agg.on_tick_values(base + 60, 12.0, 1.0) == []  # same minute as the live bar: fine
    assert agg.late_ticks == 1
    bars = agg.current_bars()
    assert bars[Interval.M1].time == u("2024-07-16T14:01")
    assert (bars[Interval.M1].open, bars[Interval.M1].close, bars[Interval.M1].volume) == (11.0, 12.0, 2.0)
    # The late tick's price never reached any interval.
    assert all(b.high < 99.0 for b in bars.values())
    assert bars[Interval.H1].time == u("2024-07-16T13:30")
    assert (bars[Interval.H1].open, bars[Interval.H1].high, bars[Interval.H1].volume) == (10.0, 12.0, 3.0)


def test_close_due_closes_quiet_bars_at_the_session_close():
    agg = BarAggregator("NASDAQ:AAPL", NY)
    # Friday 2024-05-31 is the last session of the week and of the month.
    feed(agg, [(u("2024-05-31T19:58:30").timestamp(), 10.0, 1.0),
               (u("2024-05-31T19:59:30").timestamp(), 10.5, 2.0)])
    # (the 19:58 minute was completed by the 19:59 tick; nothing else ends before 16:00 local)
    assert agg.close_due(u("2024-05-31T19:59:59")) == []
    closed = agg.close_due(u("2024-05-31T20:00"))
    assert {b.interval for b in closed} == set(ALL_INTERVALS)
    assert [b.time for b in closed] == sorted(b.time for b in closed)
    by_interval = {b.interval: b for b in closed}
    assert by_interval[Interval.M1].time == u("2024-05-31T19:59")
    assert by_interval[Interval.H1].time == u("2024-05-31T19:30")
    assert by_interval[Interval.D1].time == u("2024-05-31T13:30")
    assert by_interval[Interval.W1].time == u("2024-05-27T13:30")
    assert by_interval[Interval.MN1].time == u("2024-05-01T13:30")
    assert by_interval[Interval.MN1].volume == 3.0 and by_interval[Interval.MN1].close == 10.5
    assert agg.current_bars() == {}
    assert agg.close_due(u("2024-06-03T20:00")) == []  # closing twice closes nothing twice
    # A straggler from the closed session is late, not a second bar under the same key.
    assert agg.on_tick_values(u("2024-05-31T19:59:50").timestamp(), 10.7, 1.0) == []
    assert agg.late_ticks == 1
    # The next session starts clean.
    assert agg.on_tick_values(u("2024-06-03T13:30:01").timestamp(), 11.0, 1.0) == []
    assert agg.current_bars()[Interval.MN1].time == u("2024-06-03T13:30")


def test_close_due_before_the_end_keeps_coarser_bars_open():
    agg = BarAggregator("BINANCE:BTCUSDT")
    feed(agg, [(u("2024-07-16T10:00:10").timestamp(), 5.0, 1.0)])
    closed = agg.close_due(u("2024-07-16T10:03:00"))
    assert [(b.interval, b.time) for b in closed] == [
        (Interval.M1, u("2024-07-16T10:00")), (Interval.M3, u("2024-07-16T10:00"))
    ]
    assert set(agg.current_bars()) == set(ALL_INTERVALS) - {Interval.M1, Interval.M3}
    # More ticks in the same hour keep extending the hour bar that already holds the 10:00 minute.
    feed(agg, [(u("2024-07-16T10:20:00").timestamp(), 7.0, 2.0)])
    hour = agg.current_bars()[Interval.H1]
    assert (hour.time, hour.open, hour.high, hour.close, hour.volume) == (
        u("2024-07-16T10:00"), 5.0, 7.0, 7.0, 3.0)


def test_flush_returns_in_progress_bars_and_resets():
    agg = BarAggregator("BINANCE:BTCUSDT", intervals=[Interval.H1, Interval.D1])
    feed(agg, [(u("2024-07-16T10:00:10").timestamp(), 5.0, 1.0),
               (u("2024-07-16T10:30:10").timestamp(), 6.0, 1.0),
               (u("2024-07-16T11:00:10").timestamp(), 4.0, 1.0)])
    current = agg.current_bars()
    flushed = agg.flush()
    assert flushed == sorted(current.values(), key=lambda b: b.time)
    assert [(b.interval, b.time, b.open, b.low, b.close, b.volume) for b in flushed] == [
        (Interval.D1, u("2024-07-16T00:00"), 5.0, 4.0, 4.0, 3.0),
        (Interval.H1, u("2024-07-16T11:00"), 4.0, 4.0, 4.0, 1.0),
    ]
    assert agg.flush() == [] and agg.current_bars() == {}


def test_index_without_volume_keeps_none():
    agg = BarAggregator("SP:SPX", NY)
    t = u("2024-07-16T13:30").timestamp()
    done = feed(agg, [(t + 1, 5000.0, None), (t + 61, 5001.0, None), (t + 121, 5002.0, None)])
    assert done and all(b.volume is None for b in done)
    assert all(b.volume is None for b in agg.flush())
    # A volume on just some ticks sums those ticks only.
    agg = BarAggregator("SP:SPX", NY)
    feed(agg, [(t + 1, 5000.0, None), (t + 2, 5001.0, 3.0), (t + 3, 5002.0, None)])
    assert agg.current_bars()[Interval.M1].volume == 3.0


def test_only_requested_intervals_are_emitted():
    agg = BarAggregator("BINANCE:BTCUSDT", intervals=["1h", "4h"])
    ticks = random_ticks(u("2024-07-16T00:00"), u("2024-07-17T06:00"), seed=9)
    bars = feed(agg, ticks) + agg.flush()
    assert {b.interval for b in bars} == {Interval.H1, Interval.H4}
    for interval in (Interval.H1, Interval.H4):
        expected = pandas_bars(ticks, interval)
        assert [b.time for b in bars if b.interval is interval] == list(expected.index.to_pydatetime())


def test_tick_objects_and_bad_input():
    agg = BarAggregator("binance:btcusdt")
    assert agg.symbol == "BINANCE:BTCUSDT"
    assert agg.on_tick(Tick("BINANCE:BTCUSDT", u("2024-07-16T10:00:01"), 5.0, 1.0)) == []
    assert agg.current_bars()[Interval.M1].close == 5.0
    with pytest.raises(InvalidInputError, match="NASDAQ:AAPL"):
        agg.on_tick(Tick("NASDAQ:AAPL", u("2024-07-16T10:00:02"), 5.0))
    with pytest.raises(InvalidInputError, match="naive"):
        agg.on_tick(Tick("BINANCE:BTCUSDT", datetime(2024, 7, 16, 10, 0, 3), 5.0))
    live = u("2024-07-16T10:00:04").timestamp()
    later = u("2024-07-16T10:05:05").timestamp()  # would open a new minute
    for price in (math.nan, math.inf, -math.inf, None, "5.0"):
        for t in (live, later):
            with pytest.raises(InvalidInputError, match=f"price {price!r}"):
                agg.on_tick_values(t, price, 1.0)
    for volume in (-1.0, math.nan, math.inf, "1"):
        for t in (live, later):
            with pytest.raises(InvalidInputError, match=f"volume {volume!r}"):
                agg.on_tick_values(t, 5.0, volume)
    for t in (math.nan, math.inf, None):
        with pytest.raises(InvalidInputError, match=f"time {t!r}"):
            agg.on_tick_values(t, 5.0, 1.0)
    # Rejected ticks left the bar untouched.
    bar = agg.current_bars()[Interval.M1]
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (5.0, 5.0, 5.0, 5.0, 1.0)
    with pytest.raises(InvalidInputError, match="'2x'"):
        BarAggregator("BINANCE:BTCUSDT", intervals=["2x"])
    with pytest.raises(InvalidInputError, match="'BAD SYMBOL'"):
        BarAggregator("BAD SYMBOL")


# --- Property: aggregation equals direct grouping ---------------------------------------------

CME = Session.parse("1700-1600:23456", "America/Chicago")


@settings(max_examples=60, deadline=None)
@given(
    session=st.sampled_from([SESSION_24X7, NY, CME]),
    start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2026, 1, 1), timezones=st.just(UTC)),
    gaps=st.lists(st.floats(min_value=0.0, max_value=20_000.0), min_size=1, max_size=80),
    prices=st.lists(st.floats(min_value=1.0, max_value=1000.0), min_size=80, max_size=80),
    with_volume=st.booleans(),
)
def test_aggregation_equals_grouping_by_bar_start(session, start, gaps, prices, with_volume):
    t = start.timestamp()
    ticks = []
    for gap, price in zip(gaps, prices):
        t += gap
        ticks.append((t, price, 1.5 if with_volume else None))
    agg = BarAggregator("TEST:X", session)
    bars = feed(agg, ticks) + agg.flush()
    in_session = [tk for tk in ticks if bar_start(datetime.fromtimestamp(tk[0], UTC), Interval.M1, session)]
    assert agg.out_of_session_ticks == len(ticks) - len(in_session)
    for interval in ALL_INTERVALS:
        assert as_tuples(bars, interval) == grouped_by_alignment(in_session, interval, session)
