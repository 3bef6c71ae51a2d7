"""The simulator speaks TradingView's protocol like the real server (shared notes §7),
checked with a raw WebSocket client and against captured real frames."""

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.tradingview.codec import decode_message, utf16_len
from tradingview_simulator import SimulatorServer

from tests.simulator.rawclient import HELLO_FIELDS, RawClient, method_is, methods, qsd_values, run

START = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # Tuesday 11:00 New York: every market open
# A copy of shared/tradingview-frames.jsonl kept in the repo, so a fresh clone has it.
FRAMES = Path(__file__).resolve().parents[1] / "tradingview" / "data" / "tradingview-frames.jsonl"
AAPL = '={"symbol":"NASDAQ:AAPL","adjustment":"splits","session":"regular"}'


def real_frames(tag: str) -> list[str]:
    out = []
    for line in FRAMES.read_text().splitlines():
        item = json.loads(line)
        if item["note"].startswith(f"[{tag}]") and item["raw"].startswith("~m~"):
            out.append(item["raw"])
    assert out, f"no captured [{tag}] frames in {FRAMES}"
    return out


def server(**kw) -> SimulatorServer:
    kw.setdefault("sim_start", START)
    kw.setdefault("pump_interval_s", 0.05)
    return SimulatorServer(**kw)


async def open_series(c: RawClient, resolution="1", count=300, symbol=AAPL, cs="cs_test", sid="s1"):
    await c.send("set_auth_token", "unauthorized_user_token")
    await c.send("chart_create_session", cs, "")
    await c.send("resolve_symbol", cs, "symbol_1", symbol)
    await c.send("create_series", cs, sid, "s1", "symbol_1", resolution, count)
    return await c.until(method_is("series_completed"))


@run
async def test_hello_comes_first_with_the_real_fields():
    async with server() as srv, RawClient(srv.url) as c:
        raw = await c.ws.recv()
        frames = decode_message(raw, strict=True)
        assert len(frames) == 1 and frames[0].kind == "hello"
        hello = frames[0].data
        assert set(hello) == HELLO_FIELDS
        assert hello["auth_scheme_vsn"] == 2 and hello["protocol"] == "json"
        assert hello["timestampMs"] // 1000 == hello["timestamp"] == int(START.timestamp())
        assert 290 <= len(raw) <= 360  # the real hello is ~300-350 characters
        real = real_frames("hello")
        if real:  # same key set as the 2023 capture
            assert set(decode_message(real[0])[0].data) == set(hello)


@run
async def test_heartbeats_count_up_and_unanswered_heartbeats_close_the_socket():
    async with server(heartbeat_s=0.2) as srv:
        async with RawClient(srv.url) as c:
            frames = await c.until(lambda f: f.kind == "heartbeat" and f.raw == "~h~4")
            assert [f.raw for f in frames if f.kind == "heartbeat"] == ["~h~1", "~h~2", "~h~3", "~h~4"]
            # Heartbeats travel alone, framed like the capture: ~m~4~m~~h~1
            assert "~m~4~m~~h~1" in c.messages
            await c.until(lambda f: f.kind == "heartbeat" and f.raw == "~h~6")  # echoed: still open
            assert srv.stats.heartbeats_echoed >= 4 and srv.stats.heartbeat_timeouts == 0
        async with RawClient(srv.url, echo=False) as mute:
            assert await mute.wait_closed() == 1000  # closed for not echoing
            assert srv.stats.heartbeat_timeouts == 1


