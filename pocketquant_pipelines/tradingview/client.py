"""The one asyncio TradingView client: history and live quotes.

    async with TradingViewClient.from_settings(settings) as tv:
        result = await tv.fetch_history("NASDAQ:AAPL", "1d", 500)
        async with tv.quote_stream(["BINANCE:BTCUSDT"]) as stream:
            async for tick in stream: ...

History requests share up to ``max_connections`` long-lived sockets: each request is its own
chart session (``cs_…``) and frames are routed by session id, so several symbols load over one
socket at once; at most ``concurrency`` requests run at a time. Few sockets, many sessions is
what TradingView tolerates (HTTP 429 and "max sessions rate reached" otherwise, notes §6.8).

A history request whose socket is lost (drop, silence, server close) is retried once on a fresh
socket; a second loss raises ConnectionLostError (transient: the caller may retry later).
Opening a socket is retried with exponential backoff (jittered, ``backoff_initial_s`` up to
``backoff_max_s``) until ``request_timeout_s`` has passed.

Every history request has an overall deadline, ``history_deadline_s``, counted from when it
starts to run (not while it waits for a concurrency slot): connecting, the one retry and every
page. A server that keeps a request busy without completing it (paging forever, dripping
bytes) ends it with HistoryDeadlineError. A socket on which a request failed for the server's
misbehaviour (deadline, malformed data) is closed rather than lent to the next request.

Blocking callers (Dagster ops, the CLI) use :func:`fetch_history_sync` or
:class:`BlockingTradingViewClient`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.symbols import normalize_symbol
from pocketquant_pipelines.settings import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_TV_WS_URL, Settings
from pocketquant_pipelines.tradingview.auth import SIGNIN_URL, resolve_token
from pocketquant_pipelines.tradingview.connection import Connection, backoff_delays
from pocketquant_pipelines.tradingview.errors import (
    AuthError,
    ConnectionLostError,
    HistoryDeadlineError,
    MalformedDataError,
)
from pocketquant_pipelines.tradingview.history import MAX_BARS, MAX_BATCH, HistoryProgress, fetch_on_connection
from pocketquant_pipelines.tradingview.models import ClientStats, HistoryResult, SymbolMetadata
from pocketquant_pipelines.tradingview.quote_stream import QuoteStream
from pocketquant_pipelines.tradingview.quotes import QuoteError

log = get_logger("pocketquant.tradingview.client")

SESSIONS = ("regular", "extended")
ADJUSTMENTS = ("splits", "dividends")


def _reveal(value) -> str | None:
    if value is None:
        return None
    reveal = getattr(value, "get_secret_value", None)
    return reveal() if reveal else str(value)


def _seconds(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise InvalidInputError(f"{name}={value!r} must be a finite number of seconds > 0")
    return float(value)


def validate_request(symbol, interval, bars, session, adjustment) -> tuple[str, Interval, int]:
    """Check a history request before any I/O; errors name the bad value."""
    sym = normalize_symbol(symbol)
    ivl = Interval.parse(interval)
    if isinstance(bars, bool) or not isinstance(bars, int) or not 1 <= bars <= MAX_BARS:
        raise InvalidInputError(f"bar count {bars!r} out of range: expected an integer 1..{MAX_BARS}")
    if session not in SESSIONS:
        raise InvalidInputError(f"session {session!r}: expected one of {', '.join(SESSIONS)}")
    if adjustment not in ADJUSTMENTS:
        raise InvalidInputError(f"adjustment {adjustment!r}: expected one of {', '.join(ADJUSTMENTS)}")
    return sym, ivl, bars


# the client's arguments that come from settings: argument -> Settings field
_FROM_SETTINGS = {
    "url": "tradingview_ws_url", "auth_token": "tradingview_auth_token",
    "username": "tradingview_username", "password": "tradingview_password",
    "max_connections": "tradingview_max_connections", "concurrency": "tradingview_concurrency",
    "heartbeat_timeout_s": "tradingview_heartbeat_timeout_s",
    "request_timeout_s": "tradingview_request_timeout_s", "clock_skew_s": "clock_skew_s",
    "history_deadline_s": "tradingview_history_deadline_s",
    "quote_silence_s": "tradingview_quote_silence_s",
    "max_message_bytes": "tradingview_max_message_bytes",
}


class TradingViewClient:
    def __init__(
        self,
        url: str = DEFAULT_TV_WS_URL,
        auth_token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        max_connections: int = 2,
        concurrency: int = 4,
        heartbeat_timeout_s: float = 30.0,
        request_timeout_s: float = 30.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        signin_url: str = SIGNIN_URL,
        page_size: int = MAX_BATCH,
        compression: bool | None = None,
        clock_skew_s: float = Settings.clock_skew_s,
        clock: Callable[[], float] | None = None,
        history_deadline_s: float = Settings.tradingview_history_deadline_s,
        quote_silence_s: float = Settings.tradingview_quote_silence_s,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        if max_connections < 1 or concurrency < 1:
            raise InvalidInputError(
                f"max_connections={max_connections!r} and concurrency={concurrency!r} must be >= 1"
            )
        clock_skew_s = _seconds("clock_skew_s", clock_skew_s)
        history_deadline_s = _seconds("history_deadline_s", history_deadline_s)
        quote_silence_s = _seconds("quote_silence_s", quote_silence_s)
        self.url = url
        self._auth_token = _reveal(auth_token)
        self._username = username
        self._password = _reveal(password)
        self.signin_url = signin_url
        self.max_connections = max_connections
        self.concurrency = concurrency
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.request_timeout_s = request_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        if isinstance(max_message_bytes, bool) or not isinstance(max_message_bytes, int) or max_message_bytes < 1024:
            raise InvalidInputError(f"max_message_bytes={max_message_bytes!r} must be an integer >= 1024")
        self.history_deadline_s = history_deadline_s
        self.quote_silence_s = quote_silence_s
        self.max_message_bytes = max_message_bytes
        if not 1 <= page_size <= MAX_BATCH:
            raise InvalidInputError(f"page_size={page_size!r}: expected 1..{MAX_BATCH}")
        self.page_size = page_size  # bars per create_series / request_more_data page
        self.compression = compression  # permessage-deflate; None = on, except on loopback
        # history rows dated beyond clock() + clock_skew_s are rejected; a test whose simulator
        # runs on simulated time passes that time as the clock
        self.clock_skew_s = clock_skew_s
        self.clock = clock or time.time
        self.stats = ClientStats()
        self.token_kind: str | None = None
        self._token: str | None = None
        self._refreshed = False  # the current token comes from a refresh not yet proven
        self._token_lock: asyncio.Lock | None = None
        self._pool_lock: asyncio.Lock | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._connections: list[Connection] = []
        self._streams: list[QuoteStream] = []

    def __repr__(self) -> str:  # never show the token
        return f"TradingViewClient(url={self.url!r}, token={self.token_kind or 'unresolved'})"

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> "TradingViewClient":
        kwargs = {arg: getattr(settings, field) for arg, field in _FROM_SETTINGS.items()}
        kwargs.update(overrides)
        return cls(**kwargs)

    async def __aenter__(self) -> "TradingViewClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # ------------------------------------------------------------------ auth

    async def auth_token(self) -> str:
        """The WebSocket token (signed in once and cached). Never logged."""
        if self._token is not None:
            return self._token
        if self._token_lock is None:
            self._token_lock = asyncio.Lock()
        async with self._token_lock:
            if self._token is None:
                self._token, self.token_kind = await resolve_token(
                    self._auth_token, self._username, self._password, signin_url=self.signin_url
                )
                log.info("tradingview_token_ready", kind=self.token_kind)
        return self._token

    def refresh_token_after(self, error: Exception) -> bool:
        """After an AuthError: True if a fresh sign-in is worth trying (credentials configured,
        and the token in use has not just been refreshed); the next ``auth_token()`` signs in
        again. Signed-in tokens are JWTs that expire after about 4 hours (notes §2.2)."""
        if not isinstance(error, AuthError) or self._username is None or self._auth_token is not None:
            return False
        if self._token is None or self._refreshed:
            return False
        log.warning("tradingview_token_refresh", reason=getattr(error, "reason", None))
        self._token = None
        self._refreshed = True
        return True

    def token_proven(self) -> None:
        """The current token served data: a later AuthError may refresh it again."""
        self._refreshed = False

    # ------------------------------------------------------------------ connections

    def _forget(self, conn: Connection) -> None:
        if conn in self._connections:
            self._connections.remove(conn)
        self.stats.connected = any(not c.closed for c in self._connections)

    async def _connection(self) -> Connection:
        """A socket for one more chart session: reuse the least busy one, open another while
        under ``max_connections`` and every open socket is busy."""
        if self._pool_lock is None:
            self._pool_lock = asyncio.Lock()
        async with self._pool_lock:
            live = [c for c in self._connections if not c.closed]
            if live:
                least = min(live, key=lambda c: len(c.handlers))
                if not least.handlers or len(live) >= self.max_connections:
                    return least
            conn = await self._open_with_backoff()
            self._connections.append(conn)
            return conn

    async def _open_with_backoff(self) -> Connection:
        token = await self.auth_token()
        deadline = time.monotonic() + self.request_timeout_s
        delays = backoff_delays(self.backoff_initial_s, self.backoff_max_s)
        while True:
            conn = Connection(self.url, token, stats=self.stats, heartbeat_timeout_s=self.heartbeat_timeout_s,
                              open_timeout_s=self.request_timeout_s, on_closed=self._forget,
                              compression=self.compression, max_message_bytes=self.max_message_bytes)
            try:
                await conn.open()
                return conn
            except ConnectionLostError as exc:
                delay = next(delays)
                if time.monotonic() + delay > deadline:
                    raise ConnectionLostError(
                        f"cannot connect to TradingView within {self.request_timeout_s:g} s: {exc}",
                        reason=exc.reason,
                    ) from None
                log.warning("tradingview_connect_failed", reason=str(exc), retry_in_s=round(delay, 3))
                await asyncio.sleep(delay)

    # ------------------------------------------------------------------ history

    async def fetch_history(
        self,
        symbol: str,
        interval: Interval | str,
        bars: int,
        session: str = "regular",
        adjustment: str = "splits",
    ) -> HistoryResult:
        """The latest ``bars`` bars of ``symbol`` at ``interval``, oldest first.

        Fewer bars come back when history is shorter than asked or the account's depth is
        reached (``depth_reached=True``). Raises SymbolNotFoundError (unknown symbol, at once),
        SeriesError, CriticalError, AuthError, ConnectionLostError, HistoryTimeoutError,
        HistoryDeadlineError (not complete within ``history_deadline_s``), MalformedDataError
        (PageLostError: a data frame could not be decoded; MessageTooLargeError).
        """
        sym, ivl, count = validate_request(symbol, interval, bars, session, adjustment)
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.concurrency)
        async with self._semaphore:
            progress = HistoryProgress()
            try:
                async with asyncio.timeout(self.history_deadline_s):
                    return await self._fetch_attempts(sym, ivl, count, session, adjustment, progress)
            except TimeoutError:
                await self._discard(progress.connection)
                log.warning("tradingview_history_deadline", symbol=sym, interval=str(ivl),
                            deadline_s=self.history_deadline_s, bars=progress.bars, pages=progress.pages)
                raise HistoryDeadlineError(
                    f"history of {sym} {ivl} not complete within {self.history_deadline_s:g} s "
                    f"(TRADINGVIEW_HISTORY_DEADLINE_S): {progress.bars} of {count} bars in "
                    f"{progress.pages} page(s) so far", symbol=sym, reason="deadline") from None
            except MalformedDataError:
                await self._discard(progress.connection)
                raise

    async def _discard(self, conn: Connection | None) -> None:
        """Close a socket whose server misbehaved: its other sessions retry on a fresh one."""
        if conn is not None and not conn.closed:
            await conn.close()

    async def _fetch_attempts(self, sym, ivl, count, session, adjustment, progress) -> HistoryResult:
        for attempt in (1, 2):
            conn = await self._connection()
            progress.connection = conn
            try:
                result = await fetch_on_connection(
                    conn, sym, ivl, count, session=session, adjustment=adjustment,
                    request_timeout_s=self.request_timeout_s, page_size=self.page_size,
                    clock_skew_s=self.clock_skew_s, clock=self.clock, progress=progress,
                )
            except ConnectionLostError as exc:
                if attempt == 2:
                    raise
                self.stats.reconnects += 1
                log.warning("tradingview_history_retry", symbol=sym, interval=str(ivl), reason=str(exc))
                continue
            except AuthError as exc:
                if attempt == 2 or not self.refresh_token_after(exc):
                    raise
                continue
            self.token_proven()
            log.info("tradingview_history_fetched", symbol=sym, interval=str(ivl), bars=len(result.columns),
                     requested=count, pages=result.pages, depth_reached=result.depth_reached,
                     implausible_times=result.implausible_times)
            return result
        raise AssertionError("unreachable")

    async def resolve_symbol(self, symbol: str) -> SymbolMetadata:
        """What TradingView's ``symbol_resolved`` says about ``symbol`` (timezone, session,
        type, ...), taken from a 1-bar daily request: the chart session resolves the symbol
        before it loads bars, and one daily bar is the cheapest series there is. Raises
        SymbolNotFoundError for a symbol TradingView does not have (``symbol_error``), and the
        errors of :meth:`fetch_history` otherwise (ConnectionLostError when unreachable)."""
        result = await self.fetch_history(symbol, Interval.D1, 1)
        return result.metadata

    # ------------------------------------------------------------------ quotes

    def quote_stream(
        self, symbols: Iterable[str] = (), *, on_error=None, fields: Iterable[str] | None = None,
    ) -> QuoteStream:
        """A live stream of ticks for ``symbols`` (more can be added while it runs)."""
        kwargs = {"on_error": on_error}
        if fields is not None:
            kwargs["fields"] = fields
        stream = QuoteStream(self, symbols, **kwargs)
        self._streams.append(stream)
        return stream

    async def close(self) -> None:
        for stream in list(self._streams):
            await stream.close()
        self._streams.clear()
        for conn in list(self._connections):
            await conn.close()
        self._connections.clear()
        self.stats.connected = False


# ---------------------------------------------------------------------- blocking facades


def run_blocking(coro):
    """Run ``coro`` to completion from blocking code and return its result, also from a thread
    that already runs a loop (e.g. a notebook: then on a helper thread).

    The main task returns None and the result travels in a box: on CPython 3.11,
    ``asyncio.run`` ends with ``signal.getsignal(SIGINT)``, which formats the repr of its
    handler, a partial holding the main task, whose repr includes the task's result: for a
    5000-bar HistoryResult that cost 100-400 ms per call.
    """
    box: dict = {}

    async def main() -> None:
        box["value"] = await coro

    def target():
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(main())
        return box["value"]
    thread = threading.Thread(target=target, name="tv-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def fetch_history_sync(
    symbol: str,
    interval: Interval | str,
    bars: int,
    session: str = "regular",
    adjustment: str = "splits",
    *,
    settings: Settings | None = None,
    **client_kwargs,
) -> HistoryResult:
    """One history request from blocking code: opens a client, fetches, closes."""

    async def go():
        client = (TradingViewClient.from_settings(settings, **client_kwargs) if settings is not None
                  else TradingViewClient(**client_kwargs))
        async with client:
            return await client.fetch_history(symbol, interval, bars, session=session, adjustment=adjustment)

    return run_blocking(go())


class BlockingTradingViewClient:
    """A TradingViewClient on a private event-loop thread, for blocking callers that make many
    requests (a Dagster resource): sockets stay open between calls."""

    def __init__(self, client: TradingViewClient | None = None, **client_kwargs) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tv-client-loop", daemon=True)
        self._thread.start()
        self.client = client or TradingViewClient(**client_kwargs)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> "BlockingTradingViewClient":
        return cls(TradingViewClient.from_settings(settings, **overrides))

    def _call(self, coro, timeout: float | None = None):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def fetch_history(self, symbol, interval, bars, session="regular", adjustment="splits") -> HistoryResult:
        return self._call(self.client.fetch_history(symbol, interval, bars, session=session, adjustment=adjustment))

    def fetch_many(self, requests: Iterable[tuple]) -> list[HistoryResult | BaseException]:
        """Run (symbol, interval, bars) requests concurrently; each result or its error."""

        async def go():
            return await asyncio.gather(
                *(self.client.fetch_history(*r) for r in requests), return_exceptions=True
            )

        return self._call(go())

    @property
    def stats(self) -> ClientStats:
        return self.client.stats

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._call(self.client.close(), timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def __enter__(self) -> "BlockingTradingViewClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = [
    "AuthError",
    "run_blocking",
    "BlockingTradingViewClient",
    "QuoteError",
    "QuoteStream",
    "TradingViewClient",
    "fetch_history_sync",
]
