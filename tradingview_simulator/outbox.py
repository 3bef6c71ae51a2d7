"""A connection's output: frame stamping, packing into WebSocket messages, output faults.

Everything a connection sends goes through one writer task (message order is the order of
emission); frames emitted within ``pack_window_s`` share one WebSocket message, as the real
server packs them. Output faults (silence, drops, malformed frames) are applied by the writer.
"""

from __future__ import annotations

import asyncio
import contextlib

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.tradingview.codec import encode_frame
from tradingview_simulator.history_text import frame_text
from tradingview_simulator.payloads import json_text
from tradingview_simulator.server_state import ServerState

__all__ = ["Outbox", "plain_frame"]

log = get_logger()


def plain_frame(method: str, params: list) -> str:
    """A server frame without time stamps (``du``, ``qsd``, ``quote_completed`` ...)."""
    return encode_frame(json_text({"m": method, "p": params}))


def _is_heartbeat(frame: str) -> bool:
    return "~m~~h~" in frame[:16]


def _is_malformed(frame: str) -> bool:
    return len(frame) < 120 and "qs_broken" in frame


class Outbox:
    def __init__(self, ws: ServerConnection, number: int, state: ServerState):
        self.ws = ws
        self.number = number
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.pending: list[str] = []
        self.flush_handle: asyncio.TimerHandle | None = None
        self.queue: asyncio.Queue[list[str] | None] = asyncio.Queue()
        self.frames_sent = 0
        self.data_frames_since_malformed = 0
        self.malformed_kind = 0
        self.closing = False

    # ------------------------------------------------------------------ frames

    def now(self) -> float:
        return self.state.clock.now_epoch()

    def stamp(self, method: str, params: list) -> str:
        """A server frame with t / t_ms (simulated server time), as the 2023+ server sends."""
        now = self.now()
        return encode_frame(json_text({"m": method, "p": params, "t": int(now), "t_ms": int(now * 1000)}))

    def stamp_texts(self, method: str, param_texts: list[str]) -> str:
        """``stamp`` with params already JSON text (history frames are composed as text)."""
        return encode_frame(frame_text(method, param_texts, self.now()))

    # ------------------------------------------------------------------ queueing

    def emit(self, *frames: str) -> None:
        """Queue frames; everything emitted within ``pack_window_s`` goes out in one message."""
        if not frames or self.closing:
            return
        self.pending.extend(frames)
        if self.flush_handle is None:
            self.flush_handle = self.loop.call_later(self.state.config.pack_window_s, self.flush)

    def flush(self) -> None:
        if self.flush_handle is not None:
            self.flush_handle.cancel()
            self.flush_handle = None
        frames, self.pending = self.pending, []
        limit = self.state.config.max_frames_per_message
        for i in range(0, len(frames), limit):
            self.queue.put_nowait(frames[i:i + limit])

    def emit_alone(self, frame: str) -> None:
        """A frame in a message of its own (heartbeats always arrive alone)."""
        self.flush()
        self.queue.put_nowait([frame])

    def backlog(self) -> int:
        return self.queue.qsize()

    def end(self) -> None:
        """No more messages: the writer stops after what is queued."""
        self.closing = True
        self.queue.put_nowait(None)

    # ------------------------------------------------------------------ output faults

    def _malformed(self) -> str:
        self.malformed_kind ^= 1
        if self.malformed_kind:
            body = '{"m":"qsd","p":["qs_broken",{"n":"X","s":"ok","v":{"lp":1}}]}'
            return f"~m~{len(body) + 7}~m~{body}"  # wrong LEN
        body = '{"m":"qsd","p":["qs_broken",{"n":"X","s":"ok","v":{"lp":'
        return encode_frame(body)  # right LEN, broken JSON

    def send_malformed_now(self) -> None:
        self.state.stats.malformed_sent += 1
        self.flush()
        self.queue.put_nowait([self._malformed()])

    def _with_malformed(self, frames: list[str], every: int) -> list[str]:
        out = []
        for f in frames:
            out.append(f)
            if not _is_heartbeat(f):
                self.data_frames_since_malformed += 1
                if self.data_frames_since_malformed >= every:
                    self.data_frames_since_malformed = 0
                    out.append(self._malformed())
                    self.state.stats.malformed_sent += 1
        return out

    async def writer(self) -> None:
        """The only task that sends: applies the output faults, keeps message order."""
        faults, stats = self.state.faults, self.state.stats
        while True:
            frames = await self.queue.get()
            if frames is None:
                return
            if faults.silent:
                continue
            real = sum(1 for f in frames if not _is_malformed(f))
            every = faults.malformed_every
            if every and every > 0:
                frames = self._with_malformed(frames, every)
            limit = faults.drop_after_frames
            drop = False
            if limit is not None and self.frames_sent + real >= limit:
                keep, kept_real = [], 0
                for f in frames:
                    if self.frames_sent + kept_real >= limit:
                        break
                    keep.append(f)
                    if not _is_malformed(f):
                        kept_real += 1
                frames, real, drop = keep, kept_real, True
            if frames:
                try:
                    await self.ws.send("".join(frames))
                except ConnectionClosed:
                    return
                self.frames_sent += real
                stats.frames_sent += real
                stats.messages_sent += 1
                if len(frames) > 1:
                    stats.packed_messages += 1
            if drop:
                self.abort("drop_after_frames")
                return

    # ------------------------------------------------------------------ ending

    def abort(self, why: str) -> None:
        """Drop the TCP connection without a close frame (what a network failure looks like)."""
        if self.closing:
            return
        self.closing = True
        self.state.stats.dropped += 1
        log.info("simulator_connection_dropped", connection=self.number, reason=why)
        transport = getattr(self.ws, "transport", None)
        if transport is not None:
            transport.abort()

    async def close(self, writer: asyncio.Task | None, code: int = 1000, reason: str = "") -> None:
        """Send what is queued (at most 2 s), then a close frame."""
        self.flush()
        self.end()
        if writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, timeout=2)
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason)
