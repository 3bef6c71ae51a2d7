"""Real captured frames through the client's parsers: bars, metadata, errors, quote ticks."""

from datetime import UTC, datetime

import pytest

from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.tradingview.codec import decode_message, encode_message
from pocketquant_pipelines.tradingview.connection import protocol_error_from
from pocketquant_pipelines.tradingview.errors import (
    AuthError,
    CriticalError,
    SeriesError,
    SymbolNotFoundError,
)
from pocketquant_pipelines.tradingview.history import (
    error_from_frame,
    metadata_from,
    rows_to_bars,
    series_rows,
    symbol_descriptor,
)
from pocketquant_pipelines.tradingview.quotes import SymbolQuote
from tests.tradingview.test_real_frames import RECORDS

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def frames(index: int):
    return decode_message(RECORDS[index]["raw"])


def test_daily_history_bars_exact_values():
    (frame,) = frames(16)
    bars, rejected = rows_to_bars("SP:SPX", Interval.D1, series_rows(frame.params[1]["sds_7"]))
    assert rejected == 0 and len(bars) == 368
    first = bars[0]
    assert first.time == datetime(2021, 12, 22, 14, 30, tzinfo=UTC)  # 09:30 New York, not midnight
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        4650.36, 4697.67, 4645.53, 4696.57, 1798000000.0)
    assert [b.time for b in bars] == sorted({b.time for b in bars})


def test_five_element_rows_have_no_volume():
    (frame,) = frames(15)
    bars, rejected = rows_to_bars("NASDAQ:NDX", Interval.M1, series_rows(frame.params[1]["sds_3"]))
    assert rejected == 0 and len(bars) == 2637
    assert all(b.volume is None for b in bars)
    assert bars[0].time == datetime.fromtimestamp(1685984640, UTC) and bars[0].close == 14.88


def test_sentinel_volume_and_bad_rows():
    rows = [[1700000000.0, 1, 2, 0.5, 1.5, 1e100], [1700000060.0, 1, 0.5, 2, 1.5, 3.0], [1700000120.0, 1]]
    bars, rejected = rows_to_bars("X:Y", Interval.M1, rows)
    assert [b.volume for b in bars] == [None] and rejected == 2


def test_symbol_resolved_metadata():
    (spx,) = frames(9)
    meta = metadata_from("SP:SPX", spx.params[2])
    assert (meta.description, meta.type, meta.currency, meta.timezone, meta.session, meta.pricescale) == (
        "S&P 500", "index", "USD", "America/New_York", "0930-1610", 100)
    assert meta.has_volume
    (rut,) = frames(10)
    assert metadata_from("TVC:RUT", rut.params[2]).has_volume is False  # visible_plots_set "ohlc"


def test_errors_carry_the_servers_words():
    critical, _loading, symbol_error, series_error = frames(68)
    err = error_from_frame(symbol_error, "NASDAQ:NOPE", Interval.D1)
    assert isinstance(err, SymbolNotFoundError) and err.reason == "invalid symbol"
    assert "NASDAQ:NOPE" in str(err) and "invalid symbol" in str(err)
    err = error_from_frame(series_error, "NASDAQ:NOPE", Interval.D1)
    assert isinstance(err, SymbolNotFoundError) and err.reason == "resolve error"
    err = error_from_frame(critical, "NASDAQ:AAPL")
    assert isinstance(err, CriticalError) and "invalid_parameters" in err.reason
    (create_series_error,) = frames(62)
    err = error_from_frame(create_series_error, "CBOT_MINI:YM1!", Interval.M1)
    assert isinstance(err, CriticalError) and err.reason.startswith("invalid parameters")
    (entitlement,) = decode_message(encode_message("series_error", ["cs_1", "sds_1", "s1", "seconds_not_entitled"]))
    err = error_from_frame(entitlement, "BINANCE:BTCUSDT", "1S")
    assert isinstance(err, SeriesError) and err.reason == "seconds_not_entitled"
    (bad_token,) = frames(59)
    err = protocol_error_from(bad_token)
    assert isinstance(err, AuthError) and err.reason == "bad auth token"


def test_descriptor_is_equals_plus_json():
    assert symbol_descriptor("CME_MINI:NQ1!", "extended") == (
        '={"adjustment":"splits","session":"extended","symbol":"CME_MINI:NQ1!"}')


def _apply(quote: SymbolQuote, *indexes: int, symbol: str) -> list:
    ticks = []
    for index in indexes:
        for frame in frames(index):
            if frame.params[1]["n"] == symbol:
                quote.merge(frame.params[1]["v"])
        tick = quote.next_tick(NOW)
        if tick:
            ticks.append(tick)
    return ticks


