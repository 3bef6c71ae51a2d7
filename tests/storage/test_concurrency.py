"""The embedded backends under real concurrency: several processes (Dagster runs, the streamer,
the CLI) and several threads (the streamer's writer thread) on the same files."""

import multiprocessing as mp
import threading
from datetime import timedelta

import pytest

from pocketquant_pipelines.storage.bars import UpsertResult
from pocketquant_pipelines.storage.live import QUOTES_PATTERN, quote_channel
from pocketquant_pipelines.storage.embedded_cache import EmbeddedLiveCache
from pocketquant_pipelines.storage.sqlite_store import SQLiteBarStore
from tests.storage.helpers import T0, bar

SHARED = "NASDAQ:AAPL"
STEP = timedelta(minutes=1)
BATCH = 100
_ctx = mp.get_context("spawn")  # a fresh interpreter, like a separate Dagster run


def bar_at(symbol: str, i: int):
    # The value depends only on the key, so both writers agree on every shared bar.
    return bar(symbol, "1m", T0 + i * STEP, 100.0 + i * 0.25)


def _writer(path: str, own_symbol: str, shared_range: tuple[int, int], descending: bool,
            barrier, results) -> None:
    store = SQLiteBarStore(path)
    lo, hi = shared_range
    starts = list(range(lo, hi, BATCH))
    if descending:
        starts.reverse()
    barrier.wait(timeout=120)  # both processes start writing at the same moment
    shared = UpsertResult()
    own = UpsertResult()
    for k, s in enumerate(starts):
        shared = shared + store.upsert_bars([bar_at(SHARED, i) for i in range(s, s + BATCH)])
        if k < 10:  # interleave writes of a series nobody else touches
            own = own + store.upsert_bars([bar_at(own_symbol, i) for i in range(k * BATCH, (k + 1) * BATCH)])
    store.close()
    results.put((own_symbol, shared, own))


def test_two_processes_upserting_the_same_file_lose_nothing(tmp_path):
    path = str(tmp_path / "bars.sqlite3")
    SQLiteBarStore(path).close()  # schema exists before the race starts
    barrier, results = _ctx.Barrier(2), _ctx.Queue()
    # A writes keys [0, 3000) upwards, B writes [1500, 4500) downwards: they meet in the
    # overlap [1500, 3000) while both are writing.
    procs = [
        _ctx.Process(target=_writer, args=(path, "A:ONLY", (0, 3000), False, barrier, results)),
        _ctx.Process(target=_writer, args=(path, "B:ONLY", (1500, 4500), True, barrier, results)),
    ]
    for p in procs:
        p.start()
    outcome = {}
    for _ in procs:
        sym, shared, own = results.get(timeout=120)
        outcome[sym] = (shared, own)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0

    shared_total = outcome["A:ONLY"][0] + outcome["B:ONLY"][0]
    # Every shared key inserted exactly once; the second write of each overlap key was a no-op.
    assert shared_total == UpsertResult(inserted=4500, updated=0, unchanged=1500)
    for sym in ("A:ONLY", "B:ONLY"):
        assert outcome[sym][1] == UpsertResult(inserted=1000)

    with SQLiteBarStore(path) as store:
        assert store.count_bars(SHARED, "1m") == 4500
        frame = store.read_bars(SHARED, "1m")
        assert frame.index.is_unique and frame.index.is_monotonic_increasing
        assert frame["close"].tolist() == [bar_at(SHARED, i).close for i in range(4500)]
        for sym in ("A:ONLY", "B:ONLY"):
            assert store.count_bars(sym, "1m") == 1000
        entries = store.ingest_since(None, limit=10_000).entries
        assert [e.seq for e in entries] == sorted({e.seq for e in entries})
        assert sum(e.count for e in entries if e.symbol == SHARED) == 4500
        assert sum(e.count for e in entries) == 6500


def test_threads_sharing_one_store_instance(tmp_path):
    store = SQLiteBarStore(tmp_path / "bars.sqlite3")
    errors = []

    def write(symbol: str) -> None:
        try:
            for k in range(20):
                store.upsert_bars([bar_at(symbol, i) for i in range(k * 50, (k + 1) * 50)])
                store.read_bars(symbol, "1m", limit=10)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"T:S{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert [store.count_bars(f"T:S{n}", "1m") for n in range(4)] == [1000] * 4
    store.close()


def _subscriber(path: str, n: int, ready, results) -> None:
    cache = EmbeddedLiveCache(path)
    with cache.subscribe(QUOTES_PATTERN) as sub:
        ready.set()
        got = []
        for _ in range(n):
            msg = sub.get(timeout=10)
            if msg is None:
                break
            got.append((msg.channel, msg.data["n"]))
    results.put((got, cache.get_quote(SHARED)))
    cache.close()


@pytest.mark.parametrize("n", [200])
def test_embedded_pubsub_crosses_processes(tmp_path, n):
    path = str(tmp_path / "live.sqlite3")
    cache = EmbeddedLiveCache(path)
    ready, results = _ctx.Event(), _ctx.Queue()
    proc = _ctx.Process(target=_subscriber, args=(path, n, ready, results))
    proc.start()
    assert ready.wait(timeout=60), "subscriber process did not start"
    cache.set_quote(SHARED, {"price": 1.5})
    for i in range(n):
        channel = quote_channel(SHARED) if i % 2 else quote_channel("BINANCE:BTCUSDT")
        cache.publish(channel, {"n": i})
        cache.publish("pq:bars:NASDAQ:AAPL:1m", {"n": -1})  # not matched by the pattern
    got, quote = results.get(timeout=60)
    proc.join(timeout=30)
    assert proc.exitcode == 0
    assert [m[1] for m in got] == list(range(n))
    assert got[1] == ("pq:quotes:NASDAQ:AAPL", 1)
    assert quote == {"price": 1.5}
    cache.close()


def test_reader_sees_commits_from_another_connection_after_a_latest_n_read(tmp_path):
    # A latest-N read stops reading early; it must not leave its snapshot open, or this
    # connection's later reads would miss newer commits from other writers.
    path = tmp_path / "bars.sqlite3"
    reader, writer = SQLiteBarStore(path), SQLiteBarStore(path)
    writer.upsert_bars([bar_at(SHARED, i) for i in range(5000)])
    assert len(reader.read_bars(SHARED, "1m", limit=10)) == 10
    writer.upsert_bars([bar_at(SHARED, i) for i in range(5000, 5010)])
    assert reader.count_bars(SHARED, "1m") == 5010
    assert reader.read_bars(SHARED, "1m", limit=1).index[0] == bar_at(SHARED, 5009).time
    reader.close()
    writer.close()


def test_connections_of_finished_threads_are_released(tmp_path):
    import os

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    store = SQLiteBarStore(tmp_path / "bars.sqlite3")
    store.count_bars(SHARED, "1m")
    before = open_fds()
    for _ in range(30):  # short-lived threads, as a thread pool that recycles workers makes
        t = threading.Thread(target=store.count_bars, args=(SHARED, "1m"))
        t.start()
        t.join()
    store.count_bars(SHARED, "1m")
    # Each connection holds file descriptors (db, wal); 30 leaked ones would show.
    assert open_fds() - before <= 6
    store.close()