@run
async def test_series_sequence_and_packing():
    async with server() as srv, RawClient(srv.url) as c:
        await c.recv()  # hello
        frames = await open_series(c, "1", 300)
        assert methods(frames) == ["series_loading", "symbol_resolved", "timescale_update", "series_timeframe",
                                   "series_completed"]
        loading, resolved, update, timeframe, completed = [f for f in frames if f.kind == "message"]
        assert timeframe.params == ["cs_test", "s1", "s1", 0, 299, "LASTSESSION", True]
        assert loading.params == ["cs_test", "s1", "s1"] and loading.t is not None and loading.t_ms is not None
        info = resolved.params[2]
        for key in ("name", "full_name", "pro_name", "description", "exchange", "type", "currency_code",
                    "pricescale", "minmov", "timezone", "session", "has_intraday", "visible_plots_set"):
            assert key in info
        assert info["timezone"] == "America/New_York" and info["session"] == "0930-1600"
        series = update.params[1]["s1"]
        assert set(series) == {"node", "s", "ns", "t", "lbs"} and series["t"] == "s1"
        assert set(update.params[2]) == {"index", "zoffset", "changes", "marks", "index_diff"}
        assert len(series["s"]) == 300 and [b["i"] for b in series["s"]] == list(range(300))
        assert len(update.params[2]["changes"]) == 300
        assert completed.params == ["cs_test", "s1", "streaming", "s1", {"rt_update_period": 5}]
        # timescale_update and series_completed arrive packed in ONE WebSocket message.
        last = c.messages[-1]
        assert [f.method for f in decode_message(last)] == ["timescale_update", "series_timeframe", "series_completed"]
        # Bars: UTC open times as floats, 6 values, the last one in progress at sim time.
        v = series["s"][-1]["v"]
        assert len(v) == 6 and isinstance(v[0], float)
        expected = srv.market.history("NASDAQ:AAPL", Interval.M1, datetime.fromtimestamp(completed.t, UTC), 300)
        assert [b["v"][0] for b in series["s"]] == [b.time.timestamp() for b in expected]


@run
async def test_live_du_updates_then_new_bars():
    async with server(speed=30) as srv, RawClient(srv.url) as c:
        await c.recv()
        frames = await open_series(c, "1", 10)
        last_index = 9
        du = await c.until(lambda f: f.method == "du" and any(b["i"] == last_index + 1 for b in f.params[1]["s1"]["s"]), timeout=10)
        updates = [b for f in du if f.method == "du" for b in f.params[1]["s1"]["s"]]
        assert {b["i"] for b in updates} <= {last_index, last_index + 1}
        assert any(b["i"] == last_index for b in updates)  # the current bar was updated first
        # Live bars agree with the oracle once complete.
        closed = [b for b in updates if b["i"] == last_index][-1]["v"]
        bar = srv.market.bars_between("NASDAQ:AAPL", "1m", closed[0], closed[0] + 60)[0]
        assert closed == [bar.time.timestamp(), bar.open, bar.high, bar.low, bar.close, bar.volume]


@run
async def test_unknown_symbol_gets_symbol_error_and_series_error_and_no_series_completed():
    async with server() as srv, RawClient(srv.url) as c:
        await c.recv()
        await c.send("chart_create_session", "cs_x", "")
        await c.send("resolve_symbol", "cs_x", "symbol_1", '={"symbol":"NASDAQ:NOPE","adjustment":"splits"}')
        await c.send("create_series", "cs_x", "s1", "s1", "symbol_1", "1D", 100)
        frames = await c.until(method_is("series_error"))
        assert methods(frames) == ["series_loading", "symbol_error", "series_error"]
        assert frames[1].params == ["cs_x", "symbol_1", "invalid symbol"]
        assert frames[2].params[:4] == ["cs_x", "s1", "s1", "resolve error"]
        # Packed together, as in the 2025 capture.
        assert [f.method for f in decode_message(c.messages[-1])] == ["series_loading", "symbol_error", "series_error"]
        later = await c.collect(0.5)
        assert "series_completed" not in methods(later)
        real = real_frames("series_error")
        if real:
            assert len(decode_message(real[0])[0].params) == len(frames[2].params)


