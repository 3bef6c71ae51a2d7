"""Typed errors carrying the server's own words."""

from pocketquant_pipelines.errors import PocketQuantError


class TradingViewError(PocketQuantError):
    """Base class. ``reason`` is the server's text when there is one."""

    def __init__(self, message: str, *, symbol: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.symbol = symbol
        self.reason = reason


class SymbolNotFoundError(TradingViewError, ValueError):
    """symbol_error / series_error "resolve error", or a quote ``"s":"error"``. Permanent."""


class SeriesError(TradingViewError):
    """series_error other than resolve errors (custom_resolution, seconds_not_entitled, ...)."""


class CriticalError(TradingViewError):
    """critical_error: bad parameters (resolution, timezone, flags). Permanent."""


class ProtocolError(TradingViewError):
    """protocol_error: the server closes the socket after it (e.g. "bad auth token")."""


class AuthError(TradingViewError):
    """Bad token, bad credentials, CAPTCHA or 2FA required at sign-in. Permanent."""


class ConnectionLostError(TradingViewError):
    """Socket closed, silent too long, or upgrade refused (HTTP 429). Transient: retry."""


class HistoryTimeoutError(TradingViewError):
    """No series_completed within the request timeout. Transient: retry."""


TRANSIENT_ERRORS = (ConnectionLostError, HistoryTimeoutError)
