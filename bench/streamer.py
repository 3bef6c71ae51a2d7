"""Streamer throughput and tick -> live-cache latency, end to end through real processes.

    .venv/bin/python bench/streamer.py                       # 1000 symbols, 20k ticks/s target
    .venv/bin/python bench/streamer.py --symbols 1000 --rate 20000 --duration 20 --markdown

Processes (as deployed): a private ``redis-server`` on a free port; the simulator serving
1000 generated 24x7 symbols (SIM:S0000..S0999) in its own process; ``python -m streamer``
with REDIS_URL pointing at that Redis; this script as the observer. The registry is an
embedded SQLite store in a temp dir.

Measured:

* ticks/s: the streamer's ``ticks_total`` (/metrics) over the measurement window,
  against the rate the simulator was asked for (symbols x speed / tick_seconds).
* tick -> live-cache latency: the streamer stamps ``received_at`` (wall clock) in every quote
  when it takes the tick off the client; this script subscribes to the quote channels of a
  sample of symbols (``pq:quotes:SIM:S00*``: 100 symbols, to keep the observer's own CPU
  small) and takes receipt time - received_at. That is: aggregation + coalescing + the cache
  writer's pipelined round + Redis pub/sub delivery. It does not include the client's frame
  decoding before the tick exists.
* CPU of each process over the window (from /proc), to show where the bottleneck is.

Simulated time runs at rate x tick_seconds / symbols times real time (20x by default: a tick per
symbol per simulated second), so bars complete 20x faster than they would live: 1000 symbols
x 13 intervals close ~400 bars/s here against ~20/s in real time. A larger ``--tick-seconds``
reaches the same tick rate with faster simulated time and loads the bar store harder
(``--tick-seconds 5`` = 100x, ~2,800 bars/s): a stress test of the store writer, not of tick
intake. The 40 s window spans several paced store writes (streamer/store_writer.py).

The simulator's pump interval is set so each symbol gets one tick per pump, which makes the
offered rate exactly symbols / pump interval (the client would also split two ticks of one
symbol packed into one message; see quote_stream.on_frame).

Not a test: nothing asserts a time. Results go to docs/benchmarks.md "## Streamer".
"""

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIM_START = datetime(2026, 1, 27, 12, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def symbol_names(n: int) -> list[str]:
    return [f"SIM:S{i:04d}" for i in range(n)]


def run_simulator(n_symbols: int, speed: float, tick_seconds: int, pump_s: float, conn) -> None:
    """Child process: the simulator with generated symbols; sends its URL, runs until killed."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from pocketquant_pipelines.logging import configure_logging
    from pocketquant_pipelines.tradingview.simulator.market import SymbolSpec
    from pocketquant_pipelines.tradingview.simulator.server import run_simulator_in_thread

    configure_logging("json", "WARNING")
    specs = [SymbolSpec(name, f"Synthetic {name}", "spot", "USD", "24x7", "Etc/UTC", pricescale=100,
                        start_price=50.0 + (i % 400), tick_seconds=tick_seconds, mean_tick_volume=50.0,
                        history_start=date(2026, 1, 1))  # short history: snapshots stay cheap
             for i, name in enumerate(symbol_names(n_symbols))]
    with run_simulator_in_thread(seed=1, speed=speed, sim_start=SIM_START, symbols=specs,
                                 pump_interval_s=pump_s, resolve_delay_s=0.0) as server:
        conn.send(server.url)
        while True:
            time.sleep(3600)


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return float("nan")


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def health(port: int) -> tuple[int | None, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except OSError:
        return None, {}


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=20000, help="target ticks/s over all symbols")
    ap.add_argument("--tick-seconds", type=int, default=1, help="simulated seconds between a symbol's ticks")
    ap.add_argument("--duration", type=float, default=40.0, help="measurement window (s)")
    ap.add_argument("--warmup", type=float, default=8.0, help="seconds before measuring")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--profile", metavar="PATH", help="run the streamer under cProfile, write stats to PATH")
    args = ap.parse_args()

    import redis

    from pocketquant_pipelines.logging import configure_logging
    from pocketquant_pipelines.settings import load_settings
    from pocketquant_pipelines.storage.registry import SymbolInfo
    from pocketquant_pipelines.storage.factory import open_bar_store

    configure_logging("console", "WARNING")
    speed = args.rate * args.tick_seconds / args.symbols
    pump_s = args.tick_seconds / speed  # one tick per symbol per pump
    tmp = Path(tempfile.mkdtemp(prefix="pq-bench-streamer-"))
    procs: list[subprocess.Popen] = []
    sim_proc = None
    try:
        # --- redis -------------------------------------------------------------------------
        redis_port = free_port()
        redis_proc = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(redis_proc)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        r = redis.Redis.from_url(redis_url)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)

        # --- simulator (own process) ------------------------------------------------------
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        sim_proc = ctx.Process(target=run_simulator, args=(args.symbols, speed, args.tick_seconds, pump_s, child),
                               daemon=True)
        sim_proc.start()
        sim_url = parent.recv()

        # --- registry + streamer ------------------------------------------------------------
        data = tmp / "data"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "TRADINGVIEW_", "REDIS_"))}
        health_port = free_port()
        env.update({"POCKETQUANT_DATA_DIR": str(data), "REDIS_URL": redis_url, "TRADINGVIEW_WS_URL": sim_url,
                    "STREAMER_HEALTH_PORT": str(health_port), "LOG_FORMAT": "json", "LOG_LEVEL": "WARNING",
                    "STREAMER_REGISTRY_POLL_S": "5"})
        settings = load_settings(env, dotenv_path=tmp / "none.env")
        store = open_bar_store(settings)
        for name in symbol_names(args.symbols):
            store.add_symbol(SymbolInfo(name, timezone="Etc/UTC", session="24x7", stream=True))
        store.close()
        command = [sys.executable, "-m", "streamer"]
        if args.profile:
            command = [sys.executable, "-m", "cProfile", "-o", str(Path(args.profile).resolve()), "-m", "streamer"]
        streamer = subprocess.Popen(command, env=env, cwd=tmp,
                                    stdout=subprocess.DEVNULL, stderr=open(tmp / "streamer.log", "w"),
                                    preexec_fn=lambda: (signal.signal(signal.SIGTERM, signal.SIG_DFL),
                                                        signal.signal(signal.SIGINT, signal.SIG_DFL)))
        procs.append(streamer)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, body = health(health_port)
            if status == 200 and body.get("subscribed_count") == args.symbols and body.get("ticks", 0) > 0:
                break
            time.sleep(0.2)
        else:
            status, body = health(health_port)
            log_tail = (tmp / "streamer.log").read_text()[-3000:]
            raise SystemExit(f"streamer not healthy: {status} {body}\n{log_tail}")

        # --- observer -----------------------------------------------------------------------
        latencies: list[float] = []
        received = [0]
        measuring = threading.Event()
        stop = threading.Event()

        def observe() -> None:
            sub = redis.Redis.from_url(redis_url).pubsub()
            sub.psubscribe("pq:quotes:SIM:S00*")
            while not stop.is_set():
                msg = sub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                if msg is None or msg["type"] != "pmessage":
                    continue
                now = time.time()
                if measuring.is_set():
                    received[0] += 1
                    stamp = json.loads(msg["data"]).get("received_at")
                    if stamp is not None:
                        latencies.append(now - stamp)
            sub.close()

        observer = threading.Thread(target=observe, daemon=True)
        observer.start()
        time.sleep(args.warmup)
        pids = {"simulator": sim_proc.pid, "streamer": streamer.pid, "redis-server": redis_proc.pid,
                "bench observer": os.getpid()}
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        m0, t0 = metrics(health_port), time.monotonic()
        measuring.set()
        time.sleep(args.duration)
        measuring.clear()
        m1, t1 = metrics(health_port), time.monotonic()
        cpu1 = {k: cpu_seconds(p) for k, p in pids.items()}
        stop.set()
        observer.join(timeout=5)
        _, final_health = health(health_port)
        elapsed = t1 - t0
        p = "pocketquant_streamer_"
        ticks_s = (m1[p + "ticks_total"] - m0[p + "ticks_total"]) / elapsed
        quotes_s = (m1[p + "quotes_published_total"] - m0[p + "quotes_published_total"]) / elapsed
        bars_s = (m1[p + "bars_written_total"] - m0[p + "bars_written_total"]) / elapsed
        cache_errors = m1.get(p + "cache_errors_total", 0)
        late = m1.get(p + "late_ticks_total", 0)
        sim_behind = None
        if final_health.get("market_time"):
            # expected sim time vs the newest tick the streamer has seen
            started = datetime.fromisoformat(final_health["market_time"])
            sim_behind = started.timestamp()
        hist = {k: v for k, v in m1.items() if k.startswith(p + "tick_to_cache_seconds_bucket")}
        hist0 = {k: v for k, v in m0.items() if k.startswith(p + "tick_to_cache_seconds_bucket")}
        internal = []
        total = (m1[p + "tick_to_cache_seconds_count"] - m0[p + "tick_to_cache_seconds_count"]) or 1
        for k in hist:
            le = k.split('le="')[1].rstrip('"}')
            internal.append((float("inf") if le == "+Inf" else float(le), (hist[k] - hist0.get(k, 0)) / total))
        internal.sort()
        rounds = (m1[p + "cache_round_seconds_count"] - m0[p + "cache_round_seconds_count"]) / elapsed
        round_time = ((m1[p + "cache_round_seconds_sum"] - m0[p + "cache_round_seconds_sum"])
                      / max(1.0, m1[p + "cache_round_seconds_count"] - m0[p + "cache_round_seconds_count"]))
        p50_bucket = next((le for le, frac in internal if frac >= 0.5), float("nan"))
        p99_bucket = next((le for le, frac in internal if frac >= 0.99), float("nan"))
        rows = [
            ("symbols streamed", f"{args.symbols}"),
            ("target rate (simulator)", f"{args.rate:,.0f} ticks/s (speed {speed:g}x, a tick per symbol every {args.tick_seconds} sim s)"),
            ("ticks/s into the streamer", f"{ticks_s:,.0f}"),
            ("quotes/s published to Redis", f"{quotes_s:,.0f}"),
            ("completed bars/s upserted", f"{bars_s:,.0f}"),
            ("tick -> cache latency p50", f"{pct(latencies, 50) * 1000:.1f} ms"),
            ("tick -> cache latency p99", f"{pct(latencies, 99) * 1000:.1f} ms"),
            ("tick -> cache latency max", f"{max(latencies) * 1000 if latencies else float('nan'):.1f} ms"),
            ("streamer-side tick -> cache write (histogram)", f"p50 <= {p50_bucket * 1000:g} ms, p99 <= {p99_bucket * 1000:g} ms"),
            ("cache write rounds", f"{rounds:,.1f}/s, {round_time * 1000:.1f} ms each on average"),
            ("latency samples", f"{len(latencies):,} (symbols S0000-S0099)"),
            ("late ticks / cache errors", f"{late:.0f} / {cache_errors:.0f}"),
        ]
        for name in pids:
            used = (cpu1[name] - cpu0[name]) / elapsed * 100
            rows.append((f"CPU {name}", f"{used:.0f} % of one core"))
        load = os.getloadavg()[0]
        rows.append(("machine", f"{os.cpu_count()} cores, load average {load:.1f} during the run, "
                                f"{platform.python_implementation()} {platform.python_version()}"))
        del sim_behind
        if args.markdown:
            print("| measure | value |\n|---|---|")
            for k, v in rows:
                print(f"| {k} | {v} |")
        else:
            width = max(len(k) for k, _ in rows)
            for k, v in rows:
                print(f"{k:<{width}}  {v}")
        return 0
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if sim_proc is not None and sim_proc.is_alive():
            sim_proc.terminate()
            sim_proc.join(timeout=5)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
