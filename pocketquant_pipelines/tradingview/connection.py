"""One TradingView WebSocket: open, authenticate, read, echo heartbeats, route by session.

A ``Connection`` owns one socket and one reader task. Chart and quote sessions register a
*handler* under their session id; the reader decodes every message, answers each heartbeat
frame on its own (protocol notes §1.5: echo the frame, not the whole message, because a
message can pack a heartbeat with data), counts malformed frames and hands each message frame
to the handler of its ``p[0]``. Handlers are plain objects with two methods, called on the
event loop and never awaited:

    on_frame(frame)           one decoded message frame of this session
    on_connection_lost(exc)   the socket is gone (ConnectionLostError, ProtocolError, AuthError,
                              MessageTooLargeError)
    on_batch_end()            optional: every frame of one WebSocket message has been delivered
    on_frame_lost(frame)      optional: an ``error`` frame whose first characters name this
                              session (a data frame of ours that could not be decoded)
    on_heartbeat()            optional: the server sent a heartbeat
    async wait_drained()      optional: awaited after each message the handler got frames from;
                              returns once its consumer has caught up, so a slow consumer stops
                              the reader, the reader stops reading the socket and TCP slows the
                              server down: memory stays bounded whatever the server sends

Silence for ``heartbeat_timeout_s`` (the server sends a heartbeat every 10 s) means the socket
is dead even if TCP has not noticed: we close it and tell the handlers. A message over
``max_message_bytes`` is refused by websockets from its header, before its payload is read
(close code 1009), and reported as MessageTooLargeError.
"""

from __future__ import annotations

import asyncio
import random
import re
import string
import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, PayloadTooBig

from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.timeutil import utcnow
from pocketquant_pipelines.tradingview.auth import ORIGIN, USER_AGENT
from pocketquant_pipelines.settings import DEFAULT_MAX_MESSAGE_BYTES
from pocketquant_pipelines.tradingview.codec import Frame, decode_message, encode_frame, encode_message
from pocketquant_pipelines.tradingview.errors import (
    AuthError,
    ConnectionLostError,
    MessageTooLargeError,
    ProtocolError,
    TradingViewError,
)
from pocketquant_pipelines.tradingview.models import ClientStats

log = get_logger("pocketquant.tradingview.connection")

_ID_CHARS = string.ascii_letters + string.digits
# a session id near the start of a frame that failed to decode: {"m":"timescale_update","p":["cs_…
_SESSION_IN_RAW = re.compile(r'"((?:cs|qs)_[A-Za-z0-9]{12})"')
_ATTRIBUTION_CHARS = 256
# websockets' buffer of received frames (its default is 16): with messages of up to
# max_message_bytes each, this bounds what sits in memory before the reader takes it
_MAX_QUEUED_FRAMES = 4
CLOSE_MESSAGE_TOO_BIG = 1009


