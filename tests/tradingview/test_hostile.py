"""The client against a hostile server: each behaviour ends in a clear error (or a skipped frame)
within the client's deadlines, and memory stays bounded by the request, not by the server."""

from __future__ import annotations

import asyncio

import pytest

from pocketquant_pipelines.tradingview.client import TradingViewClient
from pocketquant_pipelines.tradingview.errors import (
    ConnectionLostError,
    HistoryDeadlineError,
    HistoryTimeoutError,
    MalformedDataError,
    MessageTooLargeError,
    PageLostError,
    QuoteSilenceError,
)
from pocketquant_pipelines.tradingview.quote_stream import QuoteStream
from tests.tradingview.hostile_server import HostileServer

SYMBOL = "BINANCE:BTCUSDT"
HANG_GUARD_S = 60  # a hang detector only: every case ends long before this
# Deadlines short enough for a test; the defaults (300 s, 60 s) behave the same, later.
FAST = dict(history_deadline_s=4.0, request_timeout_s=30.0, heartbeat_timeout_s=30.0, quote_silence_s=2.0,
            backoff_initial_s=0.01, backoff_max_s=0.05)


def fetch(server: HostileServer, bars: int = 100, **options):
    async def go():
        async with TradingViewClient(url=server.url, **{**FAST, **options}) as tv:
            async with asyncio.timeout(HANG_GUARD_S):
                try:
                    return await tv.fetch_history(SYMBOL, "1m", bars), tv
                except Exception as exc:  # noqa: BLE001 - returned for the test to inspect
                    return exc, tv

    return asyncio.run(go())


# --------------------------------------------------------------------------- history


def test_control_a_well_behaved_server_pages_and_reports_the_end_of_history():
    with HostileServer("well_behaved", history_bars=12_000) as server:
        result, _ = fetch(server, bars=7_000)
        assert len(result.columns) == 7_000 and not result.depth_reached and result.pages == 2
        result, _ = fetch(server, bars=15_000)
    # nothing was lost, so a shorter history is the end of history
    assert len(result.columns) == 12_000 and result.depth_reached


def test_endless_paging_stops_at_the_bar_cap_of_the_request():
    with HostileServer("endless_paging") as server:
        error, _ = fetch(server, bars=100)
    assert isinstance(error, MalformedDataError)
    assert "more than 5100 bars for a request of 100" in str(error)  # 100 asked + one page of slack


def test_a_server_that_repeats_a_page_forever_ends_at_the_overall_deadline():
    with HostileServer("endless_same_page") as server:
        error, _ = fetch(server, bars=100)
        assert server.counters.messages_sent > 10  # the socket never went quiet: silence alone never fires
    assert isinstance(error, HistoryDeadlineError)
    assert "not complete within 4 s (TRADINGVIEW_HISTORY_DEADLINE_S)" in str(error)
    assert "100 of 100 bars" in str(error)


@pytest.mark.parametrize("behaviour", ["silent", "hello_then_silent"])
def test_a_silent_server_ends_at_the_deadline_or_the_request_timeout(behaviour):
    with HostileServer(behaviour) as server:
        error, _ = fetch(server)
        assert isinstance(error, HistoryDeadlineError), error
        error, _ = fetch(server, request_timeout_s=1.0, history_deadline_s=30.0)
    assert isinstance(error, HistoryTimeoutError) and not isinstance(error, HistoryDeadlineError)
    assert "no reply from TradingView for BINANCE:BTCUSDT 1m within 1 s" in str(error)


def test_a_slow_drip_of_bytes_ends_at_the_overall_deadline():
    with HostileServer("slow_drip") as server:
        error, _ = fetch(server)
        assert server.counters.bytes_sent > 0  # bytes kept coming, never a whole message
    assert isinstance(error, HistoryDeadlineError)
    assert "0 of 100 bars" in str(error)


def test_a_huge_message_is_refused_from_its_header():
    with HostileServer("huge_frame") as server:
        error, tv = fetch(server, history_deadline_s=30.0)
    assert isinstance(error, MessageTooLargeError)
    assert "over 8388608 bytes (TRADINGVIEW_MAX_MESSAGE_BYTES)" in str(error)
    assert not tv.stats.connected


def test_the_message_cap_is_a_setting():
    with HostileServer("well_behaved") as server:
        result, _ = fetch(server, bars=5_000)  # a full page (~0.6 MB) is far below the default cap
        assert len(result.columns) == 5_000
        error, _ = fetch(server, bars=5_000, max_message_bytes=64 * 1024)
    assert isinstance(error, MessageTooLargeError) and "over 65536 bytes" in str(error)


@pytest.mark.parametrize("behaviour, why", [
    ("wrong_length", "declared length does not end at a frame boundary"),
    ("lying_header", "declared length 9999999999 is over the frame cap of 8388608"),
    ("garbage_page", "1 undecodable frame(s) arrived while this page was in flight and the page came back empty"),
    ("shapeless_page", "a timescale_update without its series object"),
])
def test_a_lost_page_fails_the_request_instead_of_ending_history(behaviour, why):
    with HostileServer(behaviour) as server:
        error, tv = fetch(server)
    assert isinstance(error, PageLostError), error
    assert why in str(error) and "a lost page is not the end of history" in str(error)
    assert tv.stats.decode_errors >= (behaviour != "shapeless_page")  # that one decodes, but is no page


