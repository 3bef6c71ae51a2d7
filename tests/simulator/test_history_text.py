"""History frames composed from cached fragments (simulator/history_text.py) are byte-identical
to ``json_text`` of the reference dicts (payloads.series_payload / timescale_marks): cold, warm,
request_more_data pages, a forming last bar, stale values, tick marks, and bounded memory."""

import gc
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from pocketquant_pipelines.market.bar_columns import BarColumns
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.sessions import bar_starts_between
from tradingview_simulator import SyntheticMarket
from tradingview_simulator import history_text as ht
from tradingview_simulator.connection_state import SeriesState
from tradingview_simulator.payloads import (
    json_text,
    series_payload,
    timescale_marks,
    window_bars,
)

# Tuesday after the US DST switch (8 March): 1m AAPL windows reach back into EST.
NOW = int(datetime(2026, 3, 10, 15, 0, tzinfo=UTC).timestamp())
SYMBOLS = ["BINANCE:BTCUSDT", "NASDAQ:AAPL", "SP:SPX", "CME_MINI:NQ1!", "KRX:005930"]
INTERVALS = [Interval.M1, Interval.M45, Interval.H4, Interval.D1, Interval.W1, Interval.MN1]


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(seed=42)


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setattr(ht, "CACHE", ht.FragmentCache())


def series_for(model, interval: Interval, bars: BarColumns) -> SeriesState:
    # Non-ASCII ids: the server sends raw UTF-8 (ensure_ascii=False).
    s = SeriesState("sé_1", "tü😀", "sym", model, interval, len(bars))
    s.loaded = len(bars)
    if len(bars):
        s.oldest, s.last_time, s.last_index = int(bars.time[0]), int(bars.time[-1]), len(bars) - 1
    return s


def check(series: SeriesState, bars: BarColumns, first: int = 0) -> None:
    fast = ht.history_params(series, bars, first)
    reference = (json_text(series_payload(series, bars, first)),
                 json_text(timescale_marks(series.model, bars, first, series.interval)))
    assert fast == reference


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_history_pages_warm_and_forming_bars_match_the_reference(market, symbol):
    model = market.model(symbol)
    for interval in INTERVALS:
        bars = window_bars(model, interval, NOW, 5000, 2000, None, None)
        series = series_for(model, interval, bars)
        check(series, bars)                      # cold
        check(series, bars)                      # warm: all but the last bar cached
        oldest = series.oldest
        for _ in range(2):                       # request_more_data pages, indexes from 0
            page = model.bars(interval, oldest, 700)
            if not len(page):
                break
            series.loaded += len(page)
            check(series, page)
            oldest = int(page.time[0])
        later = window_bars(model, interval, NOW + 150, 5000, 2000, None, None)
        check(series_for(model, interval, later), later)  # a new bar, the forming one changed
        past = window_bars(model, interval, NOW, 5000, 300, int(bars.time[-40]), None)
        check(series_for(model, interval, past), past)    # a bar_count window in the past
        check(series_for(model, interval, past), past, first=17)


def test_the_dst_switch_is_inside_the_aapl_and_nq_windows(market):
    for symbol, interval in (("NASDAQ:AAPL", Interval.M1), ("CME_MINI:NQ1!", Interval.M45)):
        model = market.model(symbol)
        times = window_bars(model, interval, NOW, 5000, 2000, None, None).time
        zone = ZoneInfo(model.spec.timezone)
        first, last = (datetime.fromtimestamp(int(t), zone).utcoffset() for t in (times[0], times[-1]))
        assert first != last


def test_empty_batch_and_a_single_bar(market):
    model = market.model("NASDAQ:AAPL")
    empty = BarColumns.empty(model.spec.symbol, Interval.M1)
    series = series_for(model, Interval.M1, empty)
    check(series, empty)
    series.loaded = 0
    check(series, empty)
    one = window_bars(model, Interval.M1, NOW, 5000, 1, None, None)
    check(series_for(model, Interval.M1, one), one)


def test_a_cached_bar_whose_values_changed_is_not_reused(market):
    model = market.model("BINANCE:BTCUSDT")
    bars = window_bars(model, Interval.M1, NOW, 5000, 500, None, None)
    series = series_for(model, Interval.M1, bars)
    check(series, bars)
    changed = BarColumns(bars.symbol, bars.interval, bars.time, bars.open, bars.high, bars.low,
                         bars.close.copy(), bars.volume.copy())
    changed.close[100] += 7 / model.spec.pricescale
    changed.volume[200] += model.spec.volume_unit
    check(series, changed)
    check(series, bars)  # and the original values are right again


def test_future_tick_marks_match_the_reference(market):
    for symbol in ("NASDAQ:AAPL", "CME_MINI:NQ1!", "BINANCE:BTCUSDT"):
        model = market.model(symbol)
        for interval in (Interval.M1, Interval.H1, Interval.D1, Interval.W1, Interval.MN1):
            # Across the autumn switch, as request_more_tickmarks would ask near it.
            after = datetime(2026, 10, 28, tzinfo=UTC)
            starts = bar_starts_between(after, after + timedelta(days=400), interval, model.session)[:1000]
            times = np.asarray([int(t.timestamp()) for t in starts], dtype=np.int64)
            t = times.astype(np.float64)
            future = BarColumns(model.spec.symbol, interval, t, t, t, t, t, t)
            fast = ht.future_marks_text(model, times, 1234, interval)
            assert fast == json_text(timescale_marks(model, future, 1234, interval))


def test_frame_text_is_the_stamped_json():
    params = ["cs_ü😀", {"s1": {"node": "n", "s": [{"i": 0, "v": [1.0, 1e100]}]}}, {"index": 0}]
    for now in (1773154800.0, 1773154800.999, 1773154800.0005):
        fast = ht.frame_text("timescale_update", [json_text(p) for p in params], now)
        assert fast == json_text({"m": "timescale_update", "p": params, "t": int(now), "t_ms": int(now * 1000)})


def test_memory_stays_bounded_and_output_right(market, monkeypatch):
    monkeypatch.setattr(ht, "MAX_ROWS", 3000)
    monkeypatch.setattr(ht, "MAX_ENTRY_ROWS", 1500)
    for symbol in SYMBOLS[:3]:
        model = market.model(symbol)
        for interval in (Interval.M1, Interval.M5):
            bars = window_bars(model, interval, NOW, 5000, 2000, None, None)
            series = series_for(model, interval, bars)
            check(series, bars)
            assert all(len(e) <= 1500 for e in ht.CACHE.entries.values())
            assert ht.CACHE.rows() <= 3000
            check(series, bars)


def test_entries_of_a_collected_model_are_dropped():
    model = SyntheticMarket(seed=3).model("BINANCE:BTCUSDT")
    bars = window_bars(model, Interval.M5, NOW, 5000, 300, None, None)
    check(series_for(model, Interval.M5, bars), bars)
    assert ht.CACHE.rows() == 299  # the last, maybe forming, bar is not stored
    del model, bars
    gc.collect()
    other = SyntheticMarket(seed=4).model("SP:SPX")
    bars = window_bars(other, Interval.M5, NOW, 5000, 10, None, None)
    check(series_for(other, Interval.M5, bars), bars)
    assert ht.CACHE.rows() == 9
