"""Storage benchmark: bar store upsert / re-upsert / 1M-bar read, against a Parquet baseline.

    .venv/bin/python bench/storage.py                  # embedded (SQLite) store
    .venv/bin/python bench/storage.py --mongomock      # also mongomock_ng (FAKE: an in-memory
                                                       # Python imitation; says nothing about
                                                       # a real MongoDB server)
    .venv/bin/python bench/storage.py --mongodb-url mongodb://host:27017   # a real server
    .venv/bin/python bench/storage.py --redis-url redis://127.0.0.1:6390/0  # live cache on Redis too

Goals (docs/benchmarks.md, "## Storage"): embedded upsert >= 200k bars/s for 100k bars;
1M-bar read within 2x of reading the same frame from Parquet with pyarrow. The Arrow table
row is ``read_bars_table`` (what the dataset writer uses); the DataFrame row is its pandas
view, ``read_bars``.
"""

import argparse
import gc
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pocketquant_pipelines.market.bars import Bar  # noqa: E402
from pocketquant_pipelines.market.intervals import Interval  # noqa: E402
from pocketquant_pipelines.storage.bars import BarStore  # noqa: E402

T0 = datetime(2015, 1, 1, tzinfo=UTC)


def make_bars(symbol: str, n: int, seed: int = 1) -> list[Bar]:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 0.1, n))
    open_ = close + rng.normal(0, 0.05, n)
    high = np.maximum(open_, close) + rng.random(n) * 0.1
    low = np.minimum(open_, close) - rng.random(n) * 0.1
    vol = rng.integers(0, 10_000, n).astype(float)
    step = timedelta(minutes=1)
    return [Bar(symbol, Interval.M1, T0 + i * step, float(open_[i]), float(high[i]),
                float(low[i]), float(close[i]), float(vol[i])) for i in range(n)]


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def bench_store(label: str, store: BarStore, upsert_n: int, read_n: int, workdir: Path,
                repeat: int) -> list[tuple[str, str, str]]:
    rows = []
    bars = make_bars("BENCH:UPSERT", upsert_n)
    t = time.perf_counter()
    first = store.upsert_bars(bars)
    dt = time.perf_counter() - t
    assert first.inserted == upsert_n, first
    rows.append((label, f"upsert {upsert_n:,} new bars", f"{upsert_n / dt:,.0f} bars/s ({dt:.3f} s)"))
    dt, again = timed(lambda: store.upsert_bars(bars), repeat)
    assert again.unchanged == upsert_n, again
    rows.append((label, f"re-upsert same {upsert_n:,} bars", f"{upsert_n / dt:,.0f} bars/s ({dt:.3f} s)"))

    # Load 1M bars in 100k batches (not timed), then time full reads.
    sym = "BENCH:READ"
    step = 100_000
    all_bars = make_bars(sym, read_n, seed=2)
    for i in range(0, read_n, step):
        store.upsert_bars(all_bars[i:i + step])
    del all_bars
    read_s, frame = timed(lambda: store.read_bars(sym, "1m"), repeat)
    assert len(frame) == read_n, len(frame)
    table_s, table = timed(lambda: store.read_bars_table(sym, "1m"), repeat)
    assert table.num_rows == read_n, table.num_rows
    del table
    path = workdir / f"{label}.parquet"
    frame.to_parquet(path)
    pq_s, pq_frame = timed(lambda: pq.read_table(path).to_pandas(), repeat)
    assert pq_frame.equals(frame), "parquet round trip differs from the store's frame"
    latest_n = min(500, read_n)
    latest_s, latest = timed(lambda: store.read_bars(sym, "1m", limit=latest_n), repeat)
    assert len(latest) == latest_n
    rows.append((label, f"read {read_n:,} bars -> Arrow table", f"{table_s:.3f} s"))
    rows.append((label, f"read {read_n:,} bars -> DataFrame", f"{read_s:.3f} s"))
    rows.append((label, f"same {read_n:,} bars from Parquet (pyarrow)", f"{pq_s:.3f} s"))
    rows.append((label, "read / Parquet ratio", f"{read_s / pq_s:.2f}x"))
    rows.append((label, f"read latest {latest_n} of {read_n:,} (limit)", f"{latest_s * 1000:.1f} ms"))
    return rows