@run
async def test_bad_resolutions_and_timezone():
    async with server() as srv, RawClient(srv.url) as c:
        await c.recv()
        await c.send("chart_create_session", "cs_x", "")
        await c.send("resolve_symbol", "cs_x", "symbol_1", AAPL)
        for sid, res in [("s1", "XX"), ("s2", "15m"), ("s3", "20"), ("s4", "1S")]:
            await c.send("create_series", "cs_x", sid, "s1", "symbol_1", res, 10)
        await c.send("switch_timezone", "cs_x", "Nowhere/Nowhere")
        frames = await c.until(lambda f: f.method == "critical_error" and f.params[1] == "invalid timezone")
        crit = [f.params for f in frames if f.method == "critical_error"]
        assert crit[0] == ["cs_x", "invalid parameters", 'method: create_series. args: "[s1, s1, symbol_1, XX, 10]"']
        assert crit[1][2].startswith('method: create_series. args: "[s2, s1, symbol_1, 15m')
        assert crit[2] == ["cs_x", "invalid timezone", 'method: switch_timezone. args: "[Nowhere/Nowhere]"']
        errors = {f.params[1]: f.params[3] for f in frames if f.method == "series_error"}
        assert errors == {"s3": "custom_resolution", "s4": "seconds_not_entitled"}
        # A critical_error leaves the socket open: a good series still loads afterwards.
        await c.send("create_series", "cs_x", "s5", "s1", "symbol_1", "60", 5)
        done = await c.until(method_is("series_completed"))
        assert done[-1].params[1] == "s5"


@run
async def test_bad_auth_token_gets_protocol_error_and_close():
    async with server() as srv, RawClient(srv.url) as c:
        await c.recv()
        await c.send("set_auth_token", "expired.jwt.token")
        frames = await c.until(method_is("protocol_error"))
        assert frames[-1].params == ["bad auth token"]
        assert "~m~45~m~" + '{"m":"protocol_error","p":["bad auth token"]}' in c.messages  # byte-exact, as captured
        await c.collect(0.5)
        assert c.ws.close_code is not None


@run
async def test_good_tokens_get_no_reply():
    async with server(accepted_tokens=("good",)) as srv, RawClient(srv.url) as c:
        await c.recv()
        await c.send("set_auth_token", "unauthorized_user_token")
        await c.send("set_auth_token", "good")
        assert methods(await c.collect(0.4)) == []


@run
async def test_force_permission_flag_is_a_critical_error_and_adds_nothing():
    async with server() as srv, RawClient(srv.url) as c:
        await c.recv()
        await c.send("quote_create_session", "qs_x")
        await c.send("quote_add_symbols", "qs_x", "NASDAQ:AAPL", {"flags": ["force_permission"]})
        frames = await c.until(method_is("critical_error"))
        assert frames[-1].params == ["qs_x", "invalid_parameters", "quote_add_symbols"]
        assert "qsd" not in methods(await c.collect(0.4))  # nothing was added, socket still open
        await c.send("quote_add_symbols", "qs_x", "NASDAQ:AAPL")
        assert (await c.until(method_is("quote_completed")))[-1].params == ["qs_x", "NASDAQ:AAPL"]


@run
async def test_quotes_full_snapshot_then_only_changed_fields():
    async with server(speed=100) as srv, RawClient(srv.url) as c:
        await c.recv()
        await c.send("quote_create_session", "qs_x")
        await c.send("quote_add_symbols", "qs_x", "BINANCE:BTCUSDT", AAPL, "SP:SPX", "FOREX:EURUSD")
        first = await c.until(lambda f: f.method == "quote_completed" and f.params[1] == "SP:SPX")
        burst = decode_message(c.messages[-1])  # snapshots and quote_completed: one packed burst
        assert [f.method for f in burst[:4]] == ["qsd"] * 4 and "quote_completed" in [f.method for f in burst]
        errors = [f.params[1] for f in first if f.method == "qsd" and f.params[1]["s"] == "error"]
        assert errors == [{"n": "FOREX:EURUSD", "s": "error", "errmsg": "no_such_symbol", "v": {}}]
        snap = qsd_values(first, "BINANCE:BTCUSDT")[0]
        for key in ("lp", "lp_time", "volume", "bid", "ask", "ch", "chp", "prev_close_price", "open_price",
                    "high_price", "low_price", "description", "local_description", "exchange", "type",
                    "currency_code", "pricescale", "timezone", "update_mode", "current_session"):
            assert key in snap, key
        assert snap["current_session"] == "market" and snap["update_mode"] == "streaming"
        # n echoes exactly the subscribed string, descriptor included.
        assert qsd_values(first, AAPL)[0]["pro_name"] == "NASDAQ:AAPL"
        assert {f.params[1] for f in first if f.method == "quote_completed"} == {"BINANCE:BTCUSDT", AAPL, "SP:SPX"}
        seen = {"lp_time": snap["lp_time"]}

        def two_minutes_later(f) -> bool:  # ...and that tick's lp frame (lp_time may come first)
            if f.method != "qsd" or f.params[1]["n"] != "BINANCE:BTCUSDT":
                return False
            v = f.params[1]["v"]
            seen["lp_time"] = v.get("lp_time", seen["lp_time"])
            return "lp" in v and seen["lp_time"] >= snap["lp_time"] + 120

        later = await c.until(two_minutes_later)
        partial = qsd_values(later, "BINANCE:BTCUSDT")
        assert len(partial) >= 24  # 12 ticks: at least lp and book frames each
        assert all("description" not in v and "pricescale" not in v for v in partial)
        assert any(set(v) == {"lp_time"} for v in partial)            # lp_time alone
        assert any(set(v) <= {"bid", "ask", "bid_size", "ask_size"} for v in partial)  # book alone
        assert any("lp" in v and "volume" in v for v in partial)
        assert max(len(decode_message(m)) for m in c.messages[-10:]) > 1  # bursts are packed
        # Merged state tracks the market exactly: lp and cumulative volume of the last tick.
        state = dict(snap)
        for v in partial:
            state.update(v)
        tick = srv.market.ticks("BINANCE:BTCUSDT", state["lp_time"], state["lp_time"] + 1)[0]
        assert state["lp"] == tick.price and state["volume"] == tick.cumulative_volume


