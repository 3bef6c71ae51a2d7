"""Storage benchmark: bar store upsert / re-upsert / read / latest N, each beside a baseline.

    .venv/bin/python bench/storage.py                  # embedded (SQLite) store, embedded cache,
                                                       # the MongoDB store over the wire server
                                                       # (SecantusDB from .tools/secantus, started
                                                       # here) and a private redis-server
    .venv/bin/python bench/storage.py --no-wire        # without the wire server
    .venv/bin/python bench/storage.py --mongodb-url mongodb://host:27017   # a real server too
    .venv/bin/python bench/storage.py --redis-url redis://127.0.0.1:6390/0  # this Redis instead

The MongoDB rows put each store call beside the server's own floor: the same operation done
with plain pymongo in this process on the same server (insert_many of the documents; a range
find of the batch's keys, the least that tells a re-upsert what changed; a find of the series
sorted on time; a range find of the last N from a known bound).

Goals (docs/benchmarks.md, "## Storage"): embedded upsert >= 200k bars/s for 100k bars;
1M-bar read within 2x of reading the same frame from Parquet with pyarrow; MongoDB store
within 2x of the floor for each operation, re-upsert no slower than the first upsert;
latest-quote read p99 <= 1 ms on Redis and <= 0.2 ms embedded. The Arrow table row is
``read_bars_table`` (what the dataset writer uses); the DataFrame row is its pandas view,
``read_bars``.
"""

import argparse
import gc
import shutil
import socket
import statistics
import subprocess
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
REPO = Path(__file__).resolve().parent.parent
SECANTUS_VERSION = "0.7.0b3"
SECANTUSD = REPO / ".tools" / "secantus" / "bin" / "secantusd-py"
WIRE_LABEL = f"mongodb-wire (SecantusDB {SECANTUS_VERSION})"


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


Row = tuple[str, str, str, str, str]  # backend, measure, result, baseline, ratio


def row(label: str, measure: str, result: str, baseline: str = "", ratio: str = "") -> Row:
    # progress on stderr: the MongoDB measures take minutes on a busy machine
    print(f"{label}: {measure}: {result} {baseline} {ratio}".rstrip(), file=sys.stderr, flush=True)
    return (label, measure, result, baseline, ratio)


def timed_pair(fn_a, fn_b, repeat: int) -> tuple[float, object, float, object]:
    """Median times of two operations run alternately, so a change of machine load during the
    run falls on both."""
    times_a, times_b, res_a, res_b = [], [], None, None
    for _ in range(repeat):
        for fn, times in ((fn_a, times_a), (fn_b, times_b)):
            gc.collect()
            t = time.perf_counter()
            res = fn()
            times.append(time.perf_counter() - t)
            if fn is fn_a:
                res_a = res
            else:
                res_b = res
    return statistics.median(times_a), res_a, statistics.median(times_b), res_b


def bench_store(label: str, store: BarStore, upsert_n: int, read_n: int, workdir: Path,
                repeat: int) -> list[Row]:
    rows = []
    bars = make_bars("BENCH:UPSERT", upsert_n)
    t = time.perf_counter()
    first = store.upsert_bars(bars)
    dt = time.perf_counter() - t
    assert first.inserted == upsert_n, first
    rows.append(row(label, f"upsert {upsert_n:,} new bars", f"{upsert_n / dt:,.0f} bars/s ({dt:.3f} s)"))
    dt, again = timed(lambda: store.upsert_bars(bars), repeat)
    assert again.unchanged == upsert_n, again
    rows.append(row(label, f"re-upsert same {upsert_n:,} bars", f"{upsert_n / dt:,.0f} bars/s ({dt:.3f} s)"))

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
    rows.append(row(label, f"read {read_n:,} bars -> Arrow table", f"{table_s:.3f} s",
                    f"{pq_s:.3f} s Parquet (pyarrow)", f"{table_s / pq_s:.2f}x"))
    rows.append(row(label, f"read {read_n:,} bars -> DataFrame", f"{read_s:.3f} s",
                    f"{pq_s:.3f} s Parquet (pyarrow)", f"{read_s / pq_s:.2f}x"))
    rows.append(row(label, f"read latest {latest_n} of {read_n:,} (limit)", f"{latest_s * 1000:.1f} ms"))
    return rows


def bar_docs(bars: list[Bar], written_at: int) -> list[dict]:
    """The documents MongoBarStore writes for these history bars (mongo_store.py's shape)."""
    from pocketquant_pipelines.storage.validation import to_us

    return [{"symbol": b.symbol, "interval": b.interval.value, "time": to_us(b.time), "open": b.open,
             "high": b.high, "low": b.low, "close": b.close, "volume": b.volume,
             "source": "history", "partial": False, "written_at": written_at} for b in bars]


