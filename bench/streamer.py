"""Streamer throughput and tick -> live-cache latency, end to end through real processes.

    .venv/bin/python bench/streamer.py                       # 1000 symbols, 20k ticks/s target
    .venv/bin/python bench/streamer.py --symbols 1000 --rate 20000 --duration 20 --markdown
    .venv/bin/python bench/streamer.py --replicas 1,2 --markdown  # 1 and 2 replicas, with ratios

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
* ``--replicas 1,2``: each configuration in turn against the same simulator and Redis, the
  symbols shared by rendezvous hashing (STREAMER_REPLICA_INDEX/COUNT), metrics summed over
  the replicas; the last rows are the ticks/s and p99 ratios against the first configuration.

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
    from tradingview_simulator import SymbolSpec
    from tradingview_simulator.server import run_simulator_in_thread

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
    ap.add_argument("--profile", metavar="PATH", help="run the streamers under cProfile, write stats to PATH.<n>.<index>")
    ap.add_argument("--replicas", default="1", metavar="N[,N...]",
                    help="streamer replicas per configuration, measured one after another in this run "
                         "against the same simulator and Redis, e.g. 1,2 (ratios against the first)")
    ap.add_argument("--tick-log", default="on", metavar="on|off[,...]",
                    help="the tick audit trail in each configuration, e.g. off,on measures both "
                         "(ratios against the first configuration)")
    args = ap.parse_args()
    try:
        counts = [int(n) for n in args.replicas.split(",")]
    except ValueError:
        ap.error(f"--replicas {args.replicas!r}: expected counts like 1,2")
    if not all(1 <= n <= 16 for n in counts):
        ap.error(f"--replicas {args.replicas!r}: each count must be in 1..16")
    logs = args.tick_log.split(",")
    if not logs or any(x not in ("on", "off") for x in logs):
        ap.error(f"--tick-log {args.tick_log!r}: expected on, off or off,on")
    configs = [(n, x == "on") for n in counts for x in logs]

    import redis

    from pocketquant_pipelines.logging import configure_logging

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

        results = [measure(args, n, speed, sim_url, redis_url, {"simulator": sim_proc.pid,
                                                                  "redis-server": redis_proc.pid},
                           tmp / f"r{n}-{'log' if log_on else 'nolog'}", tick_log=log_on)
                   for n, log_on in configs]
        names = [name for name, _ in results[0]["rows"]]
        header = [f"{n} replica{'s' if n > 1 else ''}, tick log {'on' if log_on else 'off'}"
                  for n, log_on in configs]
        table = [(name, *[dict(r["rows"]).get(name, "") for r in results]) for name in names]
        if len(results) > 1:
            base = results[0]
            for k, (r, name) in enumerate(zip(results[1:], header[1:], strict=True), start=1):
                before, after = [""] * k, [""] * (len(configs) - 1 - k)  # the ratio sits in column k
                table.append((f"ticks/s ratio ({name}) : ({header[0]})", *before,
                              f"{r['ticks_s'] / base['ticks_s']:.2f}", *after))
                table.append((f"latency p99 ratio ({name}) : ({header[0]})", *before,
                              f"{r['p99'] / base['p99']:.2f}", *after))
        load = os.getloadavg()[0]
        table.append(("machine", f"{os.cpu_count()} cores, load average {load:.1f} at the end, "
                                 f"{platform.python_implementation()} {platform.python_version()}",
                      *([""] * (len(configs) - 1))))
        rows = table
        if args.markdown:
            print("| measure | " + " | ".join(header) + " |\n|---|" + "---:|" * len(header))
            for row in rows:
                print("| " + " | ".join(row) + " |")
        else:
            width = max(len(row[0]) for row in rows)
            print(f"{'':<{width}}  " + "  ".join(f"{h:>24}" for h in header))
            for name, *values in rows:
                print(f"{name:<{width}}  " + "  ".join(f"{v:>24}" for v in values))
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


def measure(args, n_replicas: int, speed: float, sim_url: str, redis_url: str, shared_pids: dict,
            tmp: Path, tick_log: bool = True) -> dict:
    """One configuration: ``n_replicas`` streamer processes (STREAMER_REPLICA_INDEX 0..n-1 of
    n) sharing the symbols, their metrics summed. Returns the rows, ticks/s and latency p99."""
    import redis

    from pocketquant_pipelines.settings import load_settings
    from pocketquant_pipelines.storage.registry import SymbolInfo
    from pocketquant_pipelines.storage.factory import open_bar_store

    tmp.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "TRADINGVIEW_", "REDIS_", "STREAMER_"))}
    env.update({"POCKETQUANT_DATA_DIR": str(tmp / "data"), "REDIS_URL": redis_url, "TRADINGVIEW_WS_URL": sim_url,
                "LOG_FORMAT": "json", "LOG_LEVEL": "WARNING", "STREAMER_REGISTRY_POLL_S": "5",
                "STREAMER_REPLICA_COUNT": str(n_replicas), "TICK_LOG_ENABLED": "true" if tick_log else "false"})
    store = open_bar_store(load_settings(env, dotenv_path=tmp / "none.env"))
    for name in symbol_names(args.symbols):
        store.add_symbol(SymbolInfo(name, timezone="Etc/UTC", session="24x7", stream=True))
    store.close()
    redis.Redis.from_url(redis_url).flushdb()  # the previous configuration's quotes and bars
    streamers: list[subprocess.Popen] = []
    ports: list[int] = []
    try:
        for index in range(n_replicas):
            port = free_port()
            command = [sys.executable, "-m", "streamer"]
            if args.profile:
                command = [sys.executable, "-m", "cProfile", "-o", f"{Path(args.profile).resolve()}.{n_replicas}.{index}",
                           "-m", "streamer"]
            streamers.append(subprocess.Popen(
                command, env={**env, "STREAMER_HEALTH_PORT": str(port), "STREAMER_REPLICA_INDEX": str(index)},
                cwd=tmp, stdout=subprocess.DEVNULL, stderr=open(tmp / f"streamer-{index}.log", "w"),
                preexec_fn=lambda: (signal.signal(signal.SIGTERM, signal.SIG_DFL),
                                    signal.signal(signal.SIGINT, signal.SIG_DFL))))
            ports.append(port)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            bodies = [health(port) for port in ports]
            if (all(status == 200 and body.get("ticks", 0) > 0 for status, body in bodies)
                    and sum(body.get("subscribed_count", 0) for _, body in bodies) == args.symbols):
                break
            time.sleep(0.2)
        else:
            tails = "\n".join((tmp / f"streamer-{i}.log").read_text()[-2000:] for i in range(n_replicas))
            raise SystemExit(f"streamers not healthy: {[health(port) for port in ports]}\n{tails}")

        # --- observer -------------------------------------------------------------------------
        latencies: list[float] = []
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
                    stamp = json.loads(msg["data"]).get("received_at")
                    if stamp is not None:
                        latencies.append(now - stamp)
            sub.close()

        def summed() -> dict[str, float]:
            total: dict[str, float] = {}
            for port in ports:
                for name, value in metrics(port).items():
                    total[name] = total.get(name, 0.0) + value
            return total

        observer = threading.Thread(target=observe, daemon=True)
        observer.start()
        time.sleep(args.warmup)
        pids = {**shared_pids, **{f"streamer {i}": proc.pid for i, proc in enumerate(streamers)},
                "bench observer": os.getpid()}
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        m0, t0 = summed(), time.monotonic()
        measuring.set()
        time.sleep(args.duration)
        measuring.clear()
        m1, t1 = summed(), time.monotonic()
        cpu1 = {k: cpu_seconds(p) for k, p in pids.items()}
        stop.set()
        observer.join(timeout=5)
    finally:
        for proc in streamers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    elapsed = t1 - t0
    p = "pocketquant_streamer_"

    def rate(name: str) -> float:
        return (m1[p + name] - m0[p + name]) / elapsed

    hist = {k: v for k, v in m1.items() if k.startswith(p + "tick_to_cache_seconds_bucket")}
    total = (m1[p + "tick_to_cache_seconds_count"] - m0[p + "tick_to_cache_seconds_count"]) or 1
    internal = sorted((float("inf") if (le := k.split('le="')[1].rstrip('"}')) == "+Inf" else float(le),
                       (v - m0.get(k, 0)) / total) for k, v in hist.items())
    rounds = m1[p + "cache_round_seconds_count"] - m0[p + "cache_round_seconds_count"]
    round_time = (m1[p + "cache_round_seconds_sum"] - m0[p + "cache_round_seconds_sum"]) / max(1.0, rounds)
    p50_bucket = next((le for le, frac in internal if frac >= 0.5), float("nan"))
    p99_bucket = next((le for le, frac in internal if frac >= 0.99), float("nan"))
    ticks_s, p99 = rate("ticks_total"), pct(latencies, 99)
    rows = [
        ("symbols streamed", f"{args.symbols}"),
        ("target rate (simulator)", f"{args.rate:,.0f} ticks/s (speed {speed:g}x, a tick per symbol every {args.tick_seconds} sim s)"),
        ("ticks/s into the streamers", f"{ticks_s:,.0f}"),
        ("quotes/s published to Redis", f"{rate('quotes_published_total'):,.0f}"),
        ("completed bars/s upserted", f"{rate('bars_written_total'):,.0f}"),
        ("tick -> cache latency p50", f"{pct(latencies, 50) * 1000:.1f} ms"),
        ("tick -> cache latency p99", f"{p99 * 1000:.1f} ms"),
        ("tick -> cache latency max", f"{max(latencies) * 1000 if latencies else float('nan'):.1f} ms"),
        ("streamer-side tick -> cache write (histogram)", f"p50 <= {p50_bucket * 1000:g} ms, p99 <= {p99_bucket * 1000:g} ms"),
        ("cache write rounds", f"{rounds / elapsed:,.1f}/s, {round_time * 1000:.1f} ms each on average"),
        ("latency samples", f"{len(latencies):,} (symbols S0000-S0099)"),
        ("late ticks / cache errors", f"{m1.get(p + 'late_ticks_total', 0):.0f} / {m1.get(p + 'cache_errors_total', 0):.0f}"),
    ]
    streamer_cpu = sum(cpu1[k] - cpu0[k] for k in pids if k.startswith("streamer "))
    rows.append(("CPU streamers (sum)", f"{streamer_cpu / elapsed * 100:.0f} % of one core"))
    for name in ("simulator", "redis-server", "bench observer"):
        rows.append((f"CPU {name}", f"{(cpu1[name] - cpu0[name]) / elapsed * 100:.0f} % of one core"))
    return {"rows": rows, "ticks_s": ticks_s, "p99": p99}


if __name__ == "__main__":
    sys.exit(main())
