"""StoreWriter against the real embedded bar store: batching, retry after failures, the
bounded buffer, and the shutdown drain (nothing accepted disappears silently)."""

import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.storage.bars import Source
from pocketquant_pipelines.storage.sqlite_store import SQLiteBarStore
from streamer.metrics import StreamerMetrics
from streamer.store_writer import StoreWriter

T0 = datetime(2026, 1, 26, tzinfo=UTC)


def bars(n: int, symbol: str = "BINANCE:BTCUSDT", start: int = 0) -> list[Bar]:
    return [Bar(symbol, Interval.M1, T0 + timedelta(minutes=start + i), 100 + i, 101 + i, 99 + i, 100.5 + i, 2.0)
            for i in range(n)]


class FlakyStore:
    """The real store behind a switch that makes writes fail (a store outage)."""

    def __init__(self, store):
        self.store = store
        self.fail = 0  # fail this many upserts, then work again
        self.calls = 0

    def upsert_bars(self, bars, source=Source.HISTORY, partial=False):
        self.calls += 1
        if self.fail:
            self.fail -= 1
            raise ConnectionError("store unavailable (injected)")
        return self.store.upsert_bars(bars, source=source, partial=partial)


@pytest.fixture
def store(tmp_path):
    s = SQLiteBarStore(tmp_path / "bars.sqlite3")
    yield s
    s.close()


def test_failed_writes_are_retried_and_nothing_is_lost(store):
    flaky = FlakyStore(store)
    metrics = StreamerMetrics()
    writer = StoreWriter(flaky, metrics, batch_interval_s=0.01)
    flaky.fail = 3
    writer.put(bars(50))
    assert not writer.write_once() and not writer.healthy
    assert writer.depth == 50  # kept for the retry
    assert not writer.write_once() and not writer.write_once()
    assert writer.write_once() and writer.healthy
    assert writer.depth == 0
    frame = store.read_bars("BINANCE:BTCUSDT", "1m")
    assert len(frame) == 50 and set(frame["source"]) == {"stream"} and not frame["partial"].any()
    assert metrics.store_errors.value == 3 and metrics.bars_written.value == 50


def test_worker_thread_retries_until_the_store_returns(store):
    flaky = FlakyStore(store)
    metrics = StreamerMetrics()
    writer = StoreWriter(flaky, metrics, batch_interval_s=0.01)
    flaky.fail = 2
    writer.start()
    writer.put(bars(10))
    left = writer.stop(deadline_s=5)
    assert left == 0
    assert len(store.read_bars("BINANCE:BTCUSDT", "1m")) == 10
    assert metrics.store_errors.value == 2


def test_partial_bars_are_marked_and_a_complete_version_wins(store):
    writer = StoreWriter(store, StreamerMetrics())
    b = bars(3)
    writer.put(b[:2], partial=True)
    writer.put([b[1]], partial=False)  # re-completed before the write: complete wins
    writer.put([b[2]], partial=True)
    assert writer.write_once()
    frame = store.read_bars("BINANCE:BTCUSDT", "1m")
    assert frame["partial"].tolist() == [True, False, True]


def test_buffer_bound_drops_oldest_counted_and_logged(store, capsys):
    metrics = StreamerMetrics()
    writer = StoreWriter(store, metrics, max_pending=100)
    writer.put(bars(150))
    assert writer.depth == 100 and metrics.bars_dropped.value == 50
    captured = capsys.readouterr()
    assert "store_buffer_full_bars_dropped" in captured.out + captured.err
    assert writer.write_once()
    frame = store.read_bars("BINANCE:BTCUSDT", "1m")
    assert frame.index[0] == T0 + timedelta(minutes=50)  # the oldest 50 were the ones dropped


def test_unwritable_bars_are_spilled_at_shutdown(store, tmp_path):
    flaky = FlakyStore(store)
    flaky.fail = 10**9
    writer = StoreWriter(flaky, StreamerMetrics(), spill_dir=tmp_path / "spill")
    writer.put(bars(5), partial=True)
    assert writer.stop(deadline_s=0.3) == 5
    [spill] = list((tmp_path / "spill").glob("streamer-unwritten-*.jsonl"))
    rows = [json.loads(line) for line in spill.read_text().splitlines()]
    assert len(rows) == 5 and all(r["partial"] for r in rows) and rows[0]["symbol"] == "BINANCE:BTCUSDT"


class FullDiskStore(FlakyStore):
    """Writes fail the way SQLite fails on a full disk."""

    def upsert_bars(self, bars, source=Source.HISTORY, partial=False):
        if self.fail:
            import sqlite3

            raise sqlite3.OperationalError("database or disk is full")
        return self.store.upsert_bars(bars, source=source, partial=partial)


def test_a_full_disk_is_one_line_and_holds_the_cache_until_the_store_writes(store, capsys):
    full = FullDiskStore(store)
    full.fail = 1
    writer = StoreWriter(full, StreamerMetrics())
    writer.put(bars(4))
    assert not writer.write_once() and not writer.write_once()
    assert writer.disk_full and writer.depth == 4
    out = capsys.readouterr()
    assert (out.out + out.err).count("store_disk_full") == 1 and "Traceback" not in out.out + out.err
    full.fail = 0
    assert writer.write_once() and not writer.disk_full
    assert len(store.read_bars("BINANCE:BTCUSDT", "1m")) == 4


def test_the_spill_goes_into_the_reservation_and_the_overflow_atomically_then_back_to_the_store(store, tmp_path):
    spill_dir = tmp_path / "spill"
    full = FullDiskStore(store)
    full.fail = 1
    writer = StoreWriter(full, StreamerMetrics(), spill_dir=spill_dir, spill_reserve_bytes=2000)
    assert writer.prepare() == 0
    reservation = spill_dir / "streamer-spill.reserve"
    assert reservation.stat().st_size == 2000 and os.stat(reservation).st_blocks * 512 >= 2000  # allocated
    writer.put(bars(30))
    writer.put(bars(2, start=30), partial=True)
    assert writer.stop(deadline_s=0.3) == 32
    files = sorted(spill_dir.glob("streamer-unwritten-*.jsonl"))
    assert len(files) == 2 and not reservation.exists()  # the reservation became the first file
    first, overflow = sorted(files, key=lambda p: "overflow" in p.name)
    assert first.stat().st_size <= 2000 and "overflow" in overflow.name
    rows = [json.loads(line) for p in (first, overflow) for line in p.read_text().splitlines()]
    assert len(rows) == 32 and sum(r["partial"] for r in rows) == 2

    # the next start loads them, writes them first, then deletes the files
    again = StoreWriter(store, StreamerMetrics(), spill_dir=spill_dir, spill_reserve_bytes=2000)
    assert again.prepare() == 32
    assert again.write_once() and again.depth == 0
    assert list(spill_dir.glob("streamer-unwritten-*")) == []
    frame = store.read_bars("BINANCE:BTCUSDT", "1m")
    assert len(frame) == 32 and frame["partial"].sum() == 2
    assert again.stop(deadline_s=0.3) == 0 and not reservation.exists()  # a clean stop frees the space


def test_a_spill_file_that_does_not_parse_is_kept_and_named(store, tmp_path):
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    (spill_dir / "streamer-unwritten-1.jsonl").write_text('{"symbol": "BINANCE:BTCUSDT"\n')
    writer = StoreWriter(store, StreamerMetrics(), spill_dir=spill_dir, spill_reserve_bytes=0)
    assert writer.prepare() == 0
    assert (spill_dir / "streamer-unwritten-1.unreadable").exists()
