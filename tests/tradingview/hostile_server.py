"""A hostile TradingView server: a real websocket server on a free loopback port that speaks the
``~m~LEN~m~<json>`` framing (shared/tradingview-protocol.md §1.3) and misbehaves on purpose.

    with HostileServer("endless_paging") as server:
        client = TradingViewClient(url=server.url, history_deadline_s=3, ...)

Each behaviour is one way a server (broken, overloaded, or not TradingView at all) can treat a
client. The well-behaved parts follow the protocol notes: hello first (§1.4), no reply to a good
``set_auth_token`` (§2.1), ``symbol_resolved`` + ``timescale_update`` + ``series_completed``
per page (§3.5-3.6), a ``qsd`` snapshot then ``quote_completed`` then partial ``qsd`` (§4).

Also runnable on its own, for a manual try of ``pocketquant fetch`` / ``quotes``:

    .venv/bin/python -m tests.tradingview.hostile_server endless_paging --port 8790
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import threading
import time
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from pocketquant_pipelines.tradingview.codec import decode_message, encode_frame, encode_message

HELLO = {
    "session_id": "<0.1.1>_hostile-test-server", "timestamp": 1764590000, "timestampMs": 1764590000000,
    "release": "registry:5000/hostile:release_0", "studies_metadata_hash": "0" * 40,
    "auth_scheme_vsn": 2, "protocol": "json", "via": "127.0.0.1:0", "javastudies": ["3.64"],
}
STEP_S = 60  # every series is 1-minute bars, whatever resolution was asked: the client keys on time

BEHAVIOURS = {
    "well_behaved": "answers like TradingView (the control case)",
    "endless_paging": "keeps sending new pages of older bars and never sends series_completed",
    "endless_same_page": "repeats the same page forever and never sends series_completed",
    "silent": "accepts the socket and never sends a byte (no hello, no heartbeat)",
    "hello_then_silent": "sends the hello, then nothing at all",
    "heartbeats_only": "sends the hello and heartbeats, and answers no command",
    "huge_frame": "answers the first request with one message of huge_bytes (55 MB by default)",
    "wrong_length": "frames the history page with a LEN 5 units too long",
    "lying_header": "frames the history page with a LEN of 9,999,999,999",
    "garbage_page": "sends unframed junk where the history page belongs, then series_completed",
    "shapeless_page": "sends a timescale_update whose series object is a string, then series_completed",
    "garbage_frames": "well behaved, with garbage messages and frames between the real ones",
    "slow_drip": "sends the page as one websocket frame whose bytes drip out one at a time",
    "close_mid_frame": "starts the page's websocket frame, then closes TCP in the middle of it",
    "quote_flood": "after the quote snapshot, sends quote updates as fast as the socket takes them",
}


@dataclass
class ServerCounters:
    connections: int = 0
    messages_sent: int = 0
    bytes_sent: int = 0
    client_messages: int = 0


class _Peer:
    """One accepted socket: reads the client's frames and answers per the behaviour."""

    def __init__(self, server: "HostileServer", ws: ServerConnection) -> None:
        self.server = server
        self.ws = ws
        self.behaviour = server.behaviour
        self.sent: dict[str, int] = {}  # chart session -> bars sent so far
        self.newest = (int(time.time()) // STEP_S - 5) * STEP_S  # a bar start safely in the past
        self.tasks: list[asyncio.Task] = []
        self.heartbeat = 0

    # ------------------------------------------------------------------ sending

    async def send(self, text: str | bytes) -> None:
        await self.ws.send(text)
        self.server.counters.messages_sent += 1
        self.server.counters.bytes_sent += len(text)

    def spawn(self, coro) -> None:
        self.tasks.append(asyncio.create_task(coro))

    # ------------------------------------------------------------------ content

    def rows(self, cs: str, count: int) -> list[dict]:
        """The next ``count`` 1-minute bars of ``cs``, going back in time, oldest first."""
        sent = self.sent.get(cs, 0)
        count = max(0, min(count, self.server.history_bars - sent))
        self.sent[cs] = sent + count
        times = [self.newest - STEP_S * (sent + j) for j in range(count - 1, -1, -1)]
        out = []
        for i, t in enumerate(times):
            base = 100.0 + (t // STEP_S) % 50
            out.append({"i": i, "v": [float(t), base, base + 1.0, base - 1.0, base + 0.5, 10.0 + i % 7]})
        return out

    @staticmethod
    def page(cs: str, rows: list[dict]) -> str:
        return json.dumps({"m": "timescale_update", "p": [cs, {"sds_1": {
            "node": "hostile", "s": rows, "ns": {"d": "", "indexes": []}, "t": "s1", "lbs": {}}},
            {"index": len(rows) - 1, "zoffset": 0, "changes": [], "marks": [], "index_diff": []}]},
            separators=(",", ":"))

    @staticmethod
    def resolved(cs: str) -> str:
        return encode_message("symbol_resolved", [cs, "sds_sym_1", {
            "name": "HOSTILE", "description": "a hostile test series", "type": "crypto",
            "timezone": "Etc/UTC", "session": "24x7", "pricescale": 100, "currency_code": "USD"}])

    @staticmethod
    def completed(cs: str, end: bool = False) -> str:
        extra = {"rt_update_period": 5, **({"data_completed": "end"} if end else {})}
        return encode_message("series_completed", [cs, "sds_1", "streaming", "s1", extra])

    # ------------------------------------------------------------------ raw websocket frames

    def raw_text_frame_header(self, length: int) -> bytes:
        """An unmasked server-to-client text frame header (RFC 6455 §5.2), FIN set."""
        if length < 126:
            return bytes([0x81, length])
        if length < 1 << 16:
            return bytes([0x81, 126]) + struct.pack("!H", length)
        return bytes([0x81, 127]) + struct.pack("!Q", length)

    # ------------------------------------------------------------------ the conversation

    async def run(self) -> None:
        if self.behaviour not in ("silent",):
            await self.send(encode_frame(HELLO))
        if self.behaviour in ("well_behaved", "garbage_frames", "heartbeats_only", "quote_flood", "endless_paging",
                              "endless_same_page", "huge_frame", "wrong_length", "lying_header",
                              "garbage_page", "shapeless_page", "slow_drip", "close_mid_frame"):
            self.spawn(self.heartbeats())
        try:
            async for message in self.ws:
                self.server.counters.client_messages += 1
                if isinstance(message, bytes):
                    continue
                for frame in decode_message(message):
                    if frame.kind == "message":
                        await self.on_command(frame.method, frame.params)
        except ConnectionClosed:
            pass
        finally:
            for task in self.tasks:
                task.cancel()

    async def heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.server.heartbeat_s)
            self.heartbeat += 1
            await self.send(encode_frame(f"~h~{self.heartbeat}"))

    async def garbage(self) -> None:
        if self.behaviour == "garbage_frames":
            for junk in ("not a frame at all", "~m~5~m~{{{{{", "~m~2~m~[]", "~m~abc~m~{}",
                         '~m~20~m~{"neither":"m nor"}', b"\x00\xff binary junk"):
                await self.send(junk)

    async def on_command(self, method: str, p: list) -> None:
        if self.behaviour in ("silent", "hello_then_silent", "heartbeats_only"):
            return
        await self.garbage()
        if method == "create_series":
            cs, count = p[0], int(p[5])
            await self.on_first_page(cs, count)
        elif method == "request_more_data":
            cs, count = p[0], int(p[2])
            await self.on_more(cs, count)
        elif method == "quote_add_symbols":
            await self.on_quotes(p[0], [s for s in p[1:] if isinstance(s, str)])

    async def on_first_page(self, cs: str, count: int) -> None:
        b = self.behaviour
        await self.send(encode_message("series_loading", [cs, "sds_1", "s1"]) + self.resolved(cs))
        if b == "huge_frame":
            await self.send_huge(cs)
            return
        rows = self.rows(cs, count)
        page = self.page(cs, rows)
        if b == "endless_paging":
            self.spawn(self.endless(cs, count, new_rows=True))
        elif b == "endless_same_page":
            self.spawn(self.endless(cs, count, new_rows=False, first=page))
        elif b == "wrong_length":
            await self.send(f"~m~{len(page) + 5}~m~{page}" + self.completed(cs))
        elif b == "lying_header":
            await self.send(f"~m~9999999999~m~{page}" + self.completed(cs))
        elif b == "garbage_page":
            await self.send("\x01\x02 this is where the page was " + "#" * 200)
            await self.send(self.completed(cs))
        elif b == "shapeless_page":
            await self.send(encode_message("timescale_update", [cs, "not a series"]) + self.completed(cs))
        elif b == "slow_drip":
            self.spawn(self.drip(encode_frame(page)))
        elif b == "close_mid_frame":
            data = encode_frame(page).encode()
            self.ws.transport.write(self.raw_text_frame_header(len(data)) + data[: len(data) // 2])
            self.ws.transport.close()
        else:
            await self.send(encode_frame(page) + self.completed(cs, end=len(rows) < count))

    async def on_more(self, cs: str, count: int) -> None:
        rows = self.rows(cs, count)
        await self.send(encode_frame(self.page(cs, rows)) + self.completed(cs, end=len(rows) < count))

    async def endless(self, cs: str, count: int, *, new_rows: bool, first: str | None = None) -> None:
        page = first
        while True:
            if new_rows or page is None:
                page = self.page(cs, self.rows(cs, count))
            await self.send(encode_frame(page))
            await asyncio.sleep(0.001)

    async def drip(self, text: str) -> None:
        data = text.encode()
        self.ws.transport.write(self.raw_text_frame_header(len(data)))
        for i in range(len(data)):
            await asyncio.sleep(self.server.drip_interval_s)
            self.ws.transport.write(data[i:i + 1])
            self.server.counters.bytes_sent += 1

    async def send_huge(self, session: str) -> None:
        # built once per server: the client must meet the message's header at once, not after
        # the server spent seconds making it
        await self.send(self.server.huge_message(session))

    async def on_quotes(self, qs: str, symbols: list[str]) -> None:
        if self.behaviour == "huge_frame":
            await self.send_huge(qs)
            return
        price = {s: 100.0 for s in symbols}
        volume = {s: 1000.0 for s in symbols}
        snapshot = "".join(encode_message("qsd", [qs, {"n": s, "s": "ok", "v": {
            "lp": price[s], "volume": volume[s], "bid": 99.5, "ask": 100.5, "lp_time": int(time.time())}}])
            for s in symbols)
        await self.send(snapshot + "".join(encode_message("quote_completed", [qs, s]) for s in symbols))
        if self.behaviour == "quote_flood":
            self.spawn(self.flood(qs, symbols, price, volume))
        else:
            self.spawn(self.ticks(qs, symbols, price, volume))

    async def flood(self, qs: str, symbols: list[str], price: dict, volume: dict) -> None:
        n = 0
        while True:
            frames = []
            for _ in range(self.server.flood_batch):
                n += 1
                s = symbols[n % len(symbols)]
                price[s] += 0.01 if n % 3 else -0.01
                volume[s] += 1.0
                frames.append(encode_message("qsd", [qs, {"n": s, "s": "ok", "v": {"lp": round(price[s], 2),
                                                                                  "volume": volume[s]}}]))
            await self.send("".join(frames))

    async def ticks(self, qs: str, symbols: list[str], price: dict, volume: dict) -> None:
        while True:
            await asyncio.sleep(0.05)
            await self.garbage()
            for s in symbols:
                price[s] += 0.01
                volume[s] += 1.0
                await self.send(encode_message("qsd", [qs, {"n": s, "s": "ok", "v": {
                    "lp": round(price[s], 2), "volume": volume[s]}}]))


class HostileServer:
    """The server on its own event-loop thread; ``url`` is ready once the ``with`` block starts."""

    def __init__(self, behaviour: str, *, history_bars: int = 20_000, huge_bytes: int = 55_000_000,
                 drip_interval_s: float = 0.05, flood_batch: int = 200, heartbeat_s: float = 0.5,
                 port: int = 0) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}: expected one of {', '.join(BEHAVIOURS)}")
        self.behaviour = behaviour
        self.history_bars = history_bars
        self.huge_bytes = huge_bytes
        self.drip_interval_s = drip_interval_s
        self.flood_batch = flood_batch
        self.heartbeat_s = heartbeat_s
        self.port = port
        self.counters = ServerCounters()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._huge: str | None = None

    def huge_message(self, session: str) -> str:
        if self._huge is None:
            pad = "x" * self.huge_bytes
            self._huge = '{"m":"timescale_update","p":["%s",{"sds_1":{"s":[],"pad":"%s"}}]}' % ("@" * 15, pad)
        # a session id is 15 characters (cs_/qs_ + 12): the same length, whichever it is
        body = self._huge.replace("@" * 15, session, 1)
        return f"~m~{len(body)}~m~{body}"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/socket.io/websocket"

    async def _handler(self, ws: ServerConnection) -> None:
        self.counters.connections += 1
        await _Peer(self, ws).run()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", self.port, max_size=None, ping_interval=None,
                         compression=None, write_limit=2 ** 20) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()
            server.close(close_connections=False)
            for conn in list(server.connections):
                conn.transport.abort()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported by __enter__
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    def __enter__(self) -> "HostileServer":
        self._thread = threading.Thread(target=self._run, name=f"hostile-{self.behaviour}", daemon=True)
        if self.behaviour == "huge_frame":
            self.huge_message("cs_000000000000")
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("behaviour", choices=sorted(BEHAVIOURS))
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with HostileServer(args.behaviour, port=args.port) as server:
        print(server.url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
