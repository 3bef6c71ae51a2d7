"""The simulator's frames have the SHAPES of captured real frames (shared/tradingview-frames.jsonl),
and captured real client frames are served."""

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path


from pocketquant_pipelines.tradingview.codec import Frame, decode_message
from tradingview_simulator import DEFAULT_SYMBOLS, SimulatorServer

from tests.simulator.rawclient import RawClient, method_is, run

# A copy of shared/tradingview-frames.jsonl kept in the repo, so a fresh clone has it.
FRAMES = Path(__file__).resolve().parents[1] / "tradingview" / "data" / "tradingview-frames.jsonl"
START = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)



def captured() -> list[dict]:
    return [json.loads(line) for line in FRAMES.read_text().splitlines()]


def real(tag: str, direction: str = "server", contains: str = "") -> Frame:
    for item in captured():
        if item["direction"] == direction and item["note"].startswith(f"[{tag}") and item["raw"].startswith("~m~") \
                and contains in item["raw"]:
            return decode_message(item["raw"], strict=True)[0]
    raise LookupError(tag)


def shape(value, depth: int = 0):
    """A structural signature: dict keys and value kinds, list element shape, scalar kinds."""
    if isinstance(value, dict):
        return {k: shape(v, depth + 1) for k, v in sorted(value.items())} if depth < 3 else "dict"
    if isinstance(value, list):
        return ["list", shape(value[0], depth + 1) if value else "empty"] if depth < 3 else "list"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def frame_shape(f: Frame) -> dict:
    out = {"m": f.method, "p": [shape(p) for p in f.params]}
    out["t"] = f.t is not None
    return out


@run
async def test_series_frames_have_the_captured_shapes():
    async with SimulatorServer(sim_start=START) as srv, RawClient(srv.url) as c:
        await c.recv()
        await c.send("chart_create_session", "cs_x", "")
        await c.send("resolve_symbol", "cs_x", "sds_sym_7", "SP:SPX")
        await c.send("create_series", "cs_x", "sds_7", "s1", "sds_sym_7", "1D", 300)
        frames = {f.method: f for f in await c.until(method_is("series_completed"))}
        await c.send("resolve_symbol", "cs_x", "symbol_1", "NASDAQ:NOPE")
        await c.send("create_series", "cs_x", "s1", "s1", "symbol_1", "1D", 300)
        frames.update({f.method: f for f in await c.until(method_is("series_error"))})
        await c.send("create_series", "cs_x", "sds_1", "s1", "sds_sym_7", "s1", 1)
        frames.update({f.method: f for f in await c.until(method_is("critical_error"))})

    assert frame_shape(frames["series_loading"]) == frame_shape(real("series_loading", contains='"t_ms"'))
    assert frame_shape(frames["series_completed"]) == frame_shape(real("series_completed"))
    assert frame_shape(frames["symbol_error"]) == frame_shape(real("symbol_error"))
    assert frame_shape(frames["series_error"]) == frame_shape(real("series_error"))
    # critical_error: same params; the simulator adds t/t_ms like every 2023+ error frame.
    assert frame_shape(frames["critical_error"])["p"] == frame_shape(real("critical_error", contains="create_series"))["p"]
    # Daily SP:SPX history, as in the capture: same series body and time-scale element.
    mine, theirs = frames["timescale_update"], real("timescale_update", contains="sds_7")
    assert frame_shape(mine) == frame_shape(theirs)
    # Real SPX bars carried 6 values in that capture; the simulator's SPX is volume-less (5),
    # like NDX, DXY, RUT in the same capture (§3.4 "Missing volume").
    # symbol_resolved: every field the simulator sends exists in the real SP:SPX info.
    info, real_info = frames["symbol_resolved"].params[2], real("symbol_resolved", contains="SP:SPX").params[2]
    extra = set(info) - set(real_info) - {"source2", "source_id", "measure", "local_description"}
    assert not extra, extra
    for key in ("timezone", "session", "visible_plots_set", "type", "pricescale", "minmov", "has_intraday"):
        assert type(info[key]) is type(real_info[key]), key


@run
async def test_quote_frames_have_the_captured_shapes():
    async with SimulatorServer(sim_start=START, speed=30) as srv, RawClient(srv.url) as c:
        await c.recv()
        await c.send("quote_create_session", "qs_PL4Mnuk8pRGP")
        await c.send("quote_add_symbols", "qs_PL4Mnuk8pRGP", "NASDAQ:AAPL")
        frames = await c.until(method_is("quote_completed"))
        snapshot = next(f for f in frames if f.method == "qsd")
        assert frame_shape(frames[-1]) == frame_shape(real("quote_completed"))
        real_snapshot = real("qsd", contains="NASDAQ:AAPL")
        assert shape(snapshot.params[0]) == shape(real_snapshot.params[0])
        assert set(snapshot.params[1]) == set(real_snapshot.params[1]) == {"n", "s", "v"}
        missing = set(real_snapshot.params[1]["v"]) - set(snapshot.params[1]["v"]) - {"logoid"}
        assert not missing, missing  # every field of the real AAPL snapshot is there
        for key, value in real_snapshot.params[1]["v"].items():
            if key in snapshot.params[1]["v"]:
                assert shape(snapshot.params[1]["v"][key]) == shape(value), key


@run
async def test_du_frames_have_the_captured_shape():
    async with SimulatorServer(sim_start=START, speed=30, pump_interval_s=0.05) as srv, RawClient(srv.url) as c:
        await c.recv()
        await c.send("chart_create_session", "cs_saydeutqehrd", "")
        await c.send("resolve_symbol", "cs_saydeutqehrd", "symbol_1", "BINANCE:BTCUSDT")
        await c.send("create_series", "cs_saydeutqehrd", "s1", "s1", "symbol_1", "1", 300)
        du = (await c.until(method_is("du")))[-1]
        assert frame_shape(du) == frame_shape(real("du series bar update", contains="lbs"))


@run
async def test_captured_browser_and_tvdatafeed_client_frames_are_served():
    # The 2019 browser's own frames for BITSTAMP:BTCUSD, replayed byte for byte.
    bitstamp = replace(DEFAULT_SYMBOLS[0], symbol="BITSTAMP:BTCUSD", description="Bitcoin / Dollar",
                       exchange_name="Bitstamp")
    client = {item["note"].split("]")[0][1:]: item["raw"] for item in captured()
              if item["direction"] == "client" and "cs_xkd21F2c6xIU" in item["raw"] or
              item["direction"] == "client" and item["raw"].startswith("~m~54~m~")}
    async with SimulatorServer(sim_start=START, symbols=(*DEFAULT_SYMBOLS, bitstamp)) as srv, RawClient(srv.url) as c:
        await c.recv()
        for tag in ("client set_auth_token", "client chart_create_session", "client switch_timezone",
                    "client resolve_symbol", "client create_series"):
            await c.send_raw(client[tag])
        frames = await c.until(method_is("series_completed"))
        update = next(f for f in frames if f.method == "timescale_update")
        bars = update.params[1]["s1"]["s"]
        assert len(bars) == 300 and all(b - a == 900 for a, b in zip(
            [x["v"][0] for x in bars], [x["v"][0] for x in bars][1:]))  # "15" = 15-minute bars
        assert frames[-1].params[:4] == ["cs_xkd21F2c6xIU", "s1", "streaming", "s1"]