@run
async def test_index_quotes_have_no_volume_but_the_1e100_sentinel():
    async with server(speed=50) as srv, RawClient(srv.url) as c:
        await c.recv()
        await c.send("quote_create_session", "qs_x")
        await c.send("quote_add_symbols", "qs_x", "SP:SPX")
        frames = await c.until(method_is("quote_completed"))
        frames += await c.collect(1.5)
        volumes = [v["volume"] for v in qsd_values(frames, "SP:SPX") if "volume" in v]
        assert volumes and all(x == 1e100 for x in volumes)
        assert any("1e+100" in m for m in c.messages)  # written like the capture
        await c.send("chart_create_session", "cs_x", "")
        await c.send("resolve_symbol", "cs_x", "symbol_1", "SP:SPX")
        await c.send("create_series", "cs_x", "s1", "s1", "symbol_1", "1D", 10)
        frames = await c.until(method_is("series_completed"))
        resolved = next(f for f in frames if f.method == "symbol_resolved")
        assert resolved.params[2]["visible_plots_set"] == "ohlc"
        bars = next(f for f in frames if f.method == "timescale_update").params[1]["s1"]["s"]
        assert {len(b["v"]) for b in bars} == {5}


@run
async def test_non_ascii_text_is_sent_raw_with_utf16_length():
    async with server() as srv, RawClient(srv.url) as c:
        await c.recv()
        await c.send("quote_create_session", "qs_k")
        await c.send("quote_set_fields", "qs_k", "local_description", "lp")
        await c.send("quote_add_symbols", "qs_k", "KRX:005930")
        frames = await c.until(method_is("quote_completed"))
        snap = qsd_values(frames, "KRX:005930")[0]
        assert set(snap) == {"local_description", "lp"}  # quote_set_fields is honoured
        raw = next(m for m in c.messages if "삼성전자보통주" in m)  # raw UTF-8, not \\u escapes
        header = re.match(r"~m~(\d+)~m~", raw)
        payload_end = raw.index("~m~", header.end()) if "~m~" in raw[header.end():] else len(raw)
        payload = raw[header.end():payload_end]
        assert int(header.group(1)) == utf16_len(payload)
        assert int(header.group(1)) < len(payload.encode("utf-8"))  # not a byte count
        # Same structure as the captured Korean frame (LEN 99 = characters, 113 bytes).
        for real in real_frames("qsd"):
            if "삼성" in real:
                real_frame = decode_message(real, strict=True)[0]
                assert set(real_frame.params[1]) == set(next(f for f in frames if f.method == "qsd").params[1])