def bench_mongo(label: str, store, floor_db, n: int, latest_n: int, repeat: int) -> list[Row]:
    """Store calls on one database, the plain-pymongo floor of each on another (same server)."""
    from pocketquant_pipelines.storage.validation import to_us

    rows: list[Row] = []
    bars = make_bars("BENCH:MONGO", n)
    floor = floor_db["bars"]
    floor.create_index([("symbol", 1), ("interval", 1), ("time", 1)], unique=True,
                       name="symbol_interval_time")
    docs = bar_docs(bars, 0)
    flt = {"symbol": "BENCH:MONGO", "interval": "1m"}
    span = {"$gte": to_us(bars[0].time), "$lte": to_us(bars[-1].time)}
    values = {"_id": 0, "time": 1, "open": 1, "high": 1, "low": 1, "close": 1, "volume": 1,
              "source": 1, "partial": 1}

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x"

    gc.collect()
    t = time.perf_counter()
    first = store.upsert_bars(bars)
    up_s = time.perf_counter() - t
    assert first.inserted == n, first
    gc.collect()
    t = time.perf_counter()
    floor.insert_many(docs, ordered=False)
    up_floor = time.perf_counter() - t
    rows.append(row(label, f"upsert {n:,} new bars", f"{up_s:.2f} s ({n / up_s:,.0f} bars/s)",
                    f"{up_floor:.2f} s insert_many", ratio(up_s, up_floor)))

    re_s, again, re_floor, got = timed_pair(
        lambda: store.upsert_bars(bars), lambda: len(list(floor.find({**flt, "time": span}, values))),
        repeat)
    assert again.unchanged == n and got == n, (again, got)
    rows.append(row(label, f"re-upsert same {n:,} bars", f"{re_s:.2f} s ({n / re_s:,.0f} bars/s)",
                    f"{re_floor:.2f} s range find", ratio(re_s, re_floor)))
    rows.append(row(label, "re-upsert / first upsert", ratio(re_s, up_s)))

    read_s, frame, read_floor, got = timed_pair(
        lambda: store.read_bars("BENCH:MONGO", "1m"),
        lambda: len(list(floor.find(flt, values).sort("time", 1))), repeat)
    assert len(frame) == n and got == n
    rows.append(row(label, f"read {n:,} bars -> DataFrame", f"{read_s:.2f} s",
                    f"{read_floor:.2f} s find+sort", ratio(read_s, read_floor)))

    bound = to_us(bars[-latest_n].time)
    # a fraction of a second each: enough repeats for a median on a busy machine
    latest_s, latest, latest_floor, got = timed_pair(
        lambda: store.read_bars("BENCH:MONGO", "1m", limit=latest_n),
        lambda: len(list(floor.find({**flt, "time": {"$gte": bound}}, values).sort("time", 1))),
        max(repeat, 9))
    assert len(latest) == latest_n and latest.index[-1] == bars[-1].time and got == latest_n
    rows.append(row(label, f"read latest {latest_n} of {n:,} (limit)", f"{latest_s * 1000:.1f} ms",
                    f"{latest_floor * 1000:.1f} ms range find from the bound",
                    ratio(latest_s, latest_floor)))
    return rows