def test_partial_qsd_merge_lp_time_then_price():
    quote = SymbolQuote("BITSTAMP:BTCUSD")
    ticks = _apply(quote, 46, 47, symbol="BITSTAMP:BTCUSD")
    assert len(ticks) == 1  # lp_time alone is not a tick
    tick = ticks[0]
    assert tick.time == datetime.fromtimestamp(1558466820, UTC)  # lp_time from the earlier frame
    assert tick.price == pytest.approx(8004.77) and tick.cumulative_volume == pytest.approx(6219.92213521)
    assert tick.volume == 0.0  # the first observation only sets the baseline
    assert quote.fields["ch"] == pytest.approx(-0.87) and quote.fields["lp_time"] == 1558466820


def test_bid_ask_partial_then_snapshot_merges():
    quote = SymbolQuote("BITSTAMP:BTCUSD")
    (tick,) = _apply(quote, 58, symbol="BITSTAMP:BTCUSD")
    assert (tick.bid, tick.ask, tick.price) == (7996.0, pytest.approx(8004.8), pytest.approx(8004.8))
    assert quote.fields["high_price"] is not None and quote.fields["ask_size"] == 0


def test_per_tick_volume_is_the_cumulative_delta():
    quote = SymbolQuote("NASDAQ:AAPL")
    first, second = _apply(quote, 51, 52, symbol="NASDAQ:AAPL")
    assert (first.volume, second.volume) == (0.0, 10.0)  # 20932619 -> 20932629 (notes §4.4)
    assert second.cumulative_volume == 20932629
    # the same snapshot again (a resubscription after a reconnect) is not a tick
    assert _apply(quote, 52, symbol="NASDAQ:AAPL") == []


def test_a_falling_real_cumulative_volume_is_a_session_reset():
    # The captured AAPL updates (records 51-52: 20932619 -> 20932629, per-tick 10), then the
    # same real frame as the next session would send it: its cumulative volume restarted at
    # 1200. That is the volume traded since the reset, never 1200 - 20932629.
    quote = SymbolQuote("NASDAQ:AAPL")
    first, second = _apply(quote, 51, 52, symbol="NASDAQ:AAPL")
    assert second.volume == 10.0
    (frame,) = frames(52)
    next_session = {**frame.params[1], "v": {**frame.params[1]["v"], "lp": 188.0, "volume": 1200}}
    (reset_frame,) = decode_message(encode_message("qsd", [frame.params[0], next_session]))
    quote.merge(reset_frame.params[1]["v"])
    reset = quote.next_tick(NOW)
    assert reset.volume == 1200.0 and reset.cumulative_volume == 1200 and quote.resets == 1
    quote.merge({"lp": 188.01, "volume": 1450})
    assert quote.next_tick(NOW).volume == 250.0  # deltas again, from the new baseline
    assert quote.resets == 1


def test_index_volume_sentinel_gives_no_volume():
    quote = SymbolQuote("NASDAQ:NDX")
    (tick,) = _apply(quote, 3, symbol="NASDAQ:NDX")
    assert tick.volume is None and tick.cumulative_volume is None
    assert tick.time == datetime.fromtimestamp(1686427872, UTC)


def test_session_reset_and_volume_only_ticks():
    quote = SymbolQuote("X:Y")
    quote.merge({"lp": 10.0, "volume": 100.0, "lp_time": 1})
    assert quote.next_tick(NOW).volume == 0.0
    quote.merge({"volume": 130.0})
    vol_only = quote.next_tick(NOW)
    assert vol_only.volume == 30.0 and vol_only.price == 10.0
    quote.merge({"volume": 5.0, "lp": 10.5})  # daily reset: 5 traded since
    reset = quote.next_tick(NOW)
    assert reset.volume == 5.0 and quote.resets == 1
    quote.merge({"volume": 7.0})
    assert quote.next_tick(NOW).volume == 2.0
    quote.merge({"ch": 1.0, "lp_time": 2})
    assert quote.next_tick(NOW) is None


def test_no_lp_no_tick_and_receive_time_fallback():
    quote = SymbolQuote("TVC:DE10Y")
    for frame in frames(1):
        quote.merge(frame.params[1]["v"])
    assert quote.next_tick(NOW) is None  # that snapshot carries no lp
    quote.merge({"lp": 2.5})
    assert quote.next_tick(NOW).time == NOW


# --- the fast bar path must accept and reject exactly what the Bar contract does -------------

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pocketquant_pipelines.errors import InvalidBarError  # noqa: E402
from pocketquant_pipelines.market.bars import Bar  # noqa: E402
from pocketquant_pipelines.market.timeutil import from_epoch  # noqa: E402
from pocketquant_pipelines.tradingview.codec import sentinel_to_none  # noqa: E402

_values = (st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**6, 10**6)
           | st.sampled_from([1e100, -1e100, 0.0, 1.5, 2.5, True, None, "1.0"]))
_rows = st.lists(
    st.one_of(
        st.tuples(st.floats(0, 4e9), _values, _values, _values, _values).map(list),
        st.tuples(st.floats(0, 4e9), _values, _values, _values, _values, _values).map(list),
        st.lists(_values, max_size=4),
    ),
    max_size=30,
)


