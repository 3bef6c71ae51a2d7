"""One conformance suite, run unchanged against every backend of both storage roles.

Bar store: ``sqlite`` (embedded, always) and MongoDB over a real socket, in a throwaway database
dropped afterwards: ``mongo-wire-secantusdb`` (SecantusDB, a MongoDB-wire-compatible server, not
mongod, started by tests/storage/conftest.py), or ``mongo-real`` when POCKETQUANT_TEST_MONGODB_URL
points at a server.
Live cache: ``embedded`` (always) and ``redis`` (a private redis-server from tests/conftest.py).
"""

import math
import re
import time
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pocketquant_pipelines.errors import (
    InvalidInputError, InvalidIntervalError, InvalidSymbolError, UnknownSymbolError,
)
from pocketquant_pipelines.market.bars import bars_from_frame
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.storage.bars import BarStore, Source, UpsertResult
from pocketquant_pipelines.storage.durable import DurableStore
from pocketquant_pipelines.storage.frames import BARS_SCHEMA
from pocketquant_pipelines.storage.ingest import IngestLog
from pocketquant_pipelines.storage.live import (
    BARS_PATTERN, QUOTES_PATTERN, LiveCache, bar_channel, quote_channel,
)
from pocketquant_pipelines.storage.registry import SymbolInfo, SymbolRegistry
from tests.storage.helpers import T0, bar, series
from tests.storage.mongo_wire import MONGO_BACKEND_ID



# --- fixtures -------------------------------------------------------------------------------
@pytest.fixture(params=[
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mongo", id=MONGO_BACKEND_ID),
])
def store(request, tmp_path):
    if request.param == "sqlite":
        from pocketquant_pipelines.storage.sqlite_store import SQLiteBarStore

        s = SQLiteBarStore(tmp_path / "bars.sqlite3")
        yield s
        s.close()
    else:
        from pocketquant_pipelines.storage.mongo_store import MongoBarStore

        client = request.getfixturevalue("mongo_client")
        s = MongoBarStore(client=client, database=request.getfixturevalue("mongo_database"))
        yield s
        s.close()


@pytest.fixture(params=["embedded", "redis"])
def cache(request, tmp_path):
    if request.param == "embedded":
        from pocketquant_pipelines.storage.embedded_cache import EmbeddedLiveCache

        c = EmbeddedLiveCache(tmp_path / "live.sqlite3")
    else:
        from pocketquant_pipelines.storage.redis_cache import RedisLiveCache

        c = RedisLiveCache(url=request.getfixturevalue("redis_server"))
    yield c
    c.close()


AAPL = "NASDAQ:AAPL"
BTC = "BINANCE:BTCUSDT"


def closes(frame: pd.DataFrame) -> list[float]:
    return frame["close"].tolist()


def _rows(store, symbol=AAPL, interval="1m", stream=False) -> list[tuple]:
    frame = (store.read_stream_bars if stream else store.read_bars)(symbol, interval)
    return [(t.to_pydatetime(), r["close"], r["source"], bool(r["partial"])) for t, r in frame.iterrows()]


def _assert_frame_shape(frame: pd.DataFrame) -> None:
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.name == "time"
    assert str(frame.index.tz) == "UTC"
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "source", "partial"]
    for col in ("open", "high", "low", "close", "volume"):
        assert frame[col].dtype == np.float64, col
    assert pd.api.types.is_string_dtype(frame["source"])
    assert frame["partial"].dtype == bool


QUOTE = {"symbol": AAPL, "time": T0.isoformat(), "price": 190.5, "volume": 3.0, "bid": 190.4,
         "ask": 190.6, "cumulative_volume": 1000.0}


