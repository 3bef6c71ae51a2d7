"""CPU cost per tick of each streamer stage, on one core, without the network or other
processes (so the numbers do not depend on machine load). Companion of bench/streamer.py:
it says where a tick's time goes and so what one streamer process can sustain.

    .venv/bin/python bench/streamer_stages.py [--symbols 1000] [--ticks 100000] [--markdown]

Stages (each measured on its own, best of 3):

1. client: decode WebSocket messages of qsd frames shaped like the simulator's (lp_time in
   its own frame a third of the time, bid/ask in another; up to 64 frames a message, as the
   simulator packs them), merge fields, build the Ticks, hand them over as one list per
   message (``QuoteStream.batches()``, what the streamer consumes);
2. aggregator: ``BarAggregator.on_tick_values`` (13 intervals);
3. service: ``StreamerService.on_ticks`` per message, without the aggregator's share (quote
   dicts, stamps, dirty tracking, completed bars to the writers);
4. cache quote: one tick's quote (one SET, coalesced per round in practice, + one PUBLISH)
   on a private redis-server, through the streamer's round writer and, for comparison,
   through ``RedisLiveCache.write_batch``;
5. cache bars: ``current_bars()`` + writing one symbol's 13 in-progress bars, per symbol push;
6. store: ``upsert_bars`` of completed bars (SQLite), per bar: many bars of few series, and
   the streamer's pattern -- 1000 series with one new bar each per upsert (1 s batches under
   a heavy bar flow), or sixteen each (the store writer's paced batches). The embedded store's
   cost is per series touched, so the two differ about tenfold per bar.

Not a test: nothing asserts a time. Results go to docs/benchmarks.md "## Streamer".
"""

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

T0 = datetime(2026, 1, 27, tzinfo=UTC).timestamp()


