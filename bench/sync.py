"""Sync and dataset benchmark: a historical sync and a dataset write, each beside its floor.

    .venv/bin/python bench/sync.py                     # 5000-bar re-syncs into 200k stored bars
    .venv/bin/python bench/sync.py --stored 1000000    # a deeper series

What it measures (docs/benchmarks.md, "## Sync and datasets"):

* sync: ``sync_history_async`` of ``--bars`` 1m bars of BINANCE:BTCUSDT (all already stored,
  a re-sync) into a series that holds ``--stored`` older bars too, against the simulator in
  its own process. Floor: ``client.fetch_history`` of the same request on the same client,
  the fetch alone. Sync minus floor is what the store work (upsert, the reads of the series,
  the registry) costs.
* dataset: ``datasets.write_series`` of the whole stored series from ``read_bars_table``
  (what the ``ohlcv_dataset`` asset does: read, then write Parquet). Floor: ``pq.write_table``
  of the very table that file holds (read back from it), same compression, same directory.

Rounds alternate sync and floor, so machine load hits both alike; best and median reported.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))
from history import start_simulator  # noqa: E402

from pocketquant_pipelines import datasets as ds  # noqa: E402
from pocketquant_pipelines.market.bar_columns import BarColumns  # noqa: E402
from pocketquant_pipelines.market.intervals import Interval  # noqa: E402
from pocketquant_pipelines.market.timeutil import utcnow  # noqa: E402

SYMBOL = "BINANCE:BTCUSDT"


def older_bars(n: int, before_epoch: float) -> BarColumns:
    """n valid 1m bars ending one minute before ``before_epoch`` (older than the server's)."""
    rng = np.random.default_rng(7)
    t = (np.floor(before_epoch / 60) - n + np.arange(n) - 1) * 60.0
    close = 100 + np.cumsum(rng.normal(0, 0.1, n))
    open_ = close + rng.normal(0, 0.05, n)
    high = np.maximum(open_, close) + rng.random(n) * 0.1
    low = np.minimum(open_, close) - rng.random(n) * 0.1
    return BarColumns.from_arrays(SYMBOL, Interval.M1, t, open_, high, low, close,
                                  rng.integers(0, 10_000, n).astype(float))


def stats(times: list[float]) -> tuple[float, float]:
    return min(times), statistics.median(times)


async def bench_sync(store, url: str, bars: int, rounds: int) -> list[tuple[str, float, float]]:
    from pocketquant_pipelines.sync import sync_history_async
    from pocketquant_pipelines.tradingview.client import TradingViewClient

    sync_t, fetch_t = [], []
    async with TradingViewClient(url=url) as client:
        # the first sync writes the server's bars; the timed ones re-sync them
        await sync_history_async(store, client, SYMBOL, "1m", bars, first_bars=bars, overlap_bars=2)
        for _ in range(rounds):
            t = time.perf_counter()
            await client.fetch_history(SYMBOL, Interval.M1, bars)
            fetch_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            outcome = await sync_history_async(store, client, SYMBOL, "1m", bars, first_bars=bars,
                                               overlap_bars=2)
            sync_t.append(time.perf_counter() - t)
            # only the in-progress newest bar (and one more when a minute rolls over) changes
            assert outcome.fetched == bars and outcome.written <= 2, outcome
    (sync_best, sync_median), (fetch_best, fetch_median) = stats(sync_t), stats(fetch_t)
    return [
        (f"sync {bars:,} bars into {outcome.stored_bars:,} stored (re-sync)", sync_best, sync_median),
        (f"floor: fetch_history of the same {bars:,} bars", fetch_best, fetch_median),
        ("sync minus floor (store work)", sync_best - fetch_best, sync_median - fetch_median),
    ]


def bench_dataset(store, workdir: Path, rounds: int) -> list[tuple[str, float, float]]:
    write_t, floor_t = [], []
    rows = 0
    for _ in range(rounds):
        t = time.perf_counter()
        written = ds.write_series(workdir, SYMBOL, "1m", store.read_bars_table(SYMBOL, "1m"))
        write_t.append(time.perf_counter() - t)
        rows = written.rows
        table = pq.read_table(written.path)
        t = time.perf_counter()
        pq.write_table(table, workdir / "floor.parquet", compression="zstd")
        floor_t.append(time.perf_counter() - t)
    return [
        (f"dataset file of {rows:,} bars (store read + Parquet write)", *stats(write_t)),
        (f"floor: pq.write_table of the same {rows:,}-row table", *stats(floor_t)),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=5000, help="bars per sync")
    ap.add_argument("--stored", type=int, default=200_000, help="older bars stored beforehand")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()

    from pocketquant_pipelines.logging import configure_logging
    from pocketquant_pipelines.storage.sqlite_store import SQLiteBarStore

    configure_logging(level="WARNING")
    proc, url = start_simulator(seed=42)
    rows: list[tuple[str, float, float]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="pq-bench-sync-") as tmp, \
                SQLiteBarStore(Path(tmp) / "bars.sqlite3") as store:
            server_first = utcnow().timestamp() - (args.bars + 10) * 60
            store.upsert_bars(older_bars(args.stored, server_first))
            rows += asyncio.run(bench_sync(store, url, args.bars, args.rounds))
            rows += bench_dataset(store, Path(tmp) / "data", args.rounds)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'best ms':>9}  {'median ms':>9}")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 9}")
    for name, best, median in rows:
        print(f"{name.ljust(width)}  {best * 1000:9.1f}  {median * 1000:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