class TestBarStore:
    """BarStore (storage/bars.py): bars, the stream shadow copy, history coverage."""

    def test_the_backend_implements_the_protocol(self, store):
        assert BarStore in type(store).__mro__


    # --- upsert semantics -------------------------------------------------------------------------
    def test_same_bars_twice_store_one_row_each(self, store):
        bars = series(AAPL, "1m", 100)
        assert store.upsert_bars(bars) == UpsertResult(100, 0, 0)
        assert store.upsert_bars(bars) == UpsertResult(0, 0, 100)
        assert store.count_bars(AAPL, "1m") == 100
        frame = store.read_bars(AAPL, "1m")
        assert len(frame) == 100
        assert frame.index.is_unique and frame.index.is_monotonic_increasing


    def test_overlapping_batch_updates_changed_values_and_counts_them(self, store):
        store.upsert_bars(series(AAPL, "5m", 100))
        overlap = series(AAPL, "5m", 100, start=T0 + 50 * timedelta(minutes=5), base=100 + 50 * 0.5)
        changed = {bar(AAPL, "5m", b.time, b.close + 7.0) for b in overlap[:10]}
        batch = [*sorted(changed, key=lambda b: b.time), *overlap[10:]]
        assert store.upsert_bars(batch) == UpsertResult(inserted=50, updated=10, unchanged=40)
        frame = store.read_bars(AAPL, "5m")
        assert len(frame) == 150
        for b in changed:
            assert frame.loc[b.time, "close"] == b.close
            assert frame.loc[b.time, "high"] == b.high
        assert frame["close"].iloc[-1] == overlap[-1].close


    def test_columns_upsert_like_the_same_bars(self, store):
        # a history fetch hands the store BarColumns, not Bars: same rows, same counts, same log
        from pocketquant_pipelines.market.bar_columns import BarColumns

        bars = series(AAPL, "1m", 60, volume=None)[:30] + series(AAPL, "1m", 60)[30:]
        cols = BarColumns.from_bars(AAPL, Interval.M1, bars)
        assert store.upsert_bars(cols) == UpsertResult(60, 0, 0)
        assert store.upsert_bars(bars) == UpsertResult(0, 0, 60)
        frame = store.read_bars(AAPL, "1m")
        assert bars_from_frame(AAPL, Interval.M1, frame) == bars
        assert frame["source"].eq("history").all() and not frame["partial"].any()
        changed = BarColumns.from_arrays(AAPL, Interval.M1, cols.time[:5], cols.open[:5], cols.high[:5] + 1,
                                         cols.low[:5], cols.close[:5], cols.volume[:5])
        # the stream may not replace what history wrote: refused, nothing logged
        entries = len(store.ingest_since(None).entries)
        assert store.upsert_bars(changed, source="stream") == UpsertResult(0, 0, 0, refused=5)
        assert len(store.ingest_since(None).entries) == entries
        assert store.upsert_bars(changed) == UpsertResult(0, 5, 0)
        last = store.ingest_since(None).entries[-1]
        assert (last.count, last.source.value, last.first_time, last.last_time) == (5, "history", bars[0].time, bars[4].time)
        assert store.upsert_bars(BarColumns.empty(AAPL, Interval.M1)) == UpsertResult()


    def test_duplicate_keys_inside_one_batch_keep_the_last(self, store):
        first, second = bar(AAPL, "1h", T0, 10.0), bar(AAPL, "1h", T0, 11.0)
        assert store.upsert_bars([first, second]) == UpsertResult(1, 0, 0)
        assert closes(store.read_bars(AAPL, "1h")) == [11.0]


    def test_one_batch_with_several_series(self, store):
        batch = series(AAPL, "1m", 5) + series(BTC, "1m", 7) + series(AAPL, "1d", 3)
        assert store.upsert_bars(batch[::-1]) == UpsertResult(15, 0, 0)  # order does not matter
        assert store.count_bars(AAPL, "1m") == 5
        assert store.count_bars(BTC, "1m") == 7
        assert store.count_bars(AAPL, "1d") == 3


    def test_bars_spread_far_apart_keep_their_keys(self, store):
        # Far-apart times (beyond any internal window size), written out of order and in pieces.
        bars = series(AAPL, "1m", 40, step=timedelta(minutes=997))
        assert store.upsert_bars(bars[20:]) == UpsertResult(20, 0, 0)
        assert store.upsert_bars(bars[::-1]) == UpsertResult(20, 0, 20)
        frame = store.read_bars(AAPL, "1m")
        assert list(frame.index.to_pydatetime()) == [b.time for b in bars]
        mid = bars[17].time
        assert len(store.read_bars(AAPL, "1m", start=mid)) == 23
        assert closes(store.read_bars(AAPL, "1m", end=mid, limit=2)) == [bars[15].close, bars[16].close]


    def test_symbol_and_interval_are_normalised_on_write(self, store):
        store.upsert_bars([bar("nasdaq:aapl", "60", T0, 10.0)])
        assert store.count_bars(AAPL, "1h") == 1
        assert closes(store.read_bars("nasdaq:aapl", Interval.H1)) == [10.0]


    def test_partial_row_is_replaced_by_a_later_write(self, store):
        b = bar(AAPL, "1m", T0, 10.0)
        assert store.upsert_bars([b], source=Source.STREAM, partial=True) == UpsertResult(1, 0, 0)
        frame = store.read_bars(AAPL, "1m")
        assert frame["partial"].tolist() == [True]
        assert store.upsert_bars([b], source=Source.STREAM, partial=True) == UpsertResult(0, 0, 1)
        # Same values, final this time: the partial row is replaced and that counts as an update.
        assert store.upsert_bars([b], source=Source.STREAM) == UpsertResult(0, 1, 0)
        assert store.read_bars(AAPL, "1m")["partial"].tolist() == [False]


    def test_stream_shadow_survives_a_history_overwrite(self, store):
        streamed = series(AAPL, "1m", 5, base=50.0)
        store.upsert_bars(streamed, source=Source.STREAM)
        store.upsert_bars(series(AAPL, "1m", 3, start=T0 + timedelta(hours=1)))  # history only
        history = [bar(AAPL, "1m", b.time, b.close + 1.0) for b in streamed]
        assert store.upsert_bars(history, source=Source.HISTORY) == UpsertResult(0, 5, 0)

        canonical = store.read_bars(AAPL, "1m")
        assert len(canonical) == 8
        assert closes(canonical)[:5] == [b.close for b in history]
        assert set(canonical["source"]) == {"history"}

        shadow = store.read_stream_bars(AAPL, "1m")
        assert closes(shadow) == [b.close for b in streamed]
        assert list(shadow["source"]) == ["stream"] * 5
        assert list(shadow.columns) == list(canonical.columns)
        assert len(store.read_stream_bars(AAPL, "1m", start=T0 + timedelta(minutes=3))) == 2


    def test_history_confirming_stream_values_takes_over_the_source(self, store):
        b = bar(AAPL, "1m", T0, 10.0)
        store.upsert_bars([b], source=Source.STREAM)
        # Equal values but a different writer: the canonical row now says history confirmed it.
        assert store.upsert_bars([b], source=Source.HISTORY) == UpsertResult(0, 1, 0)
        assert store.read_bars(AAPL, "1m")["source"].tolist() == ["history"]
        assert store.upsert_bars([b], source=Source.HISTORY) == UpsertResult(0, 0, 1)


    # --- precedence: history outranks the stream, complete outranks partial -----------------------
    def test_a_stream_write_never_replaces_history_but_its_shadow_records_it(self, store):
        history = series(AAPL, "1m", 4, base=100.0)
        store.upsert_bars(history)
        cursor = store.latest_ingest_cursor()
        streamed = [bar(AAPL, "1m", b.time, b.close + 3.0) for b in history[2:]]
        streamed.append(bar(AAPL, "1m", history[-1].time + timedelta(minutes=1), 200.0))  # a new key
        # complete and partial stream writes alike: the two history keys are refused
        assert store.upsert_bars(streamed, source=Source.STREAM) == UpsertResult(1, 0, 0, refused=2)
        assert store.upsert_bars(streamed[:2], source=Source.STREAM, partial=True) == \
            UpsertResult(0, 0, 0, refused=2)
        assert _rows(store) == [(b.time, b.close, "history", False) for b in history] + \
            [(streamed[-1].time, 200.0, "stream", False)]
        # what the stream said is kept for reconciliation, even where it was refused
        assert [(t, c) for t, c, _, _ in _rows(store, stream=True)] == [(b.time, b.close) for b in streamed]
        # refused keys are not logged: only the new key is
        entries = store.ingest_since(cursor).entries
        assert [(e.source.value, e.count, e.first_time, e.last_time) for e in entries] == \
            [("stream", 1, streamed[-1].time, streamed[-1].time)]


    def test_a_partial_bar_never_replaces_a_complete_one(self, store):
        b = bar(AAPL, "1h", T0, 10.0)
        store.upsert_bars([b], source=Source.STREAM)
        flushed = bar(AAPL, "1h", T0, 10.5)  # a later streamer saw only the bar's end
        assert store.upsert_bars([flushed], source=Source.STREAM, partial=True) == UpsertResult(refused=1)
        assert _rows(store, interval="1h") == [(T0, 10.0, "stream", False)]
        # the shadow follows the same rule among stream rows
        assert _rows(store, interval="1h", stream=True) == [(T0, 10.0, "stream", False)]


    def test_stream_rows_give_way_to_complete_bars_and_to_later_partials(self, store):
        b = bar(AAPL, "1m", T0, 10.0)
        assert store.upsert_bars([b], source=Source.STREAM, partial=True) == UpsertResult(1, 0, 0)
        # partial over partial: the later flush wins (it ends later in the bar)
        later = bar(AAPL, "1m", T0, 10.25)
        assert store.upsert_bars([later], source=Source.STREAM, partial=True) == UpsertResult(0, 1, 0)
        assert _rows(store) == [(T0, 10.25, "stream", True)]
        # a complete stream bar replaces a partial one, and another complete one
        assert store.upsert_bars([b], source=Source.STREAM) == UpsertResult(0, 1, 0)
        again = bar(AAPL, "1m", T0, 11.0)
        assert store.upsert_bars([again], source=Source.STREAM) == UpsertResult(0, 1, 0)
        assert _rows(store) == [(T0, 11.0, "stream", False)]
        assert _rows(store, stream=True) == [(T0, 11.0, "stream", False)]


    def test_history_replaces_partial_and_complete_stream_rows(self, store):
        store.upsert_bars([bar(AAPL, "1d", T0, 10.0)], source=Source.STREAM, partial=True)
        store.upsert_bars([bar(AAPL, "1d", T0 + timedelta(days=1), 11.0)], source=Source.STREAM)
        history = [bar(AAPL, "1d", T0, 20.0), bar(AAPL, "1d", T0 + timedelta(days=1), 21.0)]
        assert store.upsert_bars(history) == UpsertResult(0, 2, 0)
        assert _rows(store, interval="1d") == [(T0, 20.0, "history", False),
                                               (T0 + timedelta(days=1), 21.0, "history", False)]
        # history replaces history, too (a later sync corrects a bar)
        assert store.upsert_bars([bar(AAPL, "1d", T0, 20.5)]) == UpsertResult(0, 1, 0)
        assert _rows(store, interval="1d")[0] == (T0, 20.5, "history", False)


    def test_history_bars_cannot_be_partial(self, store):
        with pytest.raises(InvalidInputError, match="partial=True is for stream writes"):
            store.upsert_bars(series(AAPL, "1m", 2), source=Source.HISTORY, partial=True)
        assert store.count_bars(AAPL, "1m") == 0


    # --- history coverage -------------------------------------------------------------------------
    def test_history_coverage_counts_what_history_wrote_never_stream_bars(self, store):
        assert store.history_coverage(AAPL, "1m") is None
        store.upsert_bars(series(AAPL, "1m", 10, start=T0 + timedelta(minutes=100)), source=Source.STREAM)
        assert store.history_coverage(AAPL, "1m") is None  # the stream alone covers nothing
        assert store.record_history_start(AAPL, "1m", T0) is False

        history = series(AAPL, "1m", 50)
        store.upsert_bars(history[20:])
        cov = store.history_coverage(AAPL, "1m")
        assert (cov.first_time, cov.last_time, cov.bars, cov.history_start) == \
            (history[20].time, history[-1].time, 30, None)
        store.upsert_bars(history)  # 20 new keys, 30 unchanged
        store.upsert_bars(history[:5], source=Source.STREAM)  # refused: coverage unchanged
        # history taking over 4 stream keys counts them once
        store.upsert_bars(series(AAPL, "1m", 4, start=T0 + timedelta(minutes=100), base=7.0))
        cov = store.history_coverage("nasdaq:aapl", "1")
        assert (cov.first_time, cov.last_time, cov.bars) == (T0, T0 + timedelta(minutes=103), 54)
        assert cov.first_time.utcoffset() == timedelta(0)

        # a range: only history's keys inside it (e.g. the plausible ones of a poisoned store)
        part = store.history_coverage(AAPL, "1m", start=history[10].time, end=history[15].time)
        assert (part.first_time, part.last_time, part.bars) == (history[10].time, history[14].time, 5)
        assert store.history_coverage(AAPL, "1m", end=T0) is None
        assert store.history_coverage(AAPL, "1m", start=T0 + timedelta(minutes=104)) is None
        assert store.history_coverage(AAPL, "1m", start=T0, end=T0 + timedelta(days=1)).bars == 54

        assert store.record_history_start(AAPL, "1m", T0) is True
        assert store.history_coverage(AAPL, "1m").history_start == T0
        assert store.history_coverage(AAPL, "1m", end=history[3].time).history_start == T0
        assert store.history_coverage(BTC, "1m") is None and store.history_coverage(AAPL, "5m") is None

        store.delete_bars(AAPL, "1m")
        assert store.history_coverage(AAPL, "1m") is None
        store.upsert_bars(history[:3])
        cov = store.history_coverage(AAPL, "1m")
        assert (cov.bars, cov.history_start) == (3, None)  # a deleted series starts afresh


    def test_history_coverage_rejects_bad_input(self, store):
        with pytest.raises(InvalidSymbolError, match="'NOCOLON'"):
            store.history_coverage("NOCOLON", "1m")
        with pytest.raises(InvalidIntervalError, match="'1x'"):
            store.history_coverage(AAPL, "1x")
        with pytest.raises(InvalidInputError, match="naive"):
            store.history_coverage(AAPL, "1m", end=datetime(2024, 1, 1))
        with pytest.raises(InvalidInputError, match="naive"):
            store.record_history_start(AAPL, "1m", datetime(2024, 1, 1))


    # --- reads ------------------------------------------------------------------------------------
    def test_read_range_is_half_open_and_limit_keeps_the_latest(self, store):
        bars = series(AAPL, "15m", 50)
        store.upsert_bars(bars)
        t = [b.time for b in bars]
        frame = store.read_bars(AAPL, "15m", start=t[10], end=t[20])
        assert list(frame.index.to_pydatetime()) == t[10:20]
        assert closes(store.read_bars(AAPL, "15m", limit=3)) == [b.close for b in bars[-3:]]
        assert closes(store.read_bars(AAPL, "15m", start=t[10], end=t[20], limit=4)) == \
            [b.close for b in bars[16:20]]
        assert len(store.read_bars(AAPL, "15m", start=t[45])) == 5
        assert len(store.read_bars(AAPL, "15m", end=t[5])) == 5
        assert len(store.read_bars(AAPL, "15m", limit=1000)) == 50
        assert store.read_bars(AAPL, "15m", limit=0).empty
        assert store.read_bars(AAPL, "15m", start=t[20], end=t[10]).empty
        # A range between stored bars, and a start given in another zone (same instant).
        assert store.read_bars(AAPL, "15m", start=t[3] + timedelta(minutes=1), end=t[4]).empty
        from zoneinfo import ZoneInfo
        ny = t[10].astimezone(ZoneInfo("America/New_York"))
        assert store.read_bars(AAPL, "15m", start=ny).index[0] == pd.Timestamp(t[10])


    def test_frame_shape_and_dtypes(self, store):
        _assert_frame_shape(store.read_bars(AAPL, "1d"))  # empty: unknown series
        store.upsert_bars(series(AAPL, "1d", 4))
        store.upsert_bars(series(AAPL, "1d", 2, start=T0 + timedelta(days=10)), source=Source.STREAM,
                          partial=True)
        frame = store.read_bars(AAPL, "1d")
        _assert_frame_shape(frame)
        assert frame["source"].tolist() == ["history"] * 4 + ["stream"] * 2
        assert frame["partial"].tolist() == [False] * 4 + [True] * 2
        _assert_frame_shape(store.read_stream_bars(AAPL, "1d"))
        _assert_frame_shape(store.read_stream_bars(BTC, "1d"))
        _assert_frame_shape(store.read_bars(AAPL, "1d", start=T0 + timedelta(days=100)))


    def test_read_bars_table_is_the_arrow_form_of_read_bars(self, store):
        assert store.read_bars_table(AAPL, "1h").schema.equals(BARS_SCHEMA)  # empty: unknown series
        store.upsert_bars([bar(AAPL, "1h", T0, 10.0, volume=None),
                           bar(AAPL, "1h", T0 + timedelta(hours=1), 11.0, volume=0.0)])
        store.upsert_bars([bar(AAPL, "1h", T0 + timedelta(hours=2), 12.0)], source=Source.STREAM,
                          partial=True)
        table = store.read_bars_table(AAPL, "1h")
        assert table.schema.equals(BARS_SCHEMA)
        assert table.column("volume").to_pylist()[:2] == [None, 0.0]  # no volume is null
        assert table.column("source").to_pylist() == ["history", "history", "stream"]
        assert table.column("partial").to_pylist() == [False, False, True]
        pd.testing.assert_frame_equal(table.to_pandas().set_index("time"), store.read_bars(AAPL, "1h"))
        window = store.read_bars_table(AAPL, "1h", start=T0 + timedelta(hours=1), limit=1)
        assert [t.to_pydatetime() for t in window.column("time").to_pandas()] == [T0 + timedelta(hours=2)]

    def test_values_and_missing_volume_round_trip_exactly(self, store):
        # SP:SPX has no volume; volume 0.0 is a real value and must stay 0.0, not NaN.
        bars = [
            bar("SP:SPX", "1h", T0, 5123.456789012345, volume=None),
            bar("SP:SPX", "1h", T0 + timedelta(hours=1), 0.1 + 0.2, volume=0.0),
            bar("SP:SPX", "1h", T0 + timedelta(hours=2), 1e-9, volume=1234567.891, spread=1e-10),
        ]
        store.upsert_bars(bars)
        frame = store.read_bars("SP:SPX", "1h")
        assert math.isnan(frame["volume"].iloc[0])
        assert frame["volume"].iloc[1] == 0.0
        back = bars_from_frame("SP:SPX", Interval.H1, frame)
        assert back == bars
        # Re-writing None volume over None volume is "unchanged" (NaN equals NaN for us).
        assert store.upsert_bars(bars) == UpsertResult(0, 0, 3)
        # Volume appearing where there was none is a change.
        assert store.upsert_bars([bar("SP:SPX", "1h", T0, 5123.456789012345, volume=5.0)]) == \
            UpsertResult(0, 1, 0)


    def test_last_bar_time_count_and_stats(self, store):
        assert store.last_bar_time(AAPL, "1m") is None
        assert store.count_bars(AAPL, "1m") == 0
        assert store.bar_stats() == []
        bars = series(AAPL, "1m", 30)
        store.upsert_bars(bars[:20])
        store.upsert_bars(bars[20:])
        store.upsert_bars(series(BTC, "4h", 3))
        last = store.last_bar_time(AAPL, "1m")
        assert last == bars[-1].time and last.utcoffset() == timedelta(0)
        stats = {(s["symbol"], str(s["interval"])): s for s in store.bar_stats()}
        assert set(stats) == {(AAPL, "1m"), (BTC, "4h")}
        assert stats[(AAPL, "1m")]["count"] == 30
        assert stats[(AAPL, "1m")]["first_time"] == bars[0].time
        assert stats[(AAPL, "1m")]["last_time"] == bars[-1].time


    def test_delete_bars_by_interval_and_by_symbol(self, store):
        store.upsert_bars(series(AAPL, "1m", 10), source=Source.STREAM)
        store.upsert_bars(series(AAPL, "1h", 4))
        store.upsert_bars(series(BTC, "1m", 6))
        assert store.delete_bars(AAPL, "1m") == 10
        assert store.count_bars(AAPL, "1m") == 0
        assert store.read_stream_bars(AAPL, "1m").empty
        assert store.count_bars(AAPL, "1h") == 4
        assert store.delete_bars(AAPL) == 4
        assert store.delete_bars(AAPL) == 0
        assert store.count_bars(BTC, "1m") == 6
        # Deleted keys can be written again and count as new.
        assert store.upsert_bars(series(AAPL, "1m", 10)) == UpsertResult(10, 0, 0)


    # --- bad input --------------------------------------------------------------------------------
    def test_bad_input_is_rejected_with_the_value_named(self, store):
        with pytest.raises(InvalidSymbolError, match="'NOCOLON'"):
            store.read_bars("NOCOLON", "1m")
        with pytest.raises(InvalidIntervalError, match="'1x'"):
            store.read_bars(AAPL, "1x")
        with pytest.raises(InvalidIntervalError, match="'1x'"):
            store.count_bars(AAPL, "1x")
        naive = datetime(2024, 1, 1, 9, 30)
        with pytest.raises(InvalidInputError, match="2024-01-01T09:30:00.*naive"):
            store.read_bars(AAPL, "1m", start=naive)
        with pytest.raises(InvalidInputError, match="naive"):
            store.read_bars(AAPL, "1m", end=naive)
        with pytest.raises(InvalidInputError, match="naive"):
            store.read_stream_bars(AAPL, "1m", start=naive)
        with pytest.raises(InvalidInputError, match="limit -1"):
            store.read_bars(AAPL, "1m", limit=-1)
        with pytest.raises(InvalidSymbolError, match="'bad symbol'"):
            store.upsert_bars([bar("bad symbol", "1m", T0, 10.0)])
        with pytest.raises(InvalidInputError, match="'not a bar'"):
            store.upsert_bars([bar(AAPL, "1m", T0, 10.0), "not a bar"])
        with pytest.raises(InvalidInputError, match="'sideways'"):
            store.upsert_bars(series(AAPL, "1m", 1), source="sideways")
        # A rejected batch wrote nothing.
        assert store.count_bars(AAPL, "1m") == 0
        assert store.ingest_since(None).entries == []
        assert store.upsert_bars([]) == UpsertResult()