def bench_cache(label: str, cache, n: int) -> list[Row]:
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
    rows.append(row(label, f"set_quote x{n:,}", f"{n / dt:,.0f} writes/s"))
    lat = []
    for i in range(n):
        sym = symbols[i]
        t = time.perf_counter_ns()
        got = cache.get_quote(sym)
        lat.append(time.perf_counter_ns() - t)
        assert got is not None
    lat.sort()
    p50, p99 = lat[len(lat) // 2] / 1e6, lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1e6
    rows.append(row(label, f"get_quote (latest quote) x{n:,}", f"p50 {p50:.3f} ms, p99 {p99:.3f} ms"))
    bars = [Bar("BENCH:Q0", iv, T0, 1.0, 2.0, 0.5, 1.5, 3.0) for iv in Interval]
    t = time.perf_counter()
    for _ in range(n // 10):
        cache.set_current_bars("BENCH:Q0", bars)
    dt = time.perf_counter() - t
    rows.append(row(label, f"set_current_bars (13 bars) x{n // 10:,}", f"{(n // 10) / dt:,.0f} calls/s"))
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
    rows.append(row(label, f"publish x{n:,}", f"{n / pub_dt:,.0f} msgs/s"))
    rows.append(row(label, f"publish + deliver x{n:,} to 1 subscriber", f"{all_dt:.3f} s"))
    return rows


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_process(argv: list[str], workdir: Path, ready, what: str) -> subprocess.Popen:
    proc = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"error: {what} exited with {proc.returncode}")
        if ready():
            return proc
        time.sleep(0.05)
    proc.kill()
    sys.exit(f"error: {what} did not start within 30 s")


def start_wire_server(workdir: Path) -> tuple[subprocess.Popen, str]:
    """secantusd-py on a free port, in-memory storage (what the tests use)."""
    import pymongo

    if not SECANTUSD.is_file():
        sys.exit(f"error: {SECANTUSD} is missing: `make test-tools` installs SecantusDB "
                 f"{SECANTUS_VERSION} (or pass --no-wire)")
    port = free_port()
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true"

    def ready() -> bool:
        client = pymongo.MongoClient(url, serverSelectionTimeoutMS=200)
        try:
            return bool(client.admin.command("ping").get("ok"))
        except pymongo.errors.PyMongoError:
            return False
        finally:
            client.close()

    proc = start_process([str(SECANTUSD), "--standalone", "--host", "127.0.0.1", "--port", str(port),
                          "--storage-path", ":memory:", "--log-level", "WARNING"],
                         workdir, ready, "secantusd-py")
    return proc, url


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str] | None:
    exe = shutil.which("redis-server")
    if exe is None:
        return None
    port = free_port()

    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    proc = start_process([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", str(workdir)], workdir, ready, "redis-server")
    return proc, f"redis://127.0.0.1:{port}/0"


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_mongo(label: str, url: str, args) -> list[Row]:
    import pymongo

    from pocketquant_pipelines.storage.mongo_store import MongoBarStore

    client = pymongo.MongoClient(url)
    db, floor_db = f"pq_bench_{uuid.uuid4().hex[:8]}", f"pq_bench_floor_{uuid.uuid4().hex[:8]}"
    try:
        with MongoBarStore(client=client, database=db) as store:
            return bench_mongo(label, store, client[floor_db], args.mongo_n, 500, args.mongo_repeat)
    finally:
        client.drop_database(db)
        client.drop_database(floor_db)
        client.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upsert", type=int, default=100_000, help="embedded store: bars upserted")
    ap.add_argument("--read", type=int, default=1_000_000, help="embedded store: bars read")
    ap.add_argument("--repeat", type=int, default=3, help="timed repeats (median reported)")
    ap.add_argument("--mongo-n", type=int, default=100_000,
                    help="MongoDB store: bars upserted, re-upserted and read")
    ap.add_argument("--mongo-repeat", type=int, default=1,
                    help="MongoDB store: timed repeats of re-upsert and reads")
    ap.add_argument("--no-wire", action="store_true", help="skip the MongoDB wire server run")
    ap.add_argument("--mongodb-url", help="also run the MongoDB measures against this server")
    ap.add_argument("--cache-ops", type=int, default=2000, help="live-cache operations per measure")
    ap.add_argument("--redis-url", help="live cache on this Redis (default: a private redis-server)")
    args = ap.parse_args()
    for name in ("upsert", "read", "repeat", "mongo_n", "mongo_repeat", "cache_ops"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} {getattr(args, name)} must be at least 1")
    if args.mongo_n < 500:
        ap.error(f"--mongo-n {args.mongo_n} must be at least 500 (the latest-500 read)")

    from pocketquant_pipelines.logging import configure_logging
    configure_logging(level="WARNING")

    rows: list[Row] = []
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="pq-bench-") as tmp:
        workdir = Path(tmp)
        try:
            from pocketquant_pipelines.storage.sqlite_store import SQLiteBarStore
            with SQLiteBarStore(workdir / "bars.sqlite3") as store:
                rows += bench_store("sqlite (embedded)", store, args.upsert, args.read, workdir,
                                    args.repeat)
            if not args.no_wire:
                proc, url = start_wire_server(workdir)
                procs.append(proc)
                rows += run_mongo(WIRE_LABEL, url, args)
                stop(procs.pop())
            if args.mongodb_url:
                rows += run_mongo("mongodb (at --mongodb-url)", args.mongodb_url, args)

            from pocketquant_pipelines.storage.embedded_cache import EmbeddedLiveCache
            cache = EmbeddedLiveCache(workdir / "live.sqlite3")
            rows += bench_cache("embedded live cache", cache, args.cache_ops)
            cache.close()
            redis_url = args.redis_url
            if redis_url is None:
                started = start_redis(workdir)
                if started is None:
                    print("note: redis-server is not installed: no Redis rows", file=sys.stderr)
                else:
                    procs.append(started[0])
                    redis_url = started[1]
            if redis_url:
                from pocketquant_pipelines.storage.redis_cache import RedisLiveCache
                cache = RedisLiveCache(url=redis_url)
                rows += bench_cache("redis live cache", cache, args.cache_ops)
                cache.close()
        finally:
            for proc in procs:
                stop(proc)

    head = ("backend", "measure", "result", "baseline", "ratio")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