def _contract(rows):
    bars, rejected = [], 0
    for v in rows:
        try:
            volume = sentinel_to_none(v[5]) if len(v) > 5 else None
            bars.append(Bar("X:Y", Interval.M1, from_epoch(v[0]), v[1], v[2], v[3], v[4], volume))
        except (InvalidBarError, IndexError, TypeError, ValueError, OverflowError, OSError):
            rejected += 1
    return bars, rejected


@given(_rows)
def test_fast_bar_path_agrees_with_the_bar_contract(rows):
    fast, fast_rejected = rows_to_bars("X:Y", Interval.M1, rows)
    slow, slow_rejected = _contract(rows)
    assert fast == slow and fast_rejected == slow_rejected
    assert all(type(b.open) is float and b.time.tzinfo is UTC for b in fast)


@given(st.lists(st.tuples(st.integers(0, 10**9), st.floats(0.01, 1e6), st.floats(0, 1e6), st.floats(0, 1e6),
                          st.floats(0, 1e9)), max_size=20))
def test_fast_bar_path_on_well_formed_rows(specs):
    rows = [[t, lo + d1 / 2, lo + d1, lo, lo + d1 / 3, vol] for t, lo, d1, _, vol in specs]
    fast, rejected = rows_to_bars("X:Y", Interval.M1, rows)
    assert (fast, rejected) == _contract(rows)


# --- the columnar decode (what fetches return) must agree with the Bar contract too ----------

import math  # noqa: E402

import numpy as np  # noqa: E402

from pocketquant_pipelines.market.bars import bars_to_frame  # noqa: E402
from pocketquant_pipelines.tradingview.history import rows_to_columns  # noqa: E402


def _as_fetched(rows):
    """What fetch_on_connection hands to rows_to_columns: rows with a numeric time, one per
    bar key (start time to the microsecond; the first wins), ascending."""
    by_time = {}
    for v in rows:
        if v and type(v[0]) in (int, float) and v[0] == v[0]:
            key = v[0] * 1e6
            by_time.setdefault(round(key) if math.isfinite(key) else key, v)
    return [by_time[t] for t in sorted(by_time)]


@given(_rows)
def test_columnar_decode_agrees_with_the_bar_contract(rows):
    rows = _as_fetched(rows)
    cols, rejected = rows_to_columns("X:Y", Interval.M1, rows)
    assert (cols.to_bars(), rejected) == _contract(rows)


def test_columnar_decode_keeps_one_row_per_microsecond_key():
    rows = [[60.0, 1, 2, 0.5, 1.5, 3.0], [60.0000000001, 1, 2, 0.5, 1.25, 4.0], [120.0, 1, 2, 0.5, 1.5, 5.0]]
    cols, rejected = rows_to_columns("X:Y", Interval.M1, rows)
    assert rejected == 0 and cols.close.tolist() == [1.5, 1.5] and cols.volume.tolist() == [3.0, 5.0]


_good_row = st.tuples(st.floats(0.01, 1e6), st.floats(0, 1e6), st.floats(0, 1e9)).map(
    lambda x: [x[0] + x[1] / 2, x[0] + x[1], x[0], x[0] + x[1] / 3, x[2]])


@given(st.lists(_good_row, min_size=1, max_size=40), st.lists(st.tuples(st.integers(0, 39), _values), max_size=3),
       st.booleans())
def test_columnar_decode_of_uniform_pages_with_a_few_bad_values(good, damage, no_volume):
    # uniform pages take the numpy path; a damaged value must be rejected (or, for a volume
    # sentinel, turned into None) exactly as the per-row contract does
    rows = [[60.0 * i] + r[: 4 if no_volume else 5] for i, r in enumerate(good)]
    for i, value in damage:
        row = rows[i % len(rows)]
        row[1 + i % (len(row) - 1)] = value
    cols, rejected = rows_to_columns("X:Y", Interval.M1, rows)
    assert (cols.to_bars(), rejected) == _contract(rows)
    assert cols.to_frame().equals(bars_to_frame(cols.to_bars()))


@pytest.mark.parametrize("record, symbol, interval, series, volumes", [
    (16, "SP:SPX", Interval.D1, "sds_7", True), (15, "NASDAQ:NDX", Interval.M1, "sds_3", False),
])
def test_columnar_decode_of_real_timescale_updates(record, symbol, interval, series, volumes):
    (frame,) = frames(record)
    rows = series_rows(frame.params[1][series])
    cols, rejected = rows_to_columns(symbol, interval, rows)
    assert rejected == 0 and cols.to_bars() == rows_to_bars(symbol, interval, rows)[0]
    assert (~np.isnan(cols.volume)).all() if volumes else np.isnan(cols.volume).all()


def test_columnar_decode_rejects_each_row_with_an_impossible_time():
    rows = [[0.0, 1, 2, 0.5, 1.5, 1.0], [1e300, 1, 2, 0.5, 1.5, 1.0], [2e300, 1, 2, 0.5, 1.5, 1.0]]
    cols, rejected = rows_to_columns("X:Y", Interval.M1, rows)
    assert (len(cols), rejected) == (1, 2)