class TestIngestLog:
    """IngestLog (storage/ingest.py): one entry per written batch and series, by cursor."""

    def test_the_backend_implements_the_protocol(self, store):
        assert IngestLog in type(store).__mro__


    def test_ingest_cursor_pages_without_loss_or_repeat(self, store):
        assert store.ingest_since(None).entries == []
        start_cursor = store.latest_ingest_cursor()
        expected = []  # (symbol, interval, source, count)
        for i in range(4):
            store.upsert_bars(series(AAPL, "1m", 10, start=T0 + i * timedelta(minutes=10)))
            expected.append((AAPL, "1m", "history", 10))
            store.upsert_bars(series(BTC, "1h", 2, start=T0 + i * timedelta(hours=2)), source=Source.STREAM)
            expected.append((BTC, "1h", "stream", 2))
        store.upsert_bars(series(AAPL, "1m", 10))  # all unchanged: logs nothing
        both = series(AAPL, "5m", 3) + series(BTC, "5m", 4)
        store.upsert_bars(both)  # one entry per (symbol, interval)
        expected += [(AAPL, "5m", "history", 3), (BTC, "5m", "history", 4)]

        seen, cursor = [], start_cursor
        for _ in range(20):
            page = store.ingest_since(cursor, limit=3)
            assert len(page.entries) <= 3
            if not page.entries:
                assert page.cursor == cursor
                break
            seen += page.entries
            cursor = page.cursor
        got = [(e.symbol, e.interval.value, e.source.value, e.count) for e in seen]
        assert sorted(got) == sorted(expected)
        seqs = [e.seq for e in seen]
        assert seqs == sorted(set(seqs))  # strictly increasing: nothing repeated
        first = next(e for e in seen if e.interval == Interval.M1)
        assert first.first_time == T0 and first.last_time == T0 + timedelta(minutes=9)
        assert first.written_at.utcoffset() == timedelta(0)

        stream = store.ingest_since(start_cursor, source=Source.STREAM).entries
        assert [e.seq for e in stream] == [e.seq for e in seen if e.source is Source.STREAM]
        assert len(stream) == 4

        latest = store.latest_ingest_cursor()
        assert store.ingest_since(latest).entries == []
        store.upsert_bars([bar(AAPL, "1m", T0, 999.0)])
        new = store.ingest_since(latest)
        assert [(e.symbol, e.count, e.first_time) for e in new.entries] == [(AAPL, 1, T0)]
        assert store.ingest_since(new.cursor).entries == []


    def test_ingest_cursor_rejects_foreign_values(self, store):
        for bad in ("yesterday", "-1", 5):
            with pytest.raises(InvalidInputError, match=re.escape(repr(bad))):
                store.ingest_since(bad)
        with pytest.raises(InvalidInputError, match="limit 0"):
            store.ingest_since(None, limit=0)


