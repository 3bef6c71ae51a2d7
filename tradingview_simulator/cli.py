"""The ``simulate`` command: run the simulator until Ctrl-C / SIGTERM.

Mounted as ``pocketquant simulate``; ``python -m tradingview_simulator`` runs it on its own.
Values are checked by the CLI's shared parameter types while the command line is parsed; the
server and its market are imported only when the command runs, so ``pocketquant --help`` stays
fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

import click

from pocketquant_pipelines.commands.options import Count, Port, PositiveNumber, Seconds, UtcTime
from pocketquant_pipelines.errors import InvalidInputError

DEFAULT_PORT = 8900
MAX_SPEED = 1_000_000.0  # simulated seconds per wall second: 11 days a second
HELP = ("A local server speaking TradingView's WebSocket protocol, with deterministic synthetic "
        "data and fault injection. Prints its URL first, e.g. ws://127.0.0.1:8900/socket.io/websocket "
        "(pass it as --ws-url or TRADINGVIEW_WS_URL).")


def _delays(ctx, param, items: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        symbol, sep, seconds = item.partition("=")
        if not sep or not seconds.isdigit():
            raise click.BadParameter(f"{item!r} is not SYMBOL=SECONDS, e.g. NASDAQ:AAPL=900", ctx, param)
        out[symbol.strip().upper()] = int(seconds)
    if out:
        from tradingview_simulator.symbol_specs import DEFAULT_SYMBOLS

        known = [s.symbol for s in DEFAULT_SYMBOLS]
        for symbol in out:
            if symbol not in known:
                raise click.BadParameter(f"{symbol!r} is not a simulator symbol (one of {', '.join(known)})",
                                         ctx, param)
    return out


@click.command("simulate", help=HELP, short_help="Run the local TradingView protocol simulator.",
               context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to listen on")
@click.option("--port", type=Port(), default=DEFAULT_PORT, show_default=True, help="TCP port; 0 picks a free one")
@click.option("--seed", type=Count(0, 2**63 - 1), default=42, show_default=True,
              help="market seed: same seed, same data")
@click.option("--speed", type=PositiveNumber(MAX_SPEED), default=1.0, show_default=True,
              help="simulated seconds per wall second while simulated time is behind the wall clock "
                   "(3600 = an hour per second); it never runs ahead of it")
@click.option("--sim-start", type=UtcTime(), default=None,
              help="simulated time at start, ISO 8601, not in the future (default: now; with --speed "
                   "above 1, early enough to run accelerated for an hour)")
@click.option("--heartbeat-s", type=Seconds(), default=10.0, show_default=True,
              help="seconds between heartbeats (TradingView: 10)")
@click.option("--paid-token", "paid_tokens", multiple=True, metavar="TOKEN",
              help="auth token granted the paid depth (20000 bars); repeatable (default: sim_paid_token)")
@click.option("--delay", "delays", multiple=True, metavar="SYMBOL=SECONDS", callback=_delays,
              help="serve SYMBOL delayed (update_mode delayed_streaming_SECONDS); repeatable")
@click.option("--warm-up/--no-warm-up", default=True, help="precompute daily history in the background at start")
@click.option("--refuse", type=Count(0), default=0, metavar="K",
              help="fault: refuse the first K connections with HTTP 429")
@click.option("--drop-every-s", type=Seconds(), default=None, metavar="T",
              help="fault: drop every connection T seconds after it opens")
@click.option("--malformed-every", type=Count(1), default=None, metavar="N",
              help="fault: insert a malformed frame after every N data frames")
def simulate(host: str, port: int, seed: int, speed: float, sim_start, heartbeat_s: float,
             paid_tokens: tuple[str, ...], delays: dict[str, int], warm_up: bool, refuse: int,
             drop_every_s: float | None, malformed_every: int | None) -> int:
    from tradingview_simulator.config import DEFAULT_PAID_TOKENS, SimulatorConfig
    from tradingview_simulator.faults import FaultConfig
    from tradingview_simulator.server import SimulatorServer

    config = SimulatorConfig.of(
        host=host, port=port, seed=seed, speed=speed, sim_start=sim_start, heartbeat_s=heartbeat_s,
        paid_tokens=paid_tokens or DEFAULT_PAID_TOKENS, delays=delays, warm_up=warm_up,
    )
    faults = FaultConfig(refuse_connections=refuse, drop_every_s=drop_every_s, malformed_every=malformed_every)
    try:
        server = SimulatorServer(config, faults=faults)
    except InvalidInputError as exc:  # the clock refuses a start in the future
        raise click.BadParameter(str(exc), param_hint="--sim-start") from None
    return serve_until_signalled(server)


async def serve_until_stopped(server, stop: asyncio.Event, out=sys.stdout) -> None:
    """Start ``server``, print its URL (scripts read the first line), serve until ``stop``."""
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


def serve_until_signalled(server) -> int:
    """Serve until SIGINT/SIGTERM; exit code 0."""
    from pocketquant_pipelines.logging import get_logger

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await serve_until_stopped(server, stop)

    config = server.config
    try:
        asyncio.run(main())
    except OSError as exc:
        raise InvalidInputError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from exc
    get_logger().info("simulator_exited")
    return 0