def best(fn, repeat=3) -> float:
    """Best CPU time of this process (time.process_time): what the stage costs the streamer's
    interpreter, independent of other jobs on the machine and of time spent waiting on Redis."""
    times = []
    for _ in range(repeat):
        started = time.process_time()
        fn()
        times.append(time.process_time() - started)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=1000)
    ap.add_argument("--ticks", type=int, default=60000)
    ap.add_argument("--frames-per-message", type=int, default=64, help="as the simulator packs them")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    from pocketquant_pipelines.logging import configure_logging

    configure_logging("console", "WARNING")
    from pocketquant_pipelines.market.aggregator import BarAggregator
    from pocketquant_pipelines.market.ticks import Tick
    from pocketquant_pipelines.market.timeutil import from_epoch
    from pocketquant_pipelines.settings import load_settings
    from pocketquant_pipelines.storage.bars import Source
    from pocketquant_pipelines.storage.live import quote_channel
    from pocketquant_pipelines.storage.registry import SymbolInfo
    from pocketquant_pipelines.storage.redis_cache import RedisLiveCache
    from pocketquant_pipelines.storage.sqlite_store import SQLiteBarStore
    from pocketquant_pipelines.tradingview.codec import decode_message, encode_frame
    from pocketquant_pipelines.tradingview.quote_stream import QuoteStream
    from streamer.service import StreamerService

    n, symbols = args.ticks, [f"SIM:S{i:04d}" for i in range(args.symbols)]
    rows = []

    # 1. client ---------------------------------------------------------------------------
    tick_frames = []  # the frames of each tick
    for k in range(n):
        sym = symbols[k % len(symbols)]
        t = int(T0) + 5 * (k // len(symbols))
        price = 100 + (k % 97) / 100
        frames = []
        if k % 3 == 0:
            frames.append(encode_frame({"m": "qsd", "p": ["qs_bench", {"n": sym, "s": "ok", "v": {"lp_time": t}}]}))
            main_v = {"lp": price, "ch": 0.5, "chp": 0.1, "volume": 1000 + k}
        else:
            main_v = {"lp": price, "lp_time": t, "ch": 0.5, "chp": 0.1, "volume": 1000 + k}
        frames.append(encode_frame({"m": "qsd", "p": ["qs_bench", {"n": sym, "s": "ok", "v": main_v}]}))
        frames.append(encode_frame({"m": "qsd", "p": ["qs_bench", {"n": sym, "s": "ok",
                                                                    "v": {"bid": price - 0.01, "ask": price + 0.01}}]}))
        tick_frames.append(frames)
    messages, cut, message_ticks = [], [], []  # whole ticks per message, at most N frames
    for k, frames in enumerate(tick_frames):
        if cut and sum(map(len, (tick_frames[j] for j in cut))) + len(frames) > args.frames_per_message:
            messages.append("".join(f for j in cut for f in tick_frames[j]))
            message_ticks.append(cut)
            cut = []
        cut.append(k)
    messages.append("".join(f for j in cut for f in tick_frames[j]))
    message_ticks.append(cut)

    def client_stage():
        qs = QuoteStream(None, symbols)
        qs.batches()  # the streamer's mode: one list per message on the queue
        for text in messages:
            for frame in decode_message(text):
                qs.on_frame(frame)
            qs.on_batch_end()

    rows.append(("client: decode + merge + build tick", best(client_stage) / n))

    # 2. aggregator -------------------------------------------------------------------------
    ticks = [Tick(symbols[k % len(symbols)], from_epoch(T0 + 5 * (k // len(symbols))), 100 + (k % 97) / 100, 3.0)
             for k in range(n)]

    def agg_stage():
        aggs = {s: BarAggregator(s) for s in symbols}
        for tk in ticks:
            aggs[tk.symbol].on_tick_values(tk.time.timestamp(), tk.price, tk.volume)

    agg_cost = best(agg_stage) / n
    batches = [[ticks[k] for k in ks] for ks in message_ticks]
    rows.append(("aggregator: on_tick_values (13 intervals)", agg_cost))

    tmp = Path(tempfile.mkdtemp(prefix="pq-bench-stages-"))
    port = 6500 + os.getpid() % 1000
    redis_proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
                                   "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                                  stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        cache = RedisLiveCache(url=f"redis://127.0.0.1:{port}/0")
        store = SQLiteBarStore(tmp / "bars.sqlite3")
        for s in symbols:
            store.add_symbol(SymbolInfo(s, timezone="Etc/UTC", session="24x7", stream=True))
        settings = load_settings({"POCKETQUANT_DATA_DIR": str(tmp), "TICK_LOG_ENABLED": "false"},
                                 dotenv_path=tmp / "none.env")
        settings_logged = load_settings({"POCKETQUANT_DATA_DIR": str(tmp), "TICK_LOG_ENABLED": "true",
                                         "TICK_LOG_RETENTION_DAYS": "3650"}, dotenv_path=tmp / "none.env")

        from pocketquant_pipelines.tradingview.models import ClientStats

        class NoClient:  # a QuoteClient whose source ends at once: the bench feeds on_ticks itself
            def quote_stream(self, symbols):
                class S:
                    stats = ClientStats()

                    async def subscribe(self, *a): ...

                    async def unsubscribe(self, *a): ...

                    async def batches(self):
                        return
                        yield

                    async def close(self): ...
                return S()

            async def resolve_symbol(self, symbol):
                raise LookupError(symbol)

            async def close(self): ...

        # 3. service on_tick (minus the aggregator) ----------------------------------------
        write_costs = []

        def service_stage(chosen=settings):
            svc = StreamerService(chosen, store=store, cache=cache, client=NoClient(), health_port=0)
            asyncio.run(svc.apply_registry(store.list_symbols(stream_only=True)))
            for batch in batches:
                svc.on_ticks(batch)
            svc.store_writer._pending.clear()
            svc.cache_writer._swap()
            if svc.tick_log is not None:  # the log's Parquet write, which runs on a worker thread
                t0 = time.perf_counter()
                svc.tick_log.flush()
                write_costs.append(time.perf_counter() - t0)

        service_cost = best(service_stage) / n
        logged_cost = best(lambda: service_stage(settings_logged)) / n
        rows.append(("service: on_ticks bookkeeping (excl. aggregator), tick log off", service_cost - agg_cost))
        rows.append(("service: on_ticks bookkeeping (excl. aggregator), tick log on", logged_cost - agg_cost))
        rows.append(("tick log: recording, on the event loop (on - off)", logged_cost - service_cost))
        rows.append(("tick log: Parquet write per tick (worker thread)", min(write_costs) / n))

        # 4. cache quote -----------------------------------------------------------------------
        quotes = [dict(tk.to_dict(), received_at=time.time()) for tk in ticks[:20000]]

        fast = RedisLiveCache(url=f"redis://127.0.0.1:{port}/0")

        def cache_quote_stage(write):
            for i in range(0, len(quotes), 1000):
                chunk = quotes[i:i + 1000]
                write(quotes={q["symbol"]: q for q in chunk},
                      messages=[(quote_channel(q["symbol"]), q) for q in chunk])

        rows.append(("cache: quote SET + PUBLISH, streamer round writer",
                     best(lambda: cache_quote_stage(fast.write_trusted_batch)) / len(quotes)))
        rows.append(("(cache: quote SET + PUBLISH via RedisLiveCache.write_batch)",
                     best(lambda: cache_quote_stage(cache.write_batch)) / len(quotes)))

        # 5. cache bars per symbol push ------------------------------------------------------------
        aggs = {s: BarAggregator(s) for s in symbols}
        for s in symbols:
            aggs[s].on_tick_values(T0, 100.0, 1.0)

        def bars_stage():
            for i in range(0, len(symbols), 100):
                fast.write_trusted_batch(current_bars={s: list(aggs[s].current_bars().values()) for s in symbols[i:i + 100]})

        per_push = best(bars_stage) / len(symbols)
        rows.append(("cache: one symbol's 13 in-progress bars (snapshot + write), per push", per_push))

        # 6. store -----------------------------------------------------------------------------
        completed = []
        for s in symbols[:100]:
            a = BarAggregator(s)
            for k in range(200):
                completed += a.on_tick_values(T0 + 60 * k, 100 + k % 7, 1.0)

        def store_stage():
            store.delete_bars(symbols[0])  # noqa: keeps the first run from being all inserts only
            for i in range(0, len(completed), 5000):
                store.upsert_bars(completed[i:i + 5000], source=Source.STREAM)

        rows.append(("store: upsert completed bars (batches of 5000), per bar", best(store_stage, 1) / len(completed)))

        from pocketquant_pipelines.market.bars import Bar
        from pocketquant_pipelines.market.intervals import Interval

        minute = [0]

        def streamer_pattern(per_series: int) -> float:
            batch = [Bar(s, Interval.M1, from_epoch(T0 + 60 * (minute[0] + m)), 100.0, 101.0, 99.0, 100.5, 1.0)
                     for s in symbols for m in range(per_series)]
            minute[0] += per_series
            started = time.process_time()
            store.upsert_bars(batch, source=Source.STREAM)
            return (time.process_time() - started) / len(batch)

        streamer_pattern(1)  # the series exist from here on
        rows.append((f"store: streamer pattern, {len(symbols)} series x 1 new bar per upsert, per bar",
                     min(streamer_pattern(1) for _ in range(3))))
        rows.append((f"store: streamer pattern, {len(symbols)} series x 16 new bars per upsert, per bar",
                     min(streamer_pattern(16) for _ in range(2))))
        store.close()
        cache.close()
        fast.close()
    finally:
        redis_proc.terminate()
        redis_proc.wait(timeout=5)
        shutil.rmtree(tmp, ignore_errors=True)

    per_tick = rows[0][1] + rows[1][1] + rows[2][1] + rows[3][1]  # row 4 is the comparison
    if args.markdown:
        print("| stage | CPU µs |\n|---|---:|")
        for name, sec in rows:
            print(f"| {name} | {sec * 1e6:.1f} |")
        print(f"| **per tick (stages 1-4)** | **{per_tick * 1e6:.1f}** → ≈ {1 / per_tick:,.0f} ticks/s on one core |")
    else:
        for name, sec in rows:
            print(f"{name:<70} {sec * 1e6:8.1f} µs")
        print(f"{'per tick (stages 1-4)':<70} {per_tick * 1e6:8.1f} µs  -> ~{1 / per_tick:,.0f} ticks/s on one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
