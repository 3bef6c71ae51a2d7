"""One client connection: reading commands and dispatching them, heartbeats, auth, lifetime.

Its output goes through an :class:`Outbox`; chart and quote sessions are handled by
:class:`ChartCommands` and :class:`QuoteCommands`; live data comes from :func:`live_data.pump`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.tradingview.codec import decode_message, encode_frame
from tradingview_simulator.chart_commands import ChartCommands
from tradingview_simulator.connection_state import ChartSession, QuoteSession
from tradingview_simulator.live_data import pump
from tradingview_simulator.outbox import Outbox, plain_frame
from tradingview_simulator.quote_commands import QuoteCommands
from tradingview_simulator.server_state import ServerState
from tradingview_simulator.symbol_model import SymbolModel

__all__ = ["ANONYMOUS_TOKENS", "Connection"]

log = get_logger()

ANONYMOUS_TOKENS = frozenset({"unauthorized_user_token", "widget_user_token"})


class ConnectionClosing(Exception):
    """Stop handling this connection's messages (the socket is being closed)."""


class Connection:
    def __init__(self, ws: ServerConnection, number: int, state: ServerState,
                 lookup: Callable[[str], SymbolModel | None]):
        self.ws = ws
        self.number = number
        self.state = state
        self.lookup = lookup
        self.out = Outbox(ws, number, state)
        self.depth = state.config.anonymous_depth
        self.charts: dict[str, ChartSession] = {}
        self.quotes: dict[str, QuoteSession] = {}
        self.heartbeat_n = 0
        self.pending_heartbeats: dict[int, float] = {}
        self.opened_at = time.monotonic()
        self.tasks: list[asyncio.Task] = []
        self.handlers: dict[str, Callable] = {
            "set_auth_token": self.set_auth_token,
            "set_locale": self._ignore,
            "set_data_quality": self._ignore,
            "chart_create_session": partial(self._create_session, self.charts, ChartSession),
            "chart_delete_session": partial(self._delete_session, self.charts),
            "quote_create_session": partial(self._create_session, self.quotes, QuoteSession),
            "quote_delete_session": partial(self._delete_session, self.quotes),
            **ChartCommands(self).handlers(),
            **QuoteCommands(self).handlers(),
        }

    @property
    def closing(self) -> bool:
        return self.out.closing


    # ------------------------------------------------------------------ lifetime

    async def serve(self, hello: str) -> None:
        """Send ``hello``, then handle the client's messages until either side ends."""
        n = self.number
        self.tasks = [
            writer := asyncio.create_task(self.out.writer(), name=f"sim-{n}-writer"),
            asyncio.create_task(self._heartbeats(), name=f"sim-{n}-heartbeats"),
            asyncio.create_task(pump(self), name=f"sim-{n}-pump"),
        ]
        self.out.emit_alone(hello)
        try:
            async for message in self.ws:
                if self.closing:
                    break
                try:
                    await self.handle(message)
                except ConnectionClosing:
                    break
        except ConnectionClosed:
            pass
        finally:
            self.out.end()
            for task in self.tasks:
                if not task.done() and task is not asyncio.current_task():
                    task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def abort(self, why: str) -> None:
        self.out.abort(why)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.out.close(self.tasks[0] if self.tasks else None, code, reason)

    async def _heartbeats(self) -> None:
        config, faults, stats = self.state.config, self.state.faults, self.state.stats
        while not self.closing:
            await asyncio.sleep(config.heartbeat_s)
            if self.closing:
                return
            if faults.silent:
                self.pending_heartbeats.clear()  # a silent server expects nothing back
                continue
            now = time.monotonic()
            if faults.check_heartbeats and self.pending_heartbeats:
                oldest = min(self.pending_heartbeats.values())
                if now - oldest > config.heartbeat_grace_s:
                    stats.heartbeat_timeouts += 1
                    log.info("simulator_heartbeat_timeout", connection=self.number)
                    await self.close(1000, "heartbeat timeout")
                    return
            self.heartbeat_n += 1
            self.pending_heartbeats[self.heartbeat_n] = now
            stats.heartbeats_sent += 1
            self.out.emit_alone(encode_frame(f"~h~{self.heartbeat_n}"))

    # ------------------------------------------------------------------ input

    async def handle(self, message: str | bytes) -> None:
        stats, faults = self.state.stats, self.state.faults
        if isinstance(message, bytes):
            try:
                message = message.decode("utf-8")
            except UnicodeDecodeError:
                return  # malformed input is ignored, like the real server mostly does
        if faults.reply_delay_s > 0:
            await asyncio.sleep(faults.reply_delay_s)
        for frame in decode_message(message):
            stats.frames_received += 1
            if frame.kind == "heartbeat":
                n = frame.heartbeat_number
                if n is not None and self.pending_heartbeats.pop(n, None) is not None:
                    stats.heartbeats_echoed += 1
                continue
            if frame.kind != "message" or frame.method is None:
                continue
            stats.commands[frame.method] += 1
            handler = self.handlers.get(frame.method)
            if handler is None:
                continue  # unknown methods are ignored silently
            try:
                result = handler(frame.params)
                if asyncio.iscoroutine(result):
                    await result
            except ConnectionClosing:
                raise
            except Exception:  # a simulator bug must show up in the log, not kill the socket
                log.exception("simulator_command_failed", connection=self.number, method=frame.method)

    @staticmethod
    def _create_session(sessions: dict, make: Callable, p: list) -> None:
        if p and isinstance(p[0], str) and p[0]:
            sessions[p[0]] = make(p[0])  # the client chooses the id; a repeated one starts afresh

    @staticmethod
    def _delete_session(sessions: dict, p: list) -> None:
        if p and isinstance(p[0], str):
            sessions.pop(p[0], None)

    async def session_of(self, sessions: dict, method: str, p: list):
        """The chart or quote session ``p[0]`` names; an unknown id is a protocol_error."""
        sid = p[0] if p and isinstance(p[0], str) else None
        session = sessions.get(sid) if sid else None
        if session is None:
            await self.protocol_error(f'{{unknown_session_id,<<"{method}">>,<<"{sid}">>}}')
        return session

    async def protocol_error(self, text: str) -> None:
        """``protocol_error`` closes the socket, as the real server does."""
        self.state.stats.protocol_errors += 1
        self.out.emit(plain_frame("protocol_error", [text]))
        await self.close(1000, "protocol error")
        raise ConnectionClosing

    def critical_error(self, session: str, name: str, detail: str) -> None:
        """``critical_error`` leaves the socket open."""
        self.state.stats.critical_errors += 1
        self.out.emit(self.out.stamp("critical_error", [session, name, detail]))

    # ------------------------------------------------------------------ auth & misc

    async def set_auth_token(self, p: list) -> None:
        token = p[0] if p else None
        config = self.state.config
        if isinstance(token, str) and token in config.paid_tokens:
            self.depth = config.paid_depth
        elif isinstance(token, str) and (token in ANONYMOUS_TOKENS or token in config.accepted_tokens):
            self.depth = config.anonymous_depth
        else:
            await self.protocol_error("bad auth token")

    def _ignore(self, p: list) -> None:
        pass