class TestSymbolRegistry:
    """SymbolRegistry (storage/registry.py): the symbols and what TradingView said of them."""

    def test_the_backend_implements_the_protocol(self, store):
        assert SymbolRegistry in type(store).__mro__


    def test_symbol_registry_crud(self, store):
        assert store.list_symbols() == []
        info = SymbolInfo("nasdaq:aapl", name="AAPL", description="Apple Inc.", type="stock",
                          currency="USD", timezone="America/New_York", session="0930-1600",
                          pricescale=100, extra={"isin": "US0378331005"})
        assert store.add_symbol(info) is True
        assert store.add_symbol(SymbolInfo(AAPL, name="other")) is False  # present: unchanged
        got = store.get_symbol("NASDAQ:AAPL")
        assert got.symbol == AAPL and got.name == "AAPL" and got.pricescale == 100
        assert got.extra == {"isin": "US0378331005"} and got.stream is False
        assert got.added_at is not None and got.added_at.utcoffset() == timedelta(0)
        assert store.get_symbol(BTC) is None

        store.add_symbol(SymbolInfo(BTC, type="crypto", stream=True))
        assert [s.symbol for s in store.list_symbols()] == [BTC, AAPL]
        assert [s.symbol for s in store.list_symbols(stream_only=True)] == [BTC]

        updated = store.update_symbol(AAPL, stream=True, timezone="America/Chicago")
        assert updated.stream is True and updated.timezone == "America/Chicago"
        assert updated.name == "AAPL" and updated.added_at == got.added_at
        assert updated.updated_at >= got.updated_at
        assert store.get_symbol(AAPL) == updated
        assert {s.symbol for s in store.list_symbols(stream_only=True)} == {AAPL, BTC}

        with pytest.raises(UnknownSymbolError, match="NYSE:IBM"):
            store.update_symbol("NYSE:IBM", stream=True)
        with pytest.raises(InvalidInputError, match="'colour'"):
            store.update_symbol(AAPL, colour="red")
        with pytest.raises(InvalidInputError, match="stream='yes'"):
            store.update_symbol(AAPL, stream="yes")
        with pytest.raises(InvalidInputError, match="extra=.*JSON"):
            store.update_symbol(AAPL, extra={"when": datetime(2024, 1, 1)})
        with pytest.raises(InvalidInputError, match="pricescale='100'"):
            store.add_symbol(SymbolInfo("NYSE:IBM", pricescale="100"))
        assert store.get_symbol("NYSE:IBM") is None

        assert store.remove_symbol("nasdaq:aapl") is True
        assert store.remove_symbol(AAPL) is False
        assert store.get_symbol(AAPL) is None
        assert [s.symbol for s in store.list_symbols()] == [BTC]


    def test_registry_rejects_a_bad_symbol_with_the_value_named(self, store):
        with pytest.raises(InvalidSymbolError, match="'NOCOLON'"):
            store.add_symbol(SymbolInfo("NOCOLON"))


