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


class HistoryDeadlineError(HistoryTimeoutError):
    """A history request still not complete at its overall deadline (TRADINGVIEW_HISTORY_DEADLINE_S),
    however busy the server kept the socket. Transient: retry."""


class QuoteSilenceError(ConnectionLostError):
    """A quote stream got no sign of life (quote data, or heartbeats once every symbol was
    answered) for TRADINGVIEW_QUOTE_SILENCE_S of connected time. Ends the stream."""


class MalformedDataError(TradingViewError):
    """The server sent data the client cannot use and cannot skip without lying: a history
    frame that does not decode, more bars than the request can hold. Permanent for the request."""


class PageLostError(MalformedDataError):
    """A history data frame was skipped (wrong length, undecodable): the request fails rather
    than report a lost page as the end of history."""


class MessageTooLargeError(MalformedDataError):
    """A WebSocket message over TRADINGVIEW_MAX_MESSAGE_BYTES: the socket is closed (code 1009)
    before the message is read into memory."""


TRANSIENT_ERRORS = (ConnectionLostError, HistoryTimeoutError)
