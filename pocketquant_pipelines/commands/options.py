"""What every command group shares: the parameter types that check values while the command
line is parsed (each error names the flag and the value), the options that mean the same thing
in every command, and the lazily loaded settings."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import click

from pocketquant_pipelines.commands.formatting import FORMATS
from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.market.intervals import Interval

# At most this many rows/messages/ticks: bounded so a typo is an error, not a process that
# never stops; far above what a terminal or a pipe wants.
MAX_ITEMS = 1_000_000_000
# Durations and timeouts of interactive commands: a year.
MAX_SECONDS = 365 * 86_400.0


def _parsed(kind: click.ParamType, value, cast: type, noun: str, param, ctx):
    """``value`` as a ``cast`` (already one, or read from its text); a failure names it."""
    if isinstance(value, cast) and not isinstance(value, bool):
        return value
    try:
        return cast(str(value).strip())
    except ValueError:
        kind.fail(f"{value!r} is not {noun}", param, ctx)


class Count(click.ParamType):
    """An integer in ``low..high``."""

    name = "integer"

    def __init__(self, low: int = 1, high: int = MAX_ITEMS):
        self.low, self.high = low, high

    def convert(self, value, param, ctx) -> int:
        number = _parsed(self, value, int, "an integer", param, ctx)
        if not self.low <= number <= self.high:
            self.fail(f"{str(value)!r} is not an integer in {self.low}..{self.high}", param, ctx)
        return number

    def get_metavar(self, param, ctx=None) -> str:
        return "N"


class PositiveNumber(click.ParamType):
    """A finite number in ``(0, high]`` (``nan``/``inf`` are not numbers here)."""

    name = "number"
    noun = "number"

    def __init__(self, high: float):
        self.high = high

    def convert(self, value, param, ctx) -> float:
        number = _parsed(self, value, float, f"a {self.noun}", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{str(value)!r} is not a finite {self.noun}", param, ctx)
        if not 0 < number <= self.high:
            self.fail(f"{str(value)!r} is not a {self.noun} in (0, {self.high:.0f}]", param, ctx)
        return number

    def get_metavar(self, param, ctx=None) -> str:
        return "X"


class Seconds(PositiveNumber):
    """A finite number of seconds in ``(0, high]`` (``nan``/``inf`` are not durations)."""

    name = "seconds"
    noun = "number of seconds"

    def __init__(self, high: float = MAX_SECONDS):
        super().__init__(high)

    def get_metavar(self, param, ctx=None) -> str:
        return "SECONDS"


class Port(Count):
    name = "port"

    def __init__(self):
        super().__init__(0, 65535)

    def get_metavar(self, param, ctx=None) -> str:
        return "PORT"


class WsUrl(click.ParamType):
    name = "url"

    def convert(self, value, param, ctx) -> str:
        if not str(value).startswith(("ws://", "wss://")):
            self.fail(f"{value!r} is not a ws:// or wss:// URL", param, ctx)
        return str(value)

    def get_metavar(self, param, ctx=None) -> str:
        return "URL"


class IntervalType(click.ParamType):
    name = "interval"

    def convert(self, value, param, ctx) -> Interval:
        try:
            return Interval.parse(value)
        except InvalidInputError as exc:
            self.fail(str(exc), param, ctx)

    def get_metavar(self, param, ctx=None) -> str:
        return "INTERVAL"


class UtcTime(click.ParamType):
    """An ISO date or date-time; one without an offset is UTC."""

    name = "time"

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, datetime):
            parsed = value
        else:
            try:
                parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                self.fail(f"{value!r} is not an ISO date/time (e.g. 2024-01-31 or 2024-01-31T14:30:00Z)",
                          param, ctx)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

    def get_metavar(self, param, ctx=None) -> str:
        return "TIME"


INTERVALS = ", ".join(i.value for i in Interval)


def format_option(*extra: str, help: str = "output format (json: one object per line)"):
    return click.option("-f", "--format", "output_format", type=click.Choice([*FORMATS, *extra]), default="table",
                        show_default=True, help=help)


def limit_option(help: str):
    return click.option("-n", "--limit", type=Count(), default=None, help=help)


def interval_option(multiple: bool = False):
    if multiple:
        return click.option("-i", "--interval", "intervals", type=IntervalType(), multiple=True,
                            help=f"one of {INTERVALS}, or the same span as count+unit (60m, 1H) or minutes (60); "
                            "repeat for several (default 1d)")
    return click.option("-i", "--interval", type=IntervalType(), default="1d",
                        help=f"one of {INTERVALS}, or the same span as count+unit (60m, 1H) or minutes (60) (default 1d)")


def ws_url_option():
    return click.option("--ws-url", type=WsUrl(), default=None,
                        help="TradingView WebSocket URL (default TRADINGVIEW_WS_URL), e.g. the simulator's")


def verbose_option():
    return click.option("-v", "--verbose", is_flag=True, help="show the TradingView client's log events")


class App:
    """Per-invocation state. Settings are read on first use, so ``--help`` and usage errors
    never depend on the environment being valid."""

    def __init__(self):
        self._settings = None

    @property
    def settings(self):
        if self._settings is None:
            from pocketquant_pipelines.logging import configure_logging
            from pocketquant_pipelines.settings import load_settings

            self._settings = load_settings()
            configure_logging(self._settings.log_format, self._settings.log_level)
        return self._settings


pass_app = click.make_pass_decorator(App, ensure=True)


def quiet_client_logs(settings, verbose: bool = False) -> None:
    """Command output goes to stdout; client events would only clutter stderr, where an error
    must stay one clear line. ``--verbose`` (or LOG_LEVEL=DEBUG) brings them back."""
    from pocketquant_pipelines.logging import configure_logging

    level = settings.log_level if verbose or settings.log_level == "DEBUG" else "ERROR"
    configure_logging(settings.log_format, level, force=True)
