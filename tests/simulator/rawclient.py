"""A raw WebSocket client for simulator tests: speaks the wire format by hand (our codec only
splits frames), so tests see exactly what the server sends, message by message."""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pocketquant_pipelines.tradingview.codec import Frame, decode_message, encode_frame

HELLO_FIELDS = {
    "session_id", "timestamp", "timestampMs", "release", "studies_metadata_hash",
    "auth_scheme_vsn", "protocol", "via", "javastudies",
}


def frame(method: str, *params) -> str:
    return encode_frame({"m": method, "p": list(params)})


def run(coro_fn):
    """Run an async test function on a fresh event loop (no pytest-asyncio here)."""
    @functools.wraps(coro_fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(coro_fn(*args, **kwargs), timeout=120))
    return wrapper


@dataclass
class RawClient:
    url: str
    echo: bool = True
    messages: list[str] = field(default_factory=list)   # every WebSocket message, raw
    frames: list[Frame] = field(default_factory=list)   # every frame, in order
    _pending: list[Frame] = field(default_factory=list)  # received, not yet returned by until()

    async def __aenter__(self) -> "RawClient":
        self.ws = await connect(self.url, max_size=None, ping_interval=None, open_timeout=10)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()

    async def send(self, method: str, *params) -> None:
        await self.ws.send(frame(method, *params))

    async def send_raw(self, text: str) -> None:
        await self.ws.send(text)

    async def recv(self, timeout: float = 10.0) -> list[Frame]:
        """The frames of the next WebSocket message (echoing heartbeats)."""
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        self.messages.append(raw)
        frames = decode_message(raw)
        self.frames.extend(frames)
        if self.echo:
            for f in frames:
                if f.kind == "heartbeat":
                    await self.ws.send(encode_frame(f.raw))
        return frames

    async def _next(self, timeout: float) -> Frame:
        while not self._pending:
            self._pending.extend(await self.recv(timeout))
        return self._pending.pop(0)

    async def until(self, predicate, timeout: float = 10.0) -> list[Frame]:
        """Frames until (and including) the first one matching ``predicate``; frames after it
        in the same message stay queued for the next call."""
        got: list[Frame] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no matching frame within {timeout}s; got {[f.method or f.kind for f in got]}")
            f = await self._next(left)
            got.append(f)
            if predicate(f):
                return got

    async def collect(self, seconds: float) -> list[Frame]:
        """Queued frames plus every frame received during ``seconds``."""
        got: list[Frame] = self._pending
        self._pending = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            try:
                got.extend(await self.recv(left))
            except (TimeoutError, ConnectionClosed):
                break
        return got


    async def sync(self) -> None:
        """Round trip: every reply to commands sent before this one has arrived afterwards
        (the server handles a connection's commands in order)."""
        self._syncs = getattr(self, "_syncs", 0) + 1
        qs = f"qs_sync{self._syncs}"
        await self.send("quote_create_session", qs)
        await self.send("quote_add_symbols", qs, "SYNC:NONE")
        await self.until(lambda f: f.method == "qsd" and f.params[0] == qs)

    async def wait_closed(self, timeout: float = 15.0) -> int | None:
        """Read until the server closes the socket; the close code."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while (left := deadline - loop.time()) > 0:
                await self.recv(left)
        except (TimeoutError, ConnectionClosed):
            pass
        return self.ws.close_code


def method_is(name: str):
    return lambda f: f.kind == "message" and f.method == name


def methods(frames: list[Frame]) -> list[str]:
    return [f.method for f in frames if f.kind == "message"]


def qsd_values(frames: list[Frame], name: str) -> list[dict]:
    return [f.params[1]["v"] for f in frames if f.method == "qsd" and f.params[1]["n"] == name]


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))