@run
async def test_depth_5000_then_request_more_data_until_data_completed_end():
    async with server() as srv, RawClient(srv.url) as c:
        await c.recv()
        frames = await open_series(c, "1", 4000)
        bars = next(f for f in frames if f.method == "timescale_update").params[1]["s1"]["s"]
        assert len(bars) == 4000
        oldest = bars[0]["v"][0]
        await c.send("request_more_data", "cs_test", "s1", 3000)
        more = await c.until(method_is("series_completed"))
        older = next(f for f in more if f.method == "timescale_update").params[1]["s1"]["s"]
        assert len(older) == 1000  # 5000 bars at most for the anonymous token
        assert older[-1]["v"][0] < oldest and [b["i"] for b in older] == list(range(1000))
        assert more[-1].params[4] == {"rt_update_period": 5, "data_completed": "end"}
        await c.send("resolve_symbol", "cs_test", "symbol_2", "BINANCE:BTCUSDT")
        await c.send("create_series", "cs_test", "s2", "s1", "symbol_2", "1", 10000)
        big = await c.until(method_is("series_completed"))
        assert len(next(f for f in big if f.method == "timescale_update").params[1]["s2"]["s"]) == 5000
        await c.send("request_more_data", "cs_test", "s2", 10)
        more = await c.until(method_is("series_completed"))
        assert next(f for f in more if f.method == "timescale_update").params[1]["s2"]["s"] == []
        assert more[-1].params[4]["data_completed"] == "end"


@run
async def test_request_more_data_stops_at_the_start_of_history():
    async with server() as srv, RawClient(srv.url) as c:
        await c.recv()
        frames = await open_series(c, "1M", 50)
        assert len(next(f for f in frames if f.method == "timescale_update").params[1]["s1"]["s"]) == 50
        assert "data_completed" not in frames[-1].params[4]
        await c.send("request_more_data", "cs_test", "s1", 500)
        more = await c.until(method_is("series_completed"))
        older = next(f for f in more if f.method == "timescale_update").params[1]["s1"]["s"]
        total = len(srv.market.history("NASDAQ:AAPL", "1M", START, 5000))
        assert len(older) == total - 50 < 500
        assert more[-1].params[4]["data_completed"] == "end"


@run
async def test_paid_token_gets_the_bigger_depth():
    async with server(paid_tokens=("paid",), paid_depth=6000) as srv, RawClient(srv.url) as c:
        await c.recv()
        await c.send("set_auth_token", "paid")
        await c.send("chart_create_session", "cs_p", "")
        await c.send("resolve_symbol", "cs_p", "symbol_1", "BINANCE:BTCUSDT")
        await c.send("create_series", "cs_p", "s1", "s1", "symbol_1", "5", 9000)
        frames = await c.until(method_is("series_completed"))
        assert len(next(f for f in frames if f.method == "timescale_update").params[1]["s1"]["s"]) == 6000


@run
async def test_delayed_symbol_reports_its_mode_and_lags():
    async with server(delays={"NASDAQ:AAPL": 900}) as srv, RawClient(srv.url) as c:
        await c.recv()
        frames = await open_series(c, "1", 5)
        resolved = next(f for f in frames if f.method == "symbol_resolved").params[2]
        assert resolved["delay"] == 900 and resolved["full_name"] == "NASDAQ_DLY:AAPL"
        assert frames[-1].params[2] == "delayed_streaming_900"
        last = next(f for f in frames if f.method == "timescale_update").params[1]["s1"]["s"][-1]["v"][0]
        assert last <= START.timestamp() - 900


@run
async def test_daily_aapl_bars_open_at_session_open_across_dst():
    async with server(sim_start=datetime(2026, 3, 14, tzinfo=UTC)) as srv, RawClient(srv.url) as c:
        await c.recv()
        frames = await open_series(c, "D", 10)
        times = [b["v"][0] for b in next(f for f in frames if f.method == "timescale_update").params[1]["s1"]["s"]]
        hours = [datetime.fromtimestamp(t, UTC).strftime("%m-%d %H:%M") for t in times]
        assert hours == ["03-02 14:30", "03-03 14:30", "03-04 14:30", "03-05 14:30", "03-06 14:30",
                         "03-09 13:30", "03-10 13:30", "03-11 13:30", "03-12 13:30", "03-13 13:30"]


