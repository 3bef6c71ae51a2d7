"""``pocketquant simulate``: run the simulator until Ctrl-C / SIGTERM.

commands/tv.py registers the subcommand and calls :func:`add_simulate_arguments` and
:func:`run_simulate`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from datetime import UTC, datetime

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.logging import get_logger
from tradingview_simulator.faults import FaultConfig
from tradingview_simulator.server import SimulatorServer

DEFAULT_PORT = 8900
log = get_logger()


def _sim_start(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid --sim-start {text!r}: expected ISO 8601, e.g. 2026-03-09T14:30:00Z"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
        return value
    return parse


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected 0-65535") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected 0-65535")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT,
                        help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--seed", type=int, default=42, help="market seed: same seed, same data (default 42)")
    parser.add_argument("--speed", type=_positive(float), default=1.0,
                        help="simulated seconds per wall second while simulated time is behind the "
                        "wall clock (default 1; 3600 = an hour per second); it never runs ahead of it")
    parser.add_argument("--sim-start", type=_sim_start, default=None,
                        help="simulated time at start, ISO 8601, not in the future (default: now; with "
                        "--speed above 1, early enough to run accelerated for an hour)")
    parser.add_argument("--heartbeat-s", type=_positive(float), default=10.0,
                        help="seconds between heartbeats (default 10, as TradingView)")
    parser.add_argument("--paid-token", action="append", default=None, metavar="TOKEN",
                        help="auth token granted the paid depth (20000 bars); repeatable")
    parser.add_argument("--delay", action="append", default=None, metavar="SYMBOL=SECONDS",
                        help="serve SYMBOL delayed (update_mode delayed_streaming_SECONDS); repeatable")
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                        help="do not precompute daily history in the background at start")
    parser.add_argument("--refuse", type=_count, default=0, metavar="K",
                        help="fault: refuse the first K connections with HTTP 429")
    parser.add_argument("--drop-every-s", type=_positive(float), default=None, metavar="T",
                        help="fault: drop every connection T seconds after it opens")
    parser.add_argument("--malformed-every", type=_positive(int), default=None, metavar="N",
                        help="fault: insert a malformed frame after every N data frames")


def _delays(items: list[str] | None) -> dict[str, int] | None:
    if not items:
        return None
    out: dict[str, int] = {}
    for item in items:
        symbol, sep, seconds = item.partition("=")
        if not sep or not seconds.isdigit():
            raise InvalidInputError(f"invalid --delay {item!r}: expected SYMBOL=SECONDS, e.g. NASDAQ:AAPL=900")
        out[symbol.strip().upper()] = int(seconds)
    return out


def build_server(args: argparse.Namespace) -> SimulatorServer:
    faults = FaultConfig(
        refuse_connections=args.refuse or 0,
        drop_every_s=args.drop_every_s,
        malformed_every=args.malformed_every,
    )
    return SimulatorServer(
        host=args.host, port=args.port, seed=args.seed, speed=args.speed, sim_start=args.sim_start,
        heartbeat_s=args.heartbeat_s, faults=faults,
        paid_tokens=tuple(args.paid_token) if args.paid_token else ("sim_paid_token",),
        delays=_delays(args.delay), warm_up=getattr(args, "warm_up", True),
    )


async def serve_until_stopped(server: SimulatorServer, stop: asyncio.Event, out=sys.stdout) -> None:
    await server.start()
    print(server.url, file=out, flush=True)
    print(
        f"simulated data (seed {server.market.seed}, speed x{server.clock.speed:g}, "
        f"sim time {server.sim_now().isoformat(timespec='seconds')}); symbols: {', '.join(server.market.symbols)}",
        file=out, flush=True,
    )
    try:
        await stop.wait()
    finally:
        await server.stop()


def run_simulate(args: argparse.Namespace, settings=None) -> int:
    """Serve until SIGINT/SIGTERM; prints the URL first so scripts can read it."""
    server = build_server(args)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await serve_until_stopped(server, stop)

    try:
        asyncio.run(main())
    except OSError as exc:
        raise InvalidInputError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc
    log.info("simulator_exited")
    return 0
