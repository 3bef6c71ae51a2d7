"""``pocketquant simulate``: the local TradingView protocol simulator, in the foreground.

    pocketquant simulate --port 8765     # then: --ws-url ws://127.0.0.1:8765/socket.io/websocket

The simulator defines its own options; this is the only command that imports it.
"""

from __future__ import annotations

import argparse

import click

HELP = ("A local server speaking TradingView's WebSocket protocol, with deterministic synthetic "
        "data and fault injection (see `pocketquant simulate --help`).")


class _OneLineErrors(argparse.ArgumentParser):
    # argparse prints its usage and exits; the CLI's errors are one `error: ...` line, exit 2
    def error(self, message: str):
        raise click.UsageError(message)


@click.command("simulate", help=HELP, short_help="Run the local TradingView protocol simulator.",
               add_help_option=False,
               context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def _simulate(ctx: click.Context) -> int:
    from tradingview_simulator.cli import add_simulate_arguments, run_simulate

    parser = _OneLineErrors(prog=ctx.command_path, description=HELP)
    add_simulate_arguments(parser)
    return int(run_simulate(parser.parse_args(ctx.args)) or 0)


def simulate_command() -> click.Command:
    """The ``simulate`` command (one place to swap in the simulator's own click command)."""
    return _simulate


COMMANDS = [simulate_command()]