@run
async def test_speed_makes_simulated_hours_pass_in_seconds():
    speed = 3600 * 2
    async with server(speed=speed) as srv, RawClient(srv.url) as c:
        await c.recv()
        wall0, sim0 = time.monotonic(), srv.clock.now_epoch()
        await c.send("quote_create_session", "qs_x")
        await c.send("quote_add_symbols", "qs_x", "BINANCE:BTCUSDT")
        first = await c.until(method_is("quote_completed"))
        t0 = qsd_values(first, "BINANCE:BTCUSDT")[0]["lp_time"]
        later = await c.until(lambda f: f.method == "qsd" and f.params[1]["v"].get("lp_time", 0) >= t0 + 3600, timeout=30)
        sim_elapsed, wall_elapsed = srv.clock.now_epoch() - sim0, time.monotonic() - wall0
        assert sim_elapsed >= 3600 and sim_elapsed >= 0.99 * speed * wall_elapsed
        times = [t0] + [v["lp_time"] for v in qsd_values(later, "BINANCE:BTCUSDT") if "lp_time" in v]
        assert all(b - a == 10 for a, b in zip(times, times[1:]))  # an hour of ticks, none skipped


@run
async def test_tvdatafeed_command_sequence_is_accepted_raw():
    # The exact sequence of both tvdatafeed wheels (§3.1), each command its own message.
    async with server() as srv, RawClient(srv.url) as c:
        await c.send("set_auth_token", "unauthorized_user_token")
        await c.send("chart_create_session", "cs_abcdefghijkl", "")
        await c.send("quote_create_session", "qs_abcdefghijkl")
        await c.send("quote_set_fields", "qs_abcdefghijkl", "ch", "chp", "current_session", "description",
                     "local_description", "language", "exchange", "fractional", "is_tradable", "lp", "lp_time",
                     "minmov", "minmove2", "original_name", "pricescale", "pro_name", "short_name", "type",
                     "update_mode", "volume", "currency_code", "rchp", "rtc")
        await c.send("quote_add_symbols", "qs_abcdefghijkl", "NASDAQ:AAPL", {"flags": ["force_permission"]})
        await c.send("quote_fast_symbols", "qs_abcdefghijkl", "NASDAQ:AAPL")
        await c.send("resolve_symbol", "cs_abcdefghijkl", "symbol_1", AAPL)
        await c.send("create_series", "cs_abcdefghijkl", "s1", "s1", "symbol_1", "1H", 100)
        await c.send("switch_timezone", "cs_abcdefghijkl", "exchange")
        frames = await c.until(method_is("series_completed"))
        assert methods(frames)[:3] == ["critical_error", "series_loading", "symbol_resolved"]
        bars = next(f for f in frames if f.method == "timescale_update").params[1]["s1"]["s"]
        assert len(bars) == 100
        assert srv.stats.commands["quote_add_symbols"] == 1 and srv.stats.commands["switch_timezone"] == 1


def test_real_tvdatafeed_gets_its_bars_from_the_simulator(monkeypatch):
    """tvdatafeed 2.1.1 itself (regex parser and all) against the simulator: only the hard-coded
    wss://data.tradingview.com URL is redirected."""
    import pytest

    import tvDatafeed.main as main
    from tradingview_simulator import run_simulator_in_thread

    with run_simulator_in_thread(sim_start=START) as srv:
        real_connect = main.create_connection
        monkeypatch.setattr(main, "create_connection", lambda url, **kw: real_connect(srv.url, **kw))
        tv = main.TvDatafeed()
        frame = tv.get_hist("AAPL", "NASDAQ", interval=main.Interval.in_daily, n_bars=20)
        assert frame is not None and len(frame) == 20
        expected = srv.market.history("NASDAQ:AAPL", "1d", START, 20)
        assert frame["close"].tolist() == [b.close for b in expected]
        assert frame["volume"].tolist() == [b.volume for b in expected]
        spx = tv.get_hist("SPX", "SP", interval=main.Interval.in_1_hour, n_bars=7)
        assert len(spx) == 7 and (spx["volume"] == 0.0).all()  # 5-element bars: tvdatafeed fills 0