def bench_cache(label: str, cache, n: int) -> list[tuple[str, str, str]]:
    """Write rates the streamer depends on (a few hundred coalesced writes/s is the need)."""
    from pocketquant_pipelines.storage.live import QUOTES_PATTERN, quote_channel

    rows = []
    quote = {"symbol": "BENCH:Q", "time": T0.isoformat(), "price": 1.0, "volume": 1.0,
             "bid": None, "ask": None, "cumulative_volume": 10.0}
    symbols = [f"BENCH:Q{i % 100}" for i in range(n)]
    t = time.perf_counter()
    for sym in symbols:
        cache.set_quote(sym, quote)
    dt = time.perf_counter() - t
    rows.append((label, f"set_quote x{n:,}", f"{n / dt:,.0f} writes/s"))
    bars = [Bar("BENCH:Q0", iv, T0, 1.0, 2.0, 0.5, 1.5, 3.0) for iv in Interval]
    t = time.perf_counter()
    for _ in range(n // 10):
        cache.set_current_bars("BENCH:Q0", bars)
    dt = time.perf_counter() - t
    rows.append((label, f"set_current_bars (13 bars) x{n // 10:,}", f"{(n // 10) / dt:,.0f} calls/s"))
    with cache.subscribe(QUOTES_PATTERN) as sub:
        t = time.perf_counter()
        for i in range(n):
            cache.publish(quote_channel("BENCH:Q0"), {"n": i})
        pub_dt = time.perf_counter() - t
        got = 0
        while got < n and sub.get(timeout=5) is not None:
            got += 1
        all_dt = time.perf_counter() - t
    assert got == n, f"subscriber received {got} of {n}"
    rows.append((label, f"publish x{n:,}", f"{n / pub_dt:,.0f} msgs/s"))
    rows.append((label, f"publish + deliver x{n:,} to 1 subscriber", f"{all_dt:.3f} s"))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upsert", type=int, default=100_000)
    ap.add_argument("--read", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="timed repeats (median reported)")
    ap.add_argument("--mongomock", action="store_true", help="also run mongomock_ng (FAKE)")
    ap.add_argument("--mongomock-n", type=int, default=1000,
                    help="bars for the mongomock run (its unique-index inserts are quadratic)")
    ap.add_argument("--mongodb-url", help="also run against this real MongoDB server")
    ap.add_argument("--cache-ops", type=int, default=2000, help="live-cache writes per measure")
    ap.add_argument("--redis-url", help="also run the live-cache measures on this Redis")
    args = ap.parse_args()

    from pocketquant_pipelines.logging import configure_logging
    configure_logging(level="WARNING")

    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="pq-bench-") as tmp:
        workdir = Path(tmp)
        from pocketquant_pipelines.storage.sqlite_store import SQLiteBarStore
        with SQLiteBarStore(workdir / "bars.sqlite3") as store:
            rows += bench_store("sqlite (embedded)", store, args.upsert, args.read, workdir, args.repeat)
        if args.mongomock:
            import mongomock_ng

            from pocketquant_pipelines.storage.mongo_store import MongoBarStore
            with MongoBarStore(client=mongomock_ng.MongoClient(), database="bench") as store:
                rows += bench_store("mongomock-FAKE", store, args.mongomock_n, args.mongomock_n,
                                    workdir, 1)
        if args.mongodb_url:
            import pymongo

            from pocketquant_pipelines.storage.mongo_store import MongoBarStore
            db = f"pq_bench_{uuid.uuid4().hex[:8]}"
            client = pymongo.MongoClient(args.mongodb_url)
            try:
                with MongoBarStore(client=client, database=db) as store:
                    rows += bench_store("mongodb (real)", store, args.upsert, args.read, workdir,
                                        args.repeat)
            finally:
                client.drop_database(db)
                client.close()

        from pocketquant_pipelines.storage.embedded_cache import EmbeddedLiveCache
        cache = EmbeddedLiveCache(workdir / "live.sqlite3")
        rows += bench_cache("embedded live cache", cache, args.cache_ops)
        cache.close()
        if args.redis_url:
            from pocketquant_pipelines.storage.redis_cache import RedisLiveCache
            cache = RedisLiveCache(url=args.redis_url)
            rows += bench_cache("redis live cache", cache, args.cache_ops)
            cache.close()

    widths = [max(len(r[i]) for r in rows + [("backend", "measure", "result")]) for i in range(3)]
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(("backend", "measure", "result"), widths)))
    print(line)
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
