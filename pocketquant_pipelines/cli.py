"""The ``pocketquant`` command. Each command group lives in ``commands/<name>.py`` and exposes
``register(subparsers)``; this module wires them up and turns our errors into one clear line
and a non-zero exit code."""

import argparse
import importlib
import sys

from pocketquant_pipelines.errors import PocketQuantError

# Add a module here when you add a command group.
COMMAND_MODULES = [
    "pocketquant_pipelines.commands.tv",        # fetch, quotes, simulate
    "pocketquant_pipelines.commands.catalog",   # symbols, sync, bars, status
    "pocketquant_pipelines.commands.stream",    # stream, live
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pocketquant", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pocketquant_pipelines.logging import configure_logging
    from pocketquant_pipelines.settings import load_settings

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_format, settings.log_level)
        return int(args.func(args, settings) or 0)
    except PocketQuantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `pocketquant bars ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
