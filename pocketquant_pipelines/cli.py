"""The ``pocketquant`` command: a click group, one module per command group under
``commands/``. Every failure ends as one ``error: ...`` line on stderr: exit code 2 for bad
input (usage, values, settings), 1 for anything else, never a traceback."""

import importlib
import os
import sys
import traceback

import click

from pocketquant_pipelines.errors import PocketQuantError

COMMAND_MODULES = [  # each exposes COMMANDS, a list of click commands
    "pocketquant_pipelines.commands.tv",        # fetch, quotes
    "pocketquant_pipelines.commands.simulate",  # simulate
    "pocketquant_pipelines.commands.catalog",   # symbols, sync, bars, status
    "pocketquant_pipelines.commands.stream",    # stream, live
    "pocketquant_pipelines.commands.chart",     # chart
    "pocketquant_pipelines.commands.ticks",     # ticks, rebuild
    "pocketquant_pipelines.commands.doctor",    # doctor
]

HELP = """PocketQuant: market data from TradingView as bars at 13 intervals, kept in a store.

Fetch history and live quotes, register the symbols Dagster keeps in sync, read the stored
bars and the sync status, run the streamer that turns live quotes into bars, check the stores
(doctor), or run a local TradingView simulator to try all of it without an account.

Settings come from the environment and a .env file in the working directory (see
.env.example). Every command that prints data takes -f/--format table|csv|json."""


class _ReaderGone(Exception):
    """stdout's reader closed the pipe (`pocketquant bars ... | head`): it has what it wanted."""


class _Group(click.Group):
    def list_commands(self, ctx):  # in the order they are added: the order of the help text
        return list(self.commands)

    def invoke(self, ctx):
        # click turns a closed pipe into exit code 1; for a command line it is a normal end
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise _ReaderGone from None


@click.group(cls=_Group, help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    pass


for _module in COMMAND_MODULES:
    for _command in importlib.import_module(_module).COMMANDS:
        cli.add_command(_command)


def _flag(param: click.Parameter) -> str:
    if isinstance(param, click.Option):
        return "/".join(param.opts)
    return param.human_readable_name


def usage_error_line(exc: click.UsageError) -> str:
    """click's usage errors as one line naming the flag (click prints usage and a hint first)."""
    if isinstance(exc, click.BadParameter) and not isinstance(exc, click.MissingParameter) and exc.param:
        text = f"invalid value for {_flag(exc.param)}: {exc.message}"
    else:
        text = " ".join(exc.format_message().split())
        text = text[:1].lower() + text[1:]
    text = text.rstrip(".")
    if exc.ctx is not None:
        text += f" (see {exc.ctx.command_path} --help)"
    return text


def main(argv: list[str] | None = None, command: click.Command = cli, prog_name: str = "pocketquant") -> int:
    """Run ``command`` (the whole CLI unless told) with the CLI's error handling."""
    try:
        code = int(command.main(args=argv, prog_name=prog_name, standalone_mode=False) or 0)
        sys.stdout.flush()  # a closed pipe shows here, where it is handled, not at exit
        return code
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare group: its help is the answer
        print(exc.ctx.get_help(), file=sys.stderr)
        return 2
    except click.UsageError as exc:
        print(f"error: {usage_error_line(exc)}", file=sys.stderr)
        return 2
    except PocketQuantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    except click.ClickException as exc:  # e.g. a file --output cannot open
        print(f"error: {' '.join(exc.format_message().split())}", file=sys.stderr)
        return exc.exit_code if exc.exit_code != 0 else 1
    except (KeyboardInterrupt, click.Abort):
        return 130
    except (BrokenPipeError, _ReaderGone):
        # stdout is gone; point it at /dev/null so the interpreter's final flush stays quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug or an unforeseen failure: still one line
        if os.environ.get("LOG_LEVEL", "").upper() == "DEBUG":
            traceback.print_exc()
        print(f"error: {type(exc).__name__}: {exc} (LOG_LEVEL=DEBUG shows where)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