def test_garbage_frames_between_real_ones_are_skipped_and_counted():
    with HostileServer("garbage_frames", history_bars=12_000) as server:
        result, tv = fetch(server, bars=11_000)
    assert len(result.columns) == 11_000 and not result.depth_reached
    assert tv.stats.decode_errors >= 5 * result.pages  # five undecodable frames per reply


def test_a_close_in_the_middle_of_a_frame_is_a_lost_connection_retried_once():
    with HostileServer("close_mid_frame") as server:
        error, tv = fetch(server)
        assert server.counters.connections == 2
    assert isinstance(error, ConnectionLostError)
    assert "dropped the connection without a close frame" in str(error)
    assert tv.stats.reconnects == 1


# --------------------------------------------------------------------------- quotes


async def _first_error(server: HostileServer, **options):
    async with TradingViewClient(url=server.url, **{**FAST, **options}) as tv:
        async with asyncio.timeout(HANG_GUARD_S), tv.quote_stream([SYMBOL, "NASDAQ:AAPL"]) as stream:
            try:
                async for _ in stream:
                    pass
            except Exception as exc:  # noqa: BLE001 - returned for the test to inspect
                return exc, stream
    raise AssertionError("the stream ended without an error")


@pytest.mark.parametrize("behaviour", ["silent", "hello_then_silent"])
def test_a_silent_quote_server_ends_the_stream(behaviour):
    with HostileServer(behaviour) as server:
        error, stream = asyncio.run(_first_error(server))
    assert isinstance(error, QuoteSilenceError)
    assert "for 2 s of connected time (TRADINGVIEW_QUOTE_SILENCE_S)" in str(error)
    assert "no reply yet for BINANCE:BTCUSDT, NASDAQ:AAPL" in str(error)
    assert stream.state == "failed"


def test_silence_adds_up_across_reconnects():
    # each socket is dropped as dead after 0.5 s (heartbeat timeout); the stream reconnects,
    # and the silent time of all of them together ends it
    with HostileServer("hello_then_silent") as server:
        error, _ = asyncio.run(_first_error(server, heartbeat_timeout_s=0.5))
        assert server.counters.connections >= 3
    assert isinstance(error, QuoteSilenceError)


def test_heartbeats_without_any_reply_to_the_subscription_are_silence():
    # the hostile server heartbeats every 0.5 s but never answers quote_add_symbols
    with HostileServer("heartbeats_only") as server:
        error, _ = asyncio.run(_first_error(server))
    assert isinstance(error, QuoteSilenceError)


def test_a_huge_quote_message_ends_the_stream():
    with HostileServer("huge_frame") as server:
        error, _ = asyncio.run(_first_error(server, quote_silence_s=20.0))
    assert isinstance(error, MessageTooLargeError)


def test_garbage_between_quote_frames_is_skipped():
    async def go(server):
        async with TradingViewClient(url=server.url, **FAST) as tv, tv.quote_stream([SYMBOL]) as stream:
            async with asyncio.timeout(HANG_GUARD_S):
                ticks = [tick async for tick in _take(stream, 20)]
            return ticks, stream

    with HostileServer("garbage_frames") as server:
        ticks, stream = asyncio.run(go(server))
    assert len(ticks) == 20 and stream.stats.decode_errors >= 5
    assert [t.price for t in ticks] == sorted(t.price for t in ticks)  # every update, in order


async def _take(stream, n):
    count = 0
    async for tick in stream:
        yield tick
        count += 1
        if count == n:
            return


def test_a_quote_flood_is_held_back_by_a_slow_consumer_and_nothing_is_dropped():
    async def go(server):
        async with TradingViewClient(url=server.url, **FAST) as tv:
            stream = QuoteStream(tv, [SYMBOL], max_pending=500)
            async with stream, asyncio.timeout(HANG_GUARD_S):
                ticks = stream.__aiter__()
                first = await ticks.__anext__()
                while server.counters.messages_sent < 5:  # the flood has started
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)  # the consumer stalls while the server floods
                held = stream.pending
                rest = [await ticks.__anext__() for _ in range(3_000)]
            return first, held, rest

    with HostileServer("quote_flood", flood_batch=200) as server:
        first, held, rest = asyncio.run(go(server))
    # the reader stopped at the first message that reached the cap: at most one message more
    assert 0 < held <= 500 + 200
    # and every update arrived: per-tick volumes add up to the cumulative volume's growth
    assert sum(t.volume for t in rest) == rest[-1].cumulative_volume - first.cumulative_volume


def test_time_spent_failing_to_connect_is_an_outage_not_silence():
    from tests.conftest import free_port

    async def go():
        url = f"ws://127.0.0.1:{free_port()}/socket.io/websocket"  # nothing listens: every connect fails
        async with TradingViewClient(url=url, **{**FAST, "quote_silence_s": 0.2}) as tv:
            stream = tv.quote_stream([SYMBOL])
            async with stream:
                await asyncio.sleep(1.0)  # five times the silence allowance, all of it failing to connect
                return stream.state, stream._queue.qsize(), stream.silent_for()

    state, queued, silent = asyncio.run(go())
    assert state in ("connecting", "reconnecting") and queued == 0 and silent == 0.0