@run
async def test_modify_and_remove_series_and_delete_chart_session():
    async with server(speed=30) as srv, RawClient(srv.url) as c:
        await c.recv()
        await open_series(c, "1", 20)
        await c.send("modify_series", "cs_test", "s1", "s2", "symbol_1", "5", "")
        frames = await c.until(method_is("series_completed"))
        assert [m for m in methods(frames) if m != "du"] == ["series_loading", "timescale_update", "series_timeframe",
                                                             "series_completed"]
        update = next(f for f in frames if f.method == "timescale_update").params[1]["s1"]
        times = [b["v"][0] for b in update["s"]]
        assert len(times) == 20 and update["t"] == "s2" and all(b - a >= 300 for a, b in zip(times, times[1:]))
        assert frames[-1].params[3] == "s2"  # the new turnaround id
        await c.send("remove_series", "cs_test", "s1")
        await c.sync()
        assert not [f for f in await c.collect(1.0) if f.method == "du"]
        await c.send("chart_delete_session", "cs_test")
        await c.send("create_series", "cs_test", "s9", "s1", "symbol_1", "1", 5)
        frames = await c.until(method_is("protocol_error"))  # unknown session: protocol_error, then close
        assert "unknown_session_id" in frames[-1].params[0]


@run
async def test_quote_remove_fast_and_hibernate():
    async with server(speed=30) as srv, RawClient(srv.url) as c:
        await c.recv()
        await c.send("quote_create_session", "qs_h")
        await c.send("quote_add_symbols", "qs_h", "BINANCE:BTCUSDT", "NASDAQ:AAPL")
        await c.until(lambda f: f.method == "quote_completed" and f.params[1] == "NASDAQ:AAPL")
        await c.send("quote_fast_symbols", "qs_h", "BINANCE:BTCUSDT")
        await c.send("quote_hibernate_all", "qs_h")
        await c.sync()
        frames = await c.until(lambda f: f.method == "qsd" and f.params[1]["n"] == "BINANCE:BTCUSDT"
                               and "lp" in f.params[1]["v"])
        frames += await c.collect(1.0)
        names = {f.params[1]["n"] for f in frames if f.method == "qsd"}
        assert names == {"BINANCE:BTCUSDT"}  # hibernated symbols wait; fast symbols stream
        await c.send("quote_remove_symbols", "qs_h", "BINANCE:BTCUSDT")
        await c.sync()
        assert not [f for f in await c.collect(1.0) if f.method == "qsd"]


def rebuild_ticks(snapshot: dict, updates: list[dict]) -> list[tuple[int, float, float | None]]:
    """A client's tick builder (§4.4): merge fields; a change of lp or volume is a tick, its
    volume the cumulative difference (a drop means a new session), its time the lp_time."""
    state = dict(snapshot)
    ticks = []
    for v in updates:
        price_changed = "lp" in v and v["lp"] != state.get("lp")
        volume = v.get("volume")
        has_volume = volume is not None and volume < 1e99
        volume_changed = has_volume and volume != state.get("volume")
        if price_changed or volume_changed:
            delta = None
            if has_volume:
                delta = volume - state["volume"] if volume >= state["volume"] else volume
            ticks.append((v.get("lp_time", state["lp_time"]), v.get("lp", state["lp"]), delta))
        state.update({k: x for k, x in v.items() if not (k == "volume" and x >= 1e99)})
    return ticks


def check_replay(srv, frames, symbol) -> list:
    values = qsd_values(frames, symbol)
    snapshot, updates = values[0], values[1:]
    ticks = rebuild_ticks(snapshot, updates)
    assert ticks, symbol
    expected = srv.market.ticks(symbol, snapshot["lp_time"] + 1, ticks[-1][0] + 1)
    assert [(int(t.time.timestamp()), t.price, t.volume) for t in expected] == ticks, symbol
    return updates


@run
async def test_quote_stream_replays_every_tick_across_midnight():
    async with server(sim_start=datetime(2026, 3, 10, 23, 59, tzinfo=UTC), speed=120) as srv, RawClient(srv.url) as c:
        await c.recv()
        await c.send("quote_create_session", "qs_t")
        await c.send("quote_add_symbols", "qs_t", "BINANCE:BTCUSDT")
        frames = await c.until(method_is("quote_completed"))
        frames += await c.until(lambda f: f.method == "qsd" and f.params[1]["v"].get("lp_time", 0) >= 1773187260)
        updates = check_replay(srv, frames, "BINANCE:BTCUSDT")
        assert any(v.get("open_time") == 1773187200 for v in updates)  # the new daily session


