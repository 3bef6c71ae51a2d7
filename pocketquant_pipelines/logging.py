"""structlog, configured once: console in development, JSON in production.

Secrets never reach logs: settings hold them as ``pydantic.SecretStr`` (prints ``**********``),
and a processor masks any event key that looks secret-bearing as a last line of defence.
"""

import logging
import sys

import structlog

_SECRET_KEYS = ("token", "password", "secret", "authorization", "cookie")
_configured = False


def _mask_secrets(_logger, _method, event: dict) -> dict:
    for key in list(event):
        if any(s in key.lower() for s in _SECRET_KEYS) and event[key]:
            event[key] = "***"
        elif key.lower().endswith("_url") and isinstance(event[key], str) and "@" in event[key]:
            scheme, _, rest = event[key].partition("://")
            event[key] = f"{scheme}://***@{rest.rsplit('@', 1)[-1]}"
    return event


class _StderrLogger:
    """Writes each rendered event to whatever ``sys.stderr`` is *now*.

    structlog's PrintLogger binds the stream when the logger is created, which goes stale when
    stderr is replaced later (pytest's capture, a daemon redirecting its output)."""

    def msg(self, message: str) -> None:
        stream = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _stderr_logger_factory(*_args) -> _StderrLogger:
    return _StderrLogger()


def configure_logging(log_format: str = "console", level: str = "INFO", force: bool = False) -> None:
    """Configure once per process (``force`` re-configures). Until it is called, loggers use
    the defaults (console, INFO, stderr) — never structlog's own default, which prints every
    level to stdout, where command output (``--format json``) goes."""
    global _configured
    if _configured and not force:
        return
    _apply(log_format, level)
    _configured = True


def _apply(log_format: str, level: str) -> None:
    renderer = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=_stderr_logger_factory,
        # No caching: a logger first used before the process configured logging (a module
        # logger, a test fixture) must still follow the configuration that comes later.
        cache_logger_on_first_use=False,
    )


_defaults_applied = False


def get_logger(name: str | None = None, **bound):
    global _defaults_applied
    if not _configured and not _defaults_applied:
        _apply("console", "INFO")
        _defaults_applied = True
    return structlog.get_logger(name, **bound) if name else structlog.get_logger(**bound)