class _CappedSocket(ClientConnection):
    """A client socket that hangs up at once on a message over its max_size. websockets sends
    close 1009 and would then read (and discard) the rest of the message while waiting for the
    server's close frame, behind those megabytes; nothing the server says after that matters."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if isinstance(self.protocol.parser_exc, PayloadTooBig) and not self.transport.is_closing():
            self.transport.abort()


def new_session_id(prefix: str) -> str:
    """``cs_`` / ``qs_`` + 12 random alphanumerics (the server accepts client-chosen ids)."""
    return f"{prefix}_" + "".join(random.choices(_ID_CHARS, k=12))


class SessionHandler(Protocol):
    def on_frame(self, frame: Frame) -> None: ...

    def on_connection_lost(self, exc: TradingViewError) -> None: ...


def backoff_delays(initial_s: float, max_s: float, rng: random.Random | None = None):
    """Exponential backoff with jitter: attempt n waits uniform(0.5, 1.0) x min(max, initial x 2^n).

    The jitter keeps many clients (or many streamer replicas) from reconnecting in lockstep
    after a server-wide drop; the 0.5 floor keeps the growth exponential.
    """
    rng = rng or random.Random()
    attempt = 0
    while True:
        yield min(max_s, initial_s * (2**attempt)) * rng.uniform(0.5, 1.0)
        attempt = min(attempt + 1, 62)


def protocol_error_from(frame: Frame) -> TradingViewError:
    words = " ".join(str(p) for p in frame.params) or "protocol error"
    if "auth" in words.lower() or "token" in words.lower():
        return AuthError(f"TradingView rejected the auth token: {words}", reason=words)
    return ProtocolError(f"TradingView protocol error: {words}", reason=words)


class Connection:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        stats: ClientStats,
        heartbeat_timeout_s: float = 30.0,
        open_timeout_s: float = 30.0,
        on_closed: Callable[["Connection"], None] | None = None,
        compression: bool | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.url = url
        self._token = token
        self.stats = stats
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.open_timeout_s = open_timeout_s
        self._on_closed = on_closed
        self.compression = compression
        self.max_message_bytes = max_message_bytes
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task | None = None
        self.handlers: dict[str, SessionHandler] = {}
        self.hello: dict | None = None
        self.closed = False
        self.close_reason: TradingViewError | None = None
        self.frames_received = 0
        self.decode_errors = 0  # error frames on this socket: history tells a lost page by it
        self.opened_at: float | None = None  # time.monotonic() of the upgrade
        self.last_heartbeat_at: float | None = None

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Connect and send ``set_auth_token`` (it must be the first command; a good token gets
        no reply, a bad one a protocol_error that the reader reports)."""
        host = urlsplit(self.url).hostname or ""
        local = host in ("127.0.0.1", "localhost", "::1")
        # permessage-deflate shrinks a 500 KB history frame several times over a real network,
        # but on loopback (the simulator) it is pure CPU on both ends: auto = off for loopback.
        compress = (not local) if self.compression is None else self.compression
        try:
            self._ws = await connect(
                self.url,
                origin=ORIGIN,
                user_agent_header=USER_AGENT,
                # a 5000-bar history page is ~0.5 MB; a larger message is refused from its
                # header, so a hostile 55 MB frame never reaches memory
                max_size=self.max_message_bytes,
                max_queue=_MAX_QUEUED_FRAMES,
                create_connection=_CappedSocket,
                ping_interval=None,  # the protocol has its own heartbeats; browsers send no pings
                open_timeout=self.open_timeout_s,
                close_timeout=2,
                proxy=None if local else True,
                compression="deflate" if compress else None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise ConnectionLostError(
                f"TradingView refused the WebSocket upgrade with HTTP {status}"
                + (" (too many connections: rate limited)" if status == 429 else ""),
                reason=f"HTTP {status}",
            ) from None
        except (OSError, InvalidHandshake, TimeoutError, asyncio.TimeoutError) as exc:
            raise ConnectionLostError(f"cannot connect to {self.url}: {exc}", reason=str(exc)) from None
        self.opened_at = time.monotonic()
        self.stats.connections += 1
        self.stats.connected = True
        self._reader = asyncio.create_task(self._read_loop(), name=f"tv-reader-{id(self):x}")
        try:
            await self.send("set_auth_token", [self._token])
        except ConnectionLostError:
            pass  # already closed: the reader reports why (e.g. protocol_error) to the sessions

    async def close(self) -> None:
        await self._shutdown(None)
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass

    async def _shutdown(self, reason: TradingViewError | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self.stats.connected = False
        if self._ws is not None:
            try:
                await self._ws.close()
            except Exception:  # noqa: BLE001 - already broken; nothing left to do
                pass
        handlers = list(self.handlers.values())
        self.handlers.clear()
        lost = reason or ConnectionLostError("connection closed by the client")
        for handler in handlers:
            try:
                handler.on_connection_lost(lost)
            except Exception:  # noqa: BLE001 - one bad handler must not keep others unaware
                log.exception("tradingview_handler_failed")
        if self._on_closed is not None:
            self._on_closed(self)

    # ------------------------------------------------------------------ sending

    async def send(self, method: str, params: list) -> None:
        await self.send_raw(encode_message(method, params))

    async def send_raw(self, text: str) -> None:
        if self.closed or self._ws is None:
            raise self.close_reason or ConnectionLostError("connection is closed")
        try:
            await self._ws.send(text)
        except ConnectionClosed as exc:
            # The reader task owns the shutdown: it drains what the server sent before closing
            # (e.g. protocol_error "bad auth token") and tells the handlers the real reason.
            raise ConnectionLostError(f"connection lost while sending: {exc}") from None

    def register(self, session_id: str, handler: SessionHandler) -> None:
        """Route ``session_id``'s frames to ``handler``. On a connection that is already closed
        the handler is told at once, so nobody waits for frames that cannot come."""
        if self.closed:
            handler.on_connection_lost(self.close_reason or ConnectionLostError("connection is closed"))
            return
        self.handlers[session_id] = handler

    def unregister(self, session_id: str) -> None:
        self.handlers.pop(session_id, None)

    # ------------------------------------------------------------------ reading

    async def _read_loop(self) -> None:
        ws = self._ws
        assert ws is not None
        reason: TradingViewError | None = None
        try:
            while True:
                try:
                    async with asyncio.timeout(self.heartbeat_timeout_s):
                        message = await ws.recv()
                except TimeoutError:
                    log.warning("tradingview_silent", url=self.url, silent_s=self.heartbeat_timeout_s)
                    reason = ConnectionLostError(
                        f"no frame from TradingView for {self.heartbeat_timeout_s:g} s (heartbeats stopped)"
                    )
                    return
                if isinstance(message, bytes):
                    message = message.decode("utf-8", "replace")
                reason = await self._dispatch(message)
                if reason is not None:
                    return
        except ConnectionClosed as exc:
            reason = self._closed_reason(exc)
        except asyncio.CancelledError:
            raise
        except TradingViewError as exc:
            reason = exc
        except Exception as exc:  # noqa: BLE001 - a handler bug must not leave sessions hanging
            log.exception("tradingview_reader_failed")
            reason = ConnectionLostError(f"reader failed: {exc!r}")
        finally:
            if not self.closed:
                await self._shutdown(reason or ConnectionLostError("connection closed"))

    def _closed_reason(self, exc: ConnectionClosed) -> TradingViewError:
        if exc.sent is not None and exc.sent.code == CLOSE_MESSAGE_TOO_BIG:
            log.warning("tradingview_message_too_large", url=self.url, max_bytes=self.max_message_bytes)
            return MessageTooLargeError(
                f"TradingView sent a message over {self.max_message_bytes} bytes "
                "(TRADINGVIEW_MAX_MESSAGE_BYTES); the socket was closed before reading it",
                reason="message too big")
        if exc.rcvd is None:
            return ConnectionLostError("TradingView dropped the connection without a close frame"
                                       " (mid-message or network loss)", reason="no close frame")
        code = exc.rcvd.code
        return ConnectionLostError(f"TradingView closed the connection (code {code})", reason=str(code))

    def _frame_lost(self, frame: Frame) -> None:
        self.decode_errors += 1
        self.stats.decode_errors += 1
        log.warning("tradingview_bad_frame", error=frame.error, sample=frame.raw[:120])
        found = _SESSION_IN_RAW.search(frame.raw, 0, _ATTRIBUTION_CHARS)
        handler = self.handlers.get(found.group(1)) if found else None
        lost = getattr(handler, "on_frame_lost", None)
        if lost is not None:
            lost(frame)

    async def _dispatch(self, message: str) -> TradingViewError | None:
        frames = decode_message(message, max_frame=self.max_message_bytes)
        stats = self.stats
        stats.last_message_at = utcnow()
        stats.frames_received += len(frames)
        self.frames_received += len(frames)
        handlers = self.handlers
        touched: list[SessionHandler] = []  # in order of first frame; a message is nearly always one session
        error: TradingViewError | None = None
        for frame in frames:
            kind = frame.kind
            if kind == "message":
                params = frame.params
                session = params[0] if params else None  # Frame.session, inlined (once per frame)
                handler = handlers.get(session) if session.__class__ is str else None
                if handler is not None:
                    handler.on_frame(frame)
                    if not touched or (touched[-1] is not handler and handler not in touched):
                        touched.append(handler)
                elif frame.method == "protocol_error":
                    # Not tied to a session, and the server closes the socket after it.
                    error = protocol_error_from(frame)
                    log.error("tradingview_protocol_error", reason=error.reason)
                    break
                else:
                    log.debug("tradingview_unrouted_frame", method=frame.method, session=frame.session)
            elif kind == "heartbeat":
                self.last_heartbeat_at = time.monotonic()
                for handler in list(handlers.values()):
                    beat = getattr(handler, "on_heartbeat", None)
                    if beat is not None:
                        beat()
                try:
                    await self.send_raw(encode_frame(frame.raw))
                except ConnectionLostError:
                    pass  # the next recv() reports the close with its code
            elif kind == "hello":
                self.hello = frame.data
            else:
                self._frame_lost(frame)
        for handler in touched:
            # Lets the quote session build ticks once per message, after merging all its frames
            # (also when the message ends in a protocol_error: what came before it is complete).
            end = getattr(handler, "on_batch_end", None)
            if end is not None:
                end()
        for handler in touched:
            drained = getattr(handler, "wait_drained", None)
            if drained is not None:
                await drained()
        return error