@run
async def test_quote_stream_replays_every_tick_across_the_weekend():
    friday = datetime(2026, 3, 13, 19, 59, tzinfo=UTC)  # 15:59 New York, a minute before the close
    async with server(sim_start=friday, speed=60) as srv, RawClient(srv.url) as c:
        await c.recv()
        await c.send("quote_create_session", "qs_t")
        await c.send("quote_add_symbols", "qs_t", "NASDAQ:AAPL", "SP:SPX")
        frames = await c.until(lambda f: f.method == "quote_completed" and f.params[1] == "SP:SPX")
        frames += await c.until(lambda f: f.method == "qsd" and f.params[1]["n"] == "SP:SPX"
                                and f.params[1]["v"].get("current_session") == "out_of_session")
        srv.clock.jump(datetime(2026, 3, 16, 13, 29, 50, tzinfo=UTC).timestamp() - srv.clock.now_epoch())
        frames += await c.until(lambda f: f.method == "qsd" and f.params[1]["n"] == "SP:SPX"
                                and f.params[1]["v"].get("lp_time", 0) >= 1773667830)
        for symbol in ("NASDAQ:AAPL", "SP:SPX"):
            updates = check_replay(srv, frames, symbol)
            sessions = [v["current_session"] for v in updates if "current_session" in v]
            assert sessions == ["out_of_session", "market"], symbol  # Friday's close, Monday's open
        aapl = [v for v in qsd_values(frames, "NASDAQ:AAPL") if "volume" in v]
        assert aapl[-1]["volume"] < aapl[0]["volume"]  # Monday's cumulative volume restarted


def test_bad_server_settings_name_the_bad_value():
    import pytest

    from pocketquant_pipelines.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="FOO:BAR"):
        SimulatorServer(delays={"FOO:BAR": 900})
    with pytest.raises(InvalidInputError, match="speed"):
        SimulatorServer(speed=0)
    with pytest.raises(InvalidInputError, match="heartbeat_s"):
        SimulatorServer(heartbeat_s=-1)


@run
async def test_request_more_tickmarks_gets_future_marks_with_empty_series():
    async with server() as srv, RawClient(srv.url) as c:
        await c.recv()
        frames = await open_series(c, "D", 30)
        last = next(f for f in frames if f.method == "timescale_update").params[1]["s1"]["s"][-1]
        await c.send("request_more_tickmarks", "cs_test", "s1", 10)
        update = (await c.until(method_is("timescale_update")))[-1]
        assert update.params[1] == {}  # p[1] carries no series, as in the 2019 capture
        marks = update.params[2]
        assert marks["index"] == last["i"] + 1 and len(marks["changes"]) == 10
        days = [datetime.fromtimestamp(t, UTC) for t in marks["changes"]]
        assert days[0] > datetime.fromtimestamp(last["v"][0], UTC)
        assert all(d.weekday() < 5 and d.strftime("%H:%M") in ("13:30", "14:30") for d in days)


@run
async def test_optional_empty_first_timescale_update():
    async with server(empty_first_update=True) as srv, RawClient(srv.url) as c:
        await c.recv()
        frames = await open_series(c, "60", 50)
        updates = [f for f in frames if f.method == "timescale_update"]
        assert [len(u.params[1]["s1"]["s"]) for u in updates] == [0, 50]


def test_our_client_copes_with_the_empty_first_update():
    import pytest

    from pocketquant_pipelines.tradingview import client
    from tradingview_simulator import run_simulator_in_thread

    with run_simulator_in_thread(sim_start=START, empty_first_update=True, resolve_delay_s=0.0) as srv:
        result = client.fetch_history_sync("NASDAQ:AAPL", "1h", 120, url=srv.url)
        truth = srv.market.history("NASDAQ:AAPL", "1h", START, 120)
        assert [b.time for b in result.bars] == [b.time for b in truth]
        assert result.bars[:-1] == truth[:-1]
