"""One socket against a hand-written server: heartbeat echo frame by frame, routing, secrets."""

import asyncio
from websockets.asyncio.server import serve

from pocketquant_pipelines.tradingview.codec import encode_frame, encode_message
from pocketquant_pipelines.tradingview.connection import Connection, backoff_delays
from pocketquant_pipelines.tradingview.models import ClientStats


class Recorder:
    def __init__(self):
        self.frames, self.lost, self.batches = [], [], 0

    def on_frame(self, frame):
        self.frames.append(frame)

    def on_connection_lost(self, exc):
        self.lost.append(exc)

    def on_batch_end(self):
        self.batches += 1


def test_heartbeat_packed_with_data_is_echoed_alone_and_data_routed():
    received: list[str] = []

    async def handler(ws):
        # one message: data for two sessions, a heartbeat in the middle, then junk
        await ws.send(encode_message("qsd", ["qs_a", {"n": "X:Y", "s": "ok", "v": {"lp": 1}}])
                      + encode_frame("~h~7")
                      + encode_message("series_loading", ["cs_b", "sds_1", "s1"])
                      + "~m~3~m~{{{")
        async for message in ws:
            received.append(message)
            if "~h~" in message:
                await ws.close()

    async def go():
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            stats = ClientStats()
            conn = Connection(f"ws://127.0.0.1:{port}/socket.io/websocket", "secret-token", stats=stats,
                              heartbeat_timeout_s=5)
            quotes, charts = Recorder(), Recorder()
            conn.register("qs_a", quotes)
            conn.register("cs_b", charts)
            await conn.open()
            async with asyncio.timeout(10):
                while not quotes.lost:
                    await asyncio.sleep(0.01)
            return stats, quotes, charts

    stats, quotes, charts = asyncio.run(go())
    assert received[0] == encode_message("set_auth_token", ["secret-token"])
    assert received[1] == "~m~4~m~~h~7"  # the heartbeat frame only, not the whole message
    assert [f.method for f in quotes.frames] == ["qsd"] and [f.method for f in charts.frames] == ["series_loading"]
    assert quotes.batches == charts.batches == 1
    assert stats.frames_received == 4 and stats.decode_errors == 1
    assert quotes.lost and charts.lost and not stats.connected


def test_silence_closes_the_socket():
    async def handler(ws):
        await ws.wait_closed()  # says nothing until the client gives up

    async def go():
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            conn = Connection(f"ws://127.0.0.1:{port}/", "t", stats=ClientStats(), heartbeat_timeout_s=0.2)
            session = Recorder()
            conn.register("cs_x", session)
            await conn.open()
            async with asyncio.timeout(10):
                while not session.lost:
                    await asyncio.sleep(0.01)
            return session.lost[0]

    error = asyncio.run(go())
    assert "no frame from TradingView for 0.2 s" in str(error)


def test_register_on_a_closed_connection_reports_at_once():
    conn = Connection("ws://127.0.0.1:9/", "t", stats=ClientStats())
    conn.closed = True
    late = Recorder()
    conn.register("cs_late", late)
    assert late.lost and "cs_late" not in conn.handlers


def test_backoff_grows_exponentially_with_jitter_and_caps():
    import random

    delays = backoff_delays(1.0, 60.0, random.Random(1))
    values = [next(delays) for _ in range(12)]
    for n, value in enumerate(values):
        nominal = min(60.0, 2.0**n)
        assert 0.5 * nominal <= value <= nominal
    assert max(values) <= 60.0 and values[-1] >= 30.0


class _LogRecorder:
    """Stands in for a module's structlog logger and keeps every event it is given."""

    def __init__(self, events):
        self.events = events

    def __getattr__(self, level):
        def record(event, *args, **kw):
            self.events.append((level, event, repr(args), repr(kw)))
        return record


def test_tokens_never_reach_the_logs(monkeypatch):
    from pocketquant_pipelines.tradingview import auth, client, connection, history, quote_stream

    events: list = []
    for module in (auth, client, connection, history, quote_stream):
        monkeypatch.setattr(module, "log", _LogRecorder(events))

    async def handler(ws):
        await ws.send(encode_message("protocol_error", ["bad auth token"]))
        await ws.close()

    async def go():
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with client.TradingViewClient(url=f"ws://127.0.0.1:{port}/", auth_token="eyJ-very-secret",
                                                backoff_initial_s=0.01, request_timeout_s=2) as tv:
                try:
                    await tv.fetch_history("BINANCE:BTCUSDT", "1d", 5)
                except Exception as exc:  # noqa: BLE001 - the error text is checked below
                    return exc

    error = asyncio.run(go())
    assert "bad auth token" in str(error) and "eyJ-very-secret" not in str(error)
    assert any(event == "tradingview_protocol_error" for _, event, _, _ in events)
    assert any(event == "tradingview_token_ready" for _, event, _, _ in events)
    assert not any("eyJ-very-secret" in " ".join(map(str, e)) for e in events)