class TestDurableStore:
    """DurableStore (storage/durable.py): the three roles in one database, and its lifecycle."""

    def test_the_backend_implements_the_protocol(self, store):
        assert DurableStore in type(store).__mro__

    def test_ping(self, store):
        assert store.ping() is True


class TestLiveCache:
    """LiveCache (storage/live.py): latest quotes, in-progress bars, pub/sub."""

    def test_the_backend_implements_the_protocol(self, cache):
        assert LiveCache in type(cache).__mro__


    def test_quotes_set_get_and_all_quotes(self, cache):
        assert cache.get_quote(AAPL) is None
        assert cache.all_quotes() == {}
        cache.set_quote("nasdaq:aapl", QUOTE)
        cache.set_quote(BTC, {**QUOTE, "symbol": BTC, "price": 65000.0})
        assert cache.get_quote(AAPL) == QUOTE
        cache.set_quote(AAPL, {**QUOTE, "price": 191.0})
        assert cache.all_quotes() == {AAPL: {**QUOTE, "price": 191.0},
                                      BTC: {**QUOTE, "symbol": BTC, "price": 65000.0}}


    def test_quote_ttl_expires(self, cache):
        cache.set_quote(AAPL, QUOTE, ttl_s=0.3)
        cache.set_quote(BTC, QUOTE, ttl_s=30)
        assert cache.get_quote(AAPL) == QUOTE
        time.sleep(0.6)
        assert cache.get_quote(AAPL) is None
        assert set(cache.all_quotes()) == {BTC}


    def test_current_bars_round_trip_and_expire_per_interval(self, cache):
        bars = [bar(AAPL, "1m", T0, 10.0), bar(AAPL, "1h", T0, 11.0), bar(AAPL, "1M", T0, 12.0, None)]
        cache.set_current_bars("nasdaq:aapl", bars)
        assert cache.get_current_bars(AAPL) == {b.interval: b for b in bars}
        assert cache.get_current_bars(BTC) == {}
        newer = bar(AAPL, "1m", T0, 10.5)
        cache.set_current_bars(AAPL, [newer], ttl_s=0.3)
        assert cache.get_current_bars(AAPL)[Interval.M1] == newer
        time.sleep(0.6)
        left = cache.get_current_bars(AAPL)
        assert set(left) == {Interval.H1, Interval.MN1}


    def test_live_cache_rejects_bad_input(self, cache):
        with pytest.raises(InvalidSymbolError, match="'AAPL'"):
            cache.set_quote("AAPL", QUOTE)
        with pytest.raises(InvalidInputError, match="ttl_s 0"):
            cache.set_quote(AAPL, QUOTE, ttl_s=0)
        with pytest.raises(InvalidInputError, match="not JSON"):
            cache.set_quote(AAPL, {"price": object()})
        with pytest.raises(InvalidInputError, match="BINANCE:BTCUSDT"):
            cache.set_current_bars(AAPL, [bar(BTC, "1m", T0, 1.0)])
        with pytest.raises(InvalidInputError, match="payload"):
            cache.publish(quote_channel(AAPL), ["not", "a", "dict"])
        with pytest.raises(InvalidInputError, match="pattern"):
            cache.subscribe()


    def test_pubsub_delivers_by_pattern_in_order(self, cache):
        with cache.subscribe(QUOTES_PATTERN) as quotes, cache.subscribe(BARS_PATTERN) as bars_sub, \
                cache.subscribe(quote_channel(BTC), bar_channel(AAPL, "1h")) as exact:
            cache.publish(quote_channel(AAPL), {"price": 1.0})
            cache.publish(bar_channel(AAPL, "1m"), {"close": 2.0})
            cache.publish(quote_channel(BTC), {"price": 3.0})
            cache.publish(bar_channel(AAPL, "60"), {"close": 4.0})
            cache.publish("pq:other", {"x": 5})

            got = [quotes.get(timeout=5), quotes.get(timeout=5)]
            assert [(m.channel, m.data) for m in got] == [
                ("pq:quotes:NASDAQ:AAPL", {"price": 1.0}), ("pq:quotes:BINANCE:BTCUSDT", {"price": 3.0})]
            got = [bars_sub.get(timeout=5), bars_sub.get(timeout=5)]
            assert [(m.channel, m.data) for m in got] == [
                ("pq:bars:NASDAQ:AAPL:1m", {"close": 2.0}), ("pq:bars:NASDAQ:AAPL:1h", {"close": 4.0})]
            got = [exact.get(timeout=5), exact.get(timeout=5)]
            assert [m.data for m in got] == [{"price": 3.0}, {"close": 4.0}]
            for sub in (quotes, bars_sub, exact):
                assert sub.get(timeout=0.2) is None


    def test_subscriber_sees_only_messages_after_it_subscribed(self, cache):
        cache.publish(quote_channel(AAPL), {"n": 0})
        with cache.subscribe("pq:quotes:NASDAQ:*") as sub:
            for n in range(1, 51):
                cache.publish(quote_channel(AAPL), {"n": n})
            got = [sub.get(timeout=5).data["n"] for _ in range(50)]
            assert got == list(range(1, 51))
            assert sub.get(timeout=0.1) is None


    def test_live_cache_ping(self, cache):
        assert cache.ping() is True


    def test_write_batch_writes_values_then_publishes_in_order(self, cache):
        bars = [bar(AAPL, "1m", T0, 10.0), bar(AAPL, "1d", T0, 11.0)]
        with cache.subscribe(QUOTES_PATTERN, BARS_PATTERN) as sub:
            cache.write_batch(
                quotes={"nasdaq:aapl": QUOTE, BTC: {**QUOTE, "symbol": BTC}},
                current_bars={AAPL: bars},
                messages=[(quote_channel(AAPL), {"n": 1}), (bar_channel(AAPL, "1m"), {"n": 2}),
                          (quote_channel(BTC), {"n": 3})],
            )
            got = [sub.get(timeout=5) for _ in range(3)]
            assert [m.data["n"] for m in got] == [1, 2, 3]
            # Values were written before the messages went out.
            assert cache.get_quote(AAPL) == QUOTE
        assert set(cache.all_quotes()) == {AAPL, BTC}
        assert cache.get_current_bars(AAPL) == {b.interval: b for b in bars}
        cache.write_batch()  # nothing to do is fine
        cache.write_batch(quotes={BTC: QUOTE}, quote_ttl_s=0.3)
        time.sleep(0.6)
        assert set(cache.all_quotes()) == {AAPL}
        # A bad item rejects the whole batch before anything is written.
        with pytest.raises(InvalidSymbolError, match="'BAD'"):
            cache.write_batch(quotes={"NYSE:IBM": QUOTE, "BAD": QUOTE})
        assert cache.get_quote("NYSE:IBM") is None
