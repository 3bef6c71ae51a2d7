"""Peak memory of the TradingView client against each hostile server behaviour.

    .venv/bin/python bench/hostile.py                 # every case
    .venv/bin/python bench/hostile.py --case huge_frame --case quote_flood

Each case runs the real client in a fresh child process (``python bench/hostile.py --child``)
so its peak RSS (``VmHWM`` of /proc/self/status) is the client's alone; the server (the hostile server of
``tests/tradingview/hostile_server.py``, or the project's simulator for the baselines) runs in
this process. Baselines come first, in the same run: a child that only imports the client, and
well-behaved simulator requests (history and quotes). The goal is a peak under 200 MB for every
hostile case. One extra row raises the message cap to its maximum (256 MiB) for the 55 MB
frame, to show what the cap saves.

Settings of the child: history deadline 10 s, quote silence 3 s, request and heartbeat timeouts
30 s (so each case ends by the mechanism meant for it); quote cases read for at most 5 s.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_MB = 200
SYMBOL = "BINANCE:BTCUSDT"
CLIENT = dict(history_deadline_s=10.0, quote_silence_s=3.0, request_timeout_s=30.0, heartbeat_timeout_s=30.0,
              backoff_initial_s=0.05, backoff_max_s=0.2)
QUOTE_READ_S = 5.0

# (name, server, behaviour, kind, options)
CASES = [
    ("import only", None, None, "import", {}),
    ("simulator: 100 bars", "simulator", None, "history", {"bars": 100}),
    ("simulator: 5000 bars", "simulator", None, "history", {"bars": 5000}),
    ("simulator: quotes 5 s", "simulator", None, "quotes", {}),
    ("endless_paging", "hostile", "endless_paging", "history", {"bars": 100}),
    ("endless_paging, 5000 bars", "hostile", "endless_paging", "history", {"bars": 5000}),
    ("endless_same_page", "hostile", "endless_same_page", "history", {"bars": 100}),
    ("silent", "hostile", "silent", "history", {"bars": 100}),
    ("hello_then_silent", "hostile", "hello_then_silent", "history", {"bars": 100}),
    ("huge_frame (55 MB)", "hostile", "huge_frame", "history", {"bars": 100}),
    ("wrong_length", "hostile", "wrong_length", "history", {"bars": 100}),
    ("lying_header", "hostile", "lying_header", "history", {"bars": 100}),
    ("garbage_page", "hostile", "garbage_page", "history", {"bars": 100}),
    ("garbage_frames", "hostile", "garbage_frames", "history", {"bars": 100}),
    ("slow_drip", "hostile", "slow_drip", "history", {"bars": 100}),
    ("close_mid_frame", "hostile", "close_mid_frame", "history", {"bars": 100}),
    ("quotes: silent", "hostile", "silent", "quotes", {}),
    ("quotes: heartbeats_only", "hostile", "heartbeats_only", "quotes", {}),
    ("quotes: huge_frame (55 MB)", "hostile", "huge_frame", "quotes", {}),
    ("quotes: garbage_frames", "hostile", "garbage_frames", "quotes", {}),
    ("quotes: quote_flood, fast reader", "hostile", "quote_flood", "quotes", {}),
    ("quotes: quote_flood, stalled reader", "hostile", "quote_flood", "quotes", {"stall_s": 4.0}),
    ("huge_frame, cap raised to 256 MiB", "hostile", "huge_frame", "history",
     {"bars": 100, "max_message_bytes": 256 * 1024 * 1024, "not_a_goal": True}),
]


# --------------------------------------------------------------------------- child


def child(kind: str, url: str, options: dict) -> dict:
    import asyncio

    from pocketquant_pipelines.tradingview.client import TradingViewClient

    settings = dict(CLIENT)
    if "max_message_bytes" in options:
        settings["max_message_bytes"] = options["max_message_bytes"]

    async def history() -> str:
        async with TradingViewClient(url=url, **settings) as tv:
            result = await tv.fetch_history(SYMBOL, "1m" if "hostile" in options.get("server", "") else "1h",
                                            options["bars"])
            return f"{len(result.columns)} bars"

    async def quotes() -> str:
        async with TradingViewClient(url=url, **settings) as tv, tv.quote_stream([SYMBOL]) as stream:
            count = 0
            stop = time.monotonic() + QUOTE_READ_S
            ticks = stream.__aiter__()
            while time.monotonic() < stop:
                try:
                    async with asyncio.timeout(max(0.01, stop - time.monotonic())):
                        await ticks.__anext__()
                except TimeoutError:
                    break
                count += 1
                if count == 1 and options.get("stall_s"):
                    await asyncio.sleep(options["stall_s"])  # a consumer that stops reading
            return f"{count} ticks, {stream.stats.decode_errors} skipped frames"

    started = time.monotonic()
    if kind == "import":
        outcome = "-"
    else:
        try:
            outcome = asyncio.run(history() if kind == "history" else quotes())
        except Exception as exc:  # noqa: BLE001 - the outcome is what the table reports
            outcome = type(exc).__name__
    return {"outcome": outcome, "seconds": time.monotonic() - started, "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """The process's peak RSS: VmHWM, which starts afresh at exec. (``ru_maxrss`` would not: Linux
    carries it over from the parent through fork and exec, so every child would report at least
    the RSS of this script, servers and all.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- parent


def run_case(name: str, server_kind: str | None, behaviour: str | None, kind: str, options: dict) -> dict:
    from contextlib import nullcontext

    from tradingview_simulator import run_simulator_in_thread
    from tests.tradingview.hostile_server import HostileServer

    if server_kind == "simulator":
        context = run_simulator_in_thread(seed=7, sim_start=datetime(2026, 11, 18, 15, 0, tzinfo=UTC),
                                          speed=60, pump_interval_s=0.05)
    elif server_kind == "hostile":
        context = HostileServer(behaviour)
    else:
        context = nullcontext()
    with context as server:
        url = server.url if server is not None else "ws://127.0.0.1:9/"
        opts = {**options, "server": server_kind or ""}
        proc = subprocess.run([sys.executable, __file__, "--child", kind, url, json.dumps(opts)],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise SystemExit(f"case {name!r} failed in the child: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description="peak RSS of the client per hostile server behaviour")
    parser.add_argument("--case", action="append", help="run only cases whose name contains this (repeatable)")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "URL", "OPTIONS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, url, options = args.child
        import logging

        from pocketquant_pipelines.logging import configure_logging

        configure_logging("console", "ERROR", force=True)
        logging.disable(logging.CRITICAL)
        print(json.dumps(child(kind, url, json.loads(options))))
        return
    cases = [c for c in CASES if not args.case or any(part in c[0] for part in args.case)]
    rows = []
    for name, server_kind, behaviour, kind, options in cases:
        result = run_case(name, server_kind, behaviour, kind, options)
        baseline = server_kind != "hostile"
        verdict = "baseline" if baseline else ("(not a goal)" if options.get("not_a_goal") else
                                              ("yes" if result["peak_rss_mb"] < GOAL_MB else "NO"))
        rows.append((name, result["outcome"], f"{result['seconds']:.2f}", f"{result['peak_rss_mb']:.0f}", verdict))
        print(f"  {name}: {result['outcome']}, {result['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    header = ("case", "outcome", "seconds", "peak RSS MB", f"< {GOAL_MB} MB")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).ljust(w) if i < 2 else str(v).rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


if __name__ == "__main__":
    main()
