"""The real client against the protocol simulator (real sockets, real framing, real faults).

The simulator's market is the oracle: its bars and ticks are what the client must return.
Simulated time starts on a weekday afternoon (UTC) so US stocks, futures and crypto all trade.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from pocketquant_pipelines.market.intervals import ALL_INTERVALS
from pocketquant_pipelines.tradingview.client import BlockingTradingViewClient, TradingViewClient, fetch_history_sync
from pocketquant_pipelines.tradingview.errors import AuthError, ConnectionLostError, SymbolNotFoundError

from tradingview_simulator.server import SimulatorServer, run_simulator_in_thread
from tradingview_simulator.faults import FaultConfig  # noqa: E402

SIM_START = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)  # Wednesday 10:00 New York
CRYPTO = "BINANCE:BTCUSDT"
STOCK = "NASDAQ:AAPL"
FUTURE = "CME_MINI:NQ1!"
INDEX = "SP:SPX"
FAST = dict(backoff_initial_s=0.01, backoff_max_s=0.1, request_timeout_s=20)


def run(coro, timeout: float = 60):
    async def bounded():
        async with asyncio.timeout(timeout):
            return await coro
    return asyncio.run(bounded())


async def next_ticks(stream, n: int, timeout: float = 20) -> list:
    out = []
    async with asyncio.timeout(timeout):
        async for tick in stream:
            out.append(tick)
            if len(out) >= n:
                break
    return out


async def wait_until(predicate, timeout: float = 20, step: float = 0.005) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(step)


@pytest.fixture(scope="module")
def shared_sim():
    with run_simulator_in_thread(seed=7, sim_start=SIM_START, speed=1.0) as server:
        yield server


# ---------------------------------------------------------------------------------- history


@pytest.mark.parametrize("interval", ALL_INTERVALS, ids=str)
def test_history_every_interval_matches_the_oracle(shared_sim, interval):
    result = fetch_history_sync(CRYPTO, interval, 300, url=shared_sim.url, **FAST)
    truth = shared_sim.market.history(CRYPTO, interval, shared_sim.sim_now(), 301)
    # monthly history starts in 2019: fewer bars exist than asked, which the result says
    expected = min(300, len(truth))
    assert len(result.bars) == expected and result.depth_reached == (expected < 300)
    times = [b.time for b in result.bars]
    assert times == sorted(set(times))
    assert all(b.interval is interval and b.symbol == CRYPTO for b in result.bars)
    by_time = {b.time: b for b in truth}
    # the last bar may still be forming between the two reads: compare the closed ones
    for bar in result.bars[:-1]:
        assert by_time[bar.time] == bar
    assert result.metadata.timezone == "Etc/UTC" and result.metadata.has_volume


def test_history_pages_past_the_first_batch_up_to_the_depth(shared_sim):
    before = shared_sim.stats.commands["request_more_data"]

    async def go():
        async with TradingViewClient(url=shared_sim.url, page_size=1000, **FAST) as tv:
            return await tv.fetch_history(CRYPTO, "1m", 7000)

    result = run(go())
    assert len(result.bars) == 5000 and result.depth_reached and result.requested == 7000
    assert result.pages == 5  # 1000 from create_series + 4 request_more_data pages
    # the 4th page reaches the anonymous depth and carries data_completed "end": no 5th request
    assert shared_sim.stats.commands["request_more_data"] - before == 4
    times = [b.time for b in result.bars]
    assert times == sorted(set(times))
    assert all((b - a).total_seconds() == 60 for a, b in zip(times, times[1:]))  # 24x7: no gaps
    truth = {b.time: b for b in shared_sim.market.history(CRYPTO, "1m", shared_sim.sim_now(), 5001)}
    assert all(truth[b.time] == b for b in result.bars[:-1])


def test_history_of_an_index_has_no_volume_and_stock_metadata(shared_sim):
    async def go():
        async with TradingViewClient(url=shared_sim.url, **FAST) as tv:
            return await asyncio.gather(tv.fetch_history(INDEX, "1d", 50), tv.fetch_history(STOCK, "1d", 50))

    index, stock = run(go())
    assert all(b.volume is None for b in index.bars) and not index.metadata.has_volume
    assert stock.metadata.timezone == "America/New_York" and stock.metadata.description
    # daily bars of a US stock open at 09:30 New York, in UTC
    assert {(b.time.hour, b.time.minute) for b in stock.bars} <= {(14, 30), (13, 30)}


def test_concurrent_fetches_share_few_connections(shared_sim):
    symbols = [CRYPTO, STOCK, FUTURE, INDEX] * 3
    opened_before = shared_sim.stats.connections

    async def go():
        async with TradingViewClient(url=shared_sim.url, max_connections=2, concurrency=4, **FAST) as tv:
            results = await asyncio.gather(*(tv.fetch_history(s, "1h", 500) for s in symbols))
            return results, tv.stats.connections

    results, opened = run(go())
    assert [r.symbol for r in results] == symbols and all(len(r.bars) == 500 for r in results)
    assert opened <= 2 and shared_sim.stats.connections - opened_before <= 2


def test_unknown_symbol_fails_fast_with_the_servers_reason(shared_sim):
    async def go():
        async with TradingViewClient(url=shared_sim.url, **FAST) as tv:
            start = time.monotonic()
            with pytest.raises(SymbolNotFoundError) as info:
                await tv.fetch_history("NASDAQ:NOPE", "1d", 10)
            return info.value, time.monotonic() - start

    error, elapsed = run(go())
    assert error.reason in ("invalid symbol", "resolve error")
    assert "NASDAQ:NOPE" in str(error) and error.reason in str(error)
    assert elapsed < 5  # generous: the point is that it does not wait for request_timeout_s (20 s)


def test_bad_token_is_an_auth_error(shared_sim):
    with pytest.raises(AuthError, match="bad auth token"):
        fetch_history_sync(CRYPTO, "1d", 10, url=shared_sim.url, auth_token="expired-jwt", **FAST)


def test_http_429_on_upgrade_is_retried_with_backoff():
    async def go():
        async with SimulatorServer(sim_start=SIM_START) as server:
            server.refuse_next(3)
            async with TradingViewClient(url=server.url, **FAST) as tv:
                result = await tv.fetch_history(CRYPTO, "1h", 100)
            return result, server.stats.refused, server.stats.connections

    result, refused, accepted = run(go())
    assert len(result.bars) == 100 and refused == 3 and accepted == 1


def test_history_lost_connection_is_retried_once_then_reported():
    async def go():
        async with SimulatorServer(sim_start=SIM_START, faults=FaultConfig(drop_after_frames=2)) as server:
            async with TradingViewClient(url=server.url, **FAST) as tv:
                with pytest.raises(ConnectionLostError):
                    await tv.fetch_history(CRYPTO, "1h", 100)
            return server.stats.dropped

    assert run(go()) == 2  # the first attempt and its one retry


def test_blocking_client_keeps_its_socket(shared_sim):
    before = shared_sim.stats.connections
    with BlockingTradingViewClient(url=shared_sim.url, **FAST) as tv:
        first = tv.fetch_history(CRYPTO, "4h", 20)
        second = tv.fetch_history(STOCK, "1w", 20)
        sequential = shared_sim.stats.connections - before
        results = tv.fetch_many([(FUTURE, "15m", 30), ("NASDAQ:NOPE", "1d", 5)])
    assert len(first.bars) == 20 and len(second.bars) == 20 and len(results[0].bars) == 30
    assert isinstance(results[1], SymbolNotFoundError)
    assert sequential == 1  # one socket, kept between calls
    assert shared_sim.stats.connections - before <= 2  # concurrent calls may open the second


# ---------------------------------------------------------------------------------- quotes


def _key(tick):
    return (tick.symbol, tick.time, tick.price, tick.cumulative_volume)


def _truth_since(server, symbol, first_tick, last_tick):
    """The oracle's ticks after the client's first (baseline) tick, up to its last one."""
    start = first_tick.time.timestamp() + 1
    end = last_tick.time.timestamp() + 1
    return server.market.ticks(symbol, start, end)


# At 5000x one pump covers ~100 simulated seconds, so the server packs several updates of the
# same symbol into one WebSocket message (as the real server packs bursts): each is a tick.
@pytest.mark.parametrize("speed", [200, 5000], ids=["one-update-per-message", "packed-bursts"])
def test_quotes_merge_partial_updates_into_every_tick(speed):
    async def go():
        async with SimulatorServer(sim_start=SIM_START, speed=speed, pump_interval_s=0.02) as server:
            async with TradingViewClient(url=server.url, **FAST) as tv:
                async with tv.quote_stream([CRYPTO, INDEX]) as stream:
                    ticks = await next_ticks(stream, 60)
                    return server, ticks, stream.snapshot(CRYPTO), stream.snapshot(INDEX), stream.stats

    server, ticks, crypto_state, index_state, stats = run(go())
    mine = [t for t in ticks if t.symbol == CRYPTO]
    truth = _truth_since(server, CRYPTO, mine[0], mine[-1])
    # every tick of the oracle, each with its own time, price, bid/ask and volume
    assert [(t.time, t.price, t.volume, t.cumulative_volume, t.bid, t.ask) for t in mine[1:]] == [
        (t.time, t.price, t.volume, t.cumulative_volume, t.bid, t.ask) for t in truth]
    assert mine[0].volume == 0.0  # the baseline
    for field in ("lp", "lp_time", "volume", "bid", "ask", "description", "currency_code", "update_mode"):
        assert field in crypto_state
    # the merged state is the latest update (it may be past the last tick read at high speed)
    at = crypto_state["lp_time"]
    assert crypto_state["lp"] == server.market.ticks(CRYPTO, at, at + 1)[-1].price
    index_ticks = [t for t in ticks if t.symbol == INDEX]
    assert index_ticks and all(t.volume is None and t.cumulative_volume is None for t in index_ticks)
    assert "volume" not in index_state or index_state["volume"] >= 1e99
    assert stats.decode_errors == 0 and stats.reconnects == 0


def _ticks_across(symbol, start, stop_at, jump=None):
    """The client's ticks of ``symbol`` from ``start`` until one dated ``stop_at`` or later;
    ``jump`` = (after, to): once a tick dated ``after`` arrives, simulated time jumps to ``to``
    (the night between two exchange sessions, without streaming through it)."""
    async def go():
        async with SimulatorServer(sim_start=start, speed=600, pump_interval_s=0.02) as server:
            async with TradingViewClient(url=server.url, **FAST) as tv:
                async with tv.quote_stream([symbol]) as stream:
                    ticks, pending = [], jump
                    async with asyncio.timeout(40):
                        async for tick in stream:
                            ticks.append(tick)
                            if pending and tick.time >= pending[0]:
                                server.clock.jump(pending[1].timestamp() - server.clock.now_epoch())
                                pending = None
                            if tick.time >= stop_at:
                                break
                    return server, ticks, stream.quotes[symbol].resets

    return run(go())


@pytest.mark.parametrize("symbol, start, stop_at, jump", [
    # 24x7: the daily session (and its cumulative volume) restarts at 00:00 UTC
    (CRYPTO, datetime(2026, 11, 17, 23, 58, tzinfo=UTC), datetime(2026, 11, 18, 0, 2, tzinfo=UTC), None),
    # an exchange: from 15:58 New York across the close, the night skipped, to the next open
    ("NASDAQ:AAPL", datetime(2026, 11, 17, 20, 58, tzinfo=UTC), datetime(2026, 11, 18, 14, 32, tzinfo=UTC),
     (datetime(2026, 11, 17, 20, 59, 50, tzinfo=UTC), datetime(2026, 11, 18, 14, 29, 50, tzinfo=UTC))),
], ids=["24x7-midnight", "exchange-next-open"])
def test_a_falling_cumulative_volume_is_a_session_reset_never_a_negative_volume(symbol, start, stop_at, jump):
    # TradingView's quote volume is the session's cumulative volume, so it falls when a new
    # session starts. The tick at the fall carries what traded since: the new cumulative value.
    server, ticks, resets = _ticks_across(symbol, start, stop_at, jump)
    cumulative = [t.cumulative_volume for t in ticks]
    falls = [i for i in range(1, len(ticks)) if cumulative[i] < cumulative[i - 1]]
    assert resets == 1 and len(falls) == 1
    at = falls[0]
    assert all(t.volume >= 0 for t in ticks)
    assert ticks[at].volume == ticks[at].cumulative_volume > 0  # all of it traded since the reset
    assert ticks[at].time.date() == stop_at.date() and ticks[at - 1].time.date() == start.date()
    # from the reset on, the per-tick volumes add up to the server's cumulative volume exactly,
    # and every tick's volume is the oracle's
    assert sum(t.volume for t in ticks[at:]) == ticks[-1].cumulative_volume
    truth = _truth_since(server, symbol, ticks[0], ticks[-1])
    assert [(t.time, t.volume) for t in ticks[1:]] == [(t.time, t.volume) for t in truth]


def test_subscribe_and_unsubscribe_while_running():
    async def go():
        async with SimulatorServer(sim_start=SIM_START, speed=200, pump_interval_s=0.02) as server:
            async with TradingViewClient(url=server.url, **FAST) as tv:
                async with tv.quote_stream([CRYPTO]) as stream:
                    first = await next_ticks(stream, 3)
                    await stream.subscribe(FUTURE)
                    both = await next_ticks(stream, 40)
                    await stream.unsubscribe(CRYPTO)
                    while not stream._queue.empty():  # ticks already built before unsubscribing
                        stream._queue.get_nowait()
                    after = await next_ticks(stream, 15)
                    return first, both, after, stream.symbols, server.stats.commands

    first, both, after, symbols, commands = run(go())
    assert {t.symbol for t in first} == {CRYPTO}
    assert {t.symbol for t in both} == {CRYPTO, FUTURE}
    assert {t.symbol for t in after} == {FUTURE}
    assert symbols == [FUTURE]
    assert commands["quote_remove_symbols"] == 1 and commands["quote_add_symbols"] == 2


def test_a_refused_symbol_does_not_stop_the_others():
    seen = []

    async def go():
        async with SimulatorServer(sim_start=SIM_START, speed=200, pump_interval_s=0.02) as server:
            async with TradingViewClient(url=server.url, **FAST) as tv:
                async with tv.quote_stream([CRYPTO, "NASDAQ:NOPE"], on_error=seen.append) as stream:
                    ticks = await next_ticks(stream, 10)
                    return ticks, stream.errors, stream.symbols

    ticks, errors, symbols = run(go())
    assert {t.symbol for t in ticks} == {CRYPTO}
    assert [(e.symbol, e.reason) for e in errors] == [("NASDAQ:NOPE", "no_such_symbol")]
    assert seen == errors and symbols == [CRYPTO]


def test_quote_stream_with_a_bad_token_ends_with_auth_error():
    async def go():
        async with SimulatorServer(sim_start=SIM_START) as server:
            async with TradingViewClient(url=server.url, auth_token="revoked", **FAST) as tv:
                async with tv.quote_stream([CRYPTO]) as stream:
                    with pytest.raises(AuthError, match="bad auth token"):
                        await next_ticks(stream, 1)
                    return stream.state

    assert run(go()) == "failed"


def test_disconnect_storm_fifty_drops_no_tick_twice_volumes_exact():
    drops = 50
    symbols = [CRYPTO, STOCK, FUTURE, INDEX]

    async def go():
        server = SimulatorServer(sim_start=SIM_START, speed=200, pump_interval_s=0.02, heartbeat_s=0.5,
                                 faults=FaultConfig(drop_after_frames=14))
        async with server:
            async with TradingViewClient(url=server.url, backoff_initial_s=0.02, backoff_max_s=0.05) as tv:
                stream = tv.quote_stream(symbols)
                ticks: list = []

                async def consume():
                    async for tick in stream:
                        ticks.append(tick)

                async def stop_faults_after_the_last_drop():
                    await wait_until(lambda: server.stats.dropped >= drops, timeout=60, step=0.001)
                    server.faults.drop_after_frames = None

                consumer = asyncio.create_task(consume())
                await stop_faults_after_the_last_drop()
                await wait_until(lambda: stream.stats.reconnects >= drops and stream.state == "streaming")
                mark = len(ticks)
                await wait_until(lambda: {t.symbol for t in ticks[mark:]} >= set(symbols), timeout=30)
                await stream.close()
                await consumer
                return server, ticks, stream.stats

    server, ticks, stats = run(go(), timeout=120)
    assert server.stats.dropped == drops
    assert stats.reconnects == drops
    # every subscription restored each time: one quote_add_symbols per connection
    assert server.stats.commands["quote_add_symbols"] == drops + 1
    assert len({_key(t) for t in ticks}) == len(ticks), "a tick was emitted twice"
    for symbol in (CRYPTO, STOCK, FUTURE):
        mine = [t for t in ticks if t.symbol == symbol]
        truth = _truth_since(server, symbol, mine[0], mine[-1])
        assert sum(t.volume for t in mine) == sum(t.volume for t in truth)  # exact: no tick lost or doubled
        assert mine[-1].cumulative_volume == truth[-1].cumulative_volume
        assert [t.time for t in mine] == sorted(t.time for t in mine)


def test_heartbeats_are_echoed_so_the_server_keeps_the_socket():
    async def go():
        async with SimulatorServer(sim_start=SIM_START, heartbeat_s=0.05, heartbeat_grace_s=0.3) as server:
            async with TradingViewClient(url=server.url, **FAST) as tv:
                async with tv.quote_stream([CRYPTO]) as stream:
                    await next_ticks(stream, 1)
                    await wait_until(lambda: server.stats.heartbeats_sent >= 20)
                    return server.stats, stream.stats

    server_stats, client_stats = run(go())
    assert server_stats.heartbeat_timeouts == 0 and server_stats.connections == 1
    assert server_stats.heartbeats_echoed >= 19 and client_stats.reconnects == 0


def test_silence_is_detected_and_the_stream_reconnects():
    async def go():
        async with SimulatorServer(sim_start=SIM_START, speed=200, pump_interval_s=0.02, heartbeat_s=0.1) as server:
            async with TradingViewClient(url=server.url, heartbeat_timeout_s=0.5, **{
                    k: v for k, v in FAST.items()}) as tv:
                async with tv.quote_stream([CRYPTO]) as stream:
                    await next_ticks(stream, 2)
                    server.go_silent(True)
                    await wait_until(lambda: stream.stats.reconnects >= 1)
                    server.go_silent(False)
                    later = await next_ticks(stream, 3)
                    return later, stream.stats, server.stats

    later, stats, server_stats = run(go())
    assert len(later) == 3 and stats.reconnects >= 1 and server_stats.connections >= 2


def test_malformed_frames_are_counted_and_the_stream_goes_on():
    async def go():
        async with SimulatorServer(sim_start=SIM_START, speed=200, pump_interval_s=0.02,
                                   faults=FaultConfig(malformed_every=3)) as server:
            async with TradingViewClient(url=server.url, **FAST) as tv:
                async with tv.quote_stream([CRYPTO, FUTURE]) as stream:
                    ticks = await next_ticks(stream, 40)
                    server.faults.malformed_every = None
                    await asyncio.sleep(0.3)
                    await wait_until(lambda: stream.stats.decode_errors == server.stats.malformed_sent)
                    return ticks, stream.stats, server.stats

    ticks, stats, server_stats = run(go())
    assert server_stats.malformed_sent >= 3
    assert stats.decode_errors == server_stats.malformed_sent and stats.reconnects == 0
    assert len({_key(t) for t in ticks}) == len(ticks) == 40


def test_quote_stream_survives_http_429_at_start():
    async def go():
        async with SimulatorServer(sim_start=SIM_START, speed=200, pump_interval_s=0.02) as server:
            server.refuse_next(4)
            async with TradingViewClient(url=server.url, **FAST) as tv:
                async with tv.quote_stream([CRYPTO]) as stream:
                    ticks = await next_ticks(stream, 3)
                    return ticks, server.stats.refused, stream.stats

    ticks, refused, stats = run(go())
    assert len(ticks) == 3 and refused == 4 and stats.connections == 1 and stats.reconnects == 0


class _RotatingSignIn:
    """A sign-in endpoint handing out tokens in turn (an expired one first)."""

    def __init__(self, tokens):
        import http.server
        import threading

        self.tokens = list(tokens)
        self.calls = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                self.rfile.read(int(self.headers["Content-Length"]))
                token = outer.tokens[min(outer.calls, len(outer.tokens) - 1)]
                outer.calls += 1
                body = ('{"user": {"auth_token": "%s"}}' % token).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/accounts/signin/"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_an_expired_signed_in_token_is_refreshed_once():
    signin = _RotatingSignIn(["expired-jwt", "fresh-jwt"])

    async def go():
        async with SimulatorServer(sim_start=SIM_START, speed=200, pump_interval_s=0.02,
                                   accepted_tokens=["fresh-jwt"]) as server:
            async with TradingViewClient(url=server.url, username="quant", password="pw",
                                         signin_url=signin.url, **FAST) as tv:
                result = await tv.fetch_history(CRYPTO, "1d", 10)
                calls_after_history = signin.calls
                async with tv.quote_stream([CRYPTO]) as stream:
                    ticks = await next_ticks(stream, 2)
                return result, calls_after_history, ticks, server.stats.protocol_errors

    try:
        result, calls, ticks, protocol_errors = run(go())
    finally:
        signin.close()
    assert len(result.bars) == 10 and len(ticks) == 2
    assert calls == 2 and protocol_errors == 1  # one rejection, one fresh sign-in, then reused
    assert signin.calls == 2


def test_a_token_rejected_right_after_refresh_is_final():
    signin = _RotatingSignIn(["expired-jwt"])

    async def go():
        async with SimulatorServer(sim_start=SIM_START) as server:
            async with TradingViewClient(url=server.url, username="quant", password="pw",
                                         signin_url=signin.url, **FAST) as tv:
                with pytest.raises(AuthError, match="bad auth token"):
                    await tv.fetch_history(CRYPTO, "1d", 10)

    try:
        run(go())
    finally:
        signin.close()
    assert signin.calls == 2


def test_live_updates_during_paging_keep_the_forming_bars_current():
    # 10 simulated minutes pass per wall second: bars open and close while we page, and the
    # server streams them as `du` updates on the same chart session.
    async def go():
        async with SimulatorServer(sim_start=SIM_START, speed=600, pump_interval_s=0.02,
                                   faults=FaultConfig(reply_delay_s=0.3)) as server:  # slow pages
            async with TradingViewClient(url=server.url, page_size=500, **FAST) as tv:
                result = await tv.fetch_history(CRYPTO, "1m", 2500)
            return result, server.market.history(CRYPTO, "1m", server.sim_now(), 2600)

    result, truth = run(go())
    by_time = {b.time: b for b in truth}
    assert len(result.bars) == 2500
    # the newest bar is the one forming when the request ended, not when it started (the
    # 6 slow pages take about 20 simulated minutes)
    assert (truth[-1].time - result.bars[-1].time).total_seconds() <= 300
    stale = [b.time for b in result.bars[:-1] if by_time[b.time] != b]
    assert not stale, f"{len(stale)} closed bars differ from the oracle, first {stale[0]}"


def test_series_rows_skips_malformed_items():
    from pocketquant_pipelines.tradingview.history import series_rows

    good = [{"i": 0, "v": [1.0, 1, 1, 1, 1]}, {"i": 1, "v": [2.0, 1, 1, 1, 1, 5]}]
    assert series_rows({"s": good}) == [g["v"] for g in good]
    messy = good + [{"i": 2}, "junk", {"v": []}, {"v": [[1], 2]}, {"v": ["1.0", 1]}, None]
    assert series_rows({"s": messy}) == [g["v"] for g in good]
    assert series_rows({"s": None}) == [] and series_rows({}) == [] and series_rows("x") == []


def test_a_paid_token_pages_past_five_thousand_bars(shared_sim):
    async def go():
        async with TradingViewClient(url=shared_sim.url, auth_token="sim_paid_token", **FAST) as tv:
            return await tv.fetch_history(CRYPTO, "5m", 12_000)

    result = run(go())
    assert len(result.bars) == 12_000 and not result.depth_reached and result.pages == 3
    times = [b.time for b in result.bars]
    assert times == sorted(set(times))
    assert all((b - a).total_seconds() == 300 for a, b in zip(times, times[1:]))
    truth = {b.time: b for b in shared_sim.market.history(CRYPTO, "5m", shared_sim.sim_now(), 12_001)}
    assert all(truth[b.time] == b for b in result.bars[:-1])


def test_concurrency_limit_bounds_requests_in_flight(monkeypatch):
    from pocketquant_pipelines.tradingview import client as client_module

    real = client_module.fetch_on_connection
    in_flight, peak = 0, 0

    async def counting(*args, **kwargs):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await real(*args, **kwargs)
        finally:
            in_flight -= 1

    monkeypatch.setattr(client_module, "fetch_on_connection", counting)

    async def go():
        async with SimulatorServer(sim_start=SIM_START, faults=FaultConfig(reply_delay_s=0.05)) as server:
            async with TradingViewClient(url=server.url, concurrency=3, max_connections=2, **FAST) as tv:
                results = await asyncio.gather(*(tv.fetch_history(CRYPTO, iv, 50) for iv in ALL_INTERVALS))
                return results, tv.stats.connections

    results, sockets = run(go())
    assert len(results) == 13 and all(len(r.bars) == 50 for r in results)
    assert peak == 3 and sockets == 2
