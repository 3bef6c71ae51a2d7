"""How fast the simulator serves history: 5000 bars per (symbol, interval), cold and warm,
through the oracle and end to end over a real socket.

    .venv/bin/python bench/simulator.py                  # every default symbol x 13 intervals
    .venv/bin/python bench/simulator.py --symbols BINANCE:BTCUSDT --markdown

* cold    first request in a fresh SyntheticMarket (ticks generated, bars aggregated)
* warm    the same request again (per-day bars and daily summaries cached)
* warmed-up  first request after SyntheticMarket.warm_up() (what the CLI does at start):
          15m..1M come from precomputed daily summaries and 15-minute blocks
* socket  create_series -> series_completed over a WebSocket on a warm server (JSON included):
          the first request for that (symbol, interval), so the frame is encoded from scratch
* socket again  the same request on a new connection: the server reuses the bars' cached JSON
          fragments (simulator/history_text.py), as a real server serves encoded history

Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from websockets.asyncio.client import connect  # noqa: E402

from pocketquant_pipelines.market.intervals import ALL_INTERVALS  # noqa: E402
from pocketquant_pipelines.tradingview.codec import decode_message, encode_frame  # noqa: E402
from tradingview_simulator import SimulatorServer, SyntheticMarket  # noqa: E402

NOW = datetime(2026, 3, 20, 18, 0, tzinfo=UTC)


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t) * 1000, out


async def socket_ms(server: SimulatorServer, symbol: str, resolution: str, count: int) -> float:
    async with connect(server.url, max_size=None) as ws:
        await ws.recv()
        for m, p in [("chart_create_session", ["cs_b", ""]), ("resolve_symbol", ["cs_b", "sym", symbol])]:
            await ws.send(encode_frame({"m": m, "p": p}))
        t = time.perf_counter()
        await ws.send(encode_frame({"m": "create_series", "p": ["cs_b", "s1", "s1", "sym", resolution, count]}))
        while True:
            frames = decode_message(await ws.recv())
            if any(f.method == "series_completed" for f in frames):
                return (time.perf_counter() - t) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", nargs="*", default=None)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    cold_market = SyntheticMarket()
    symbols = args.symbols or cold_market.symbols
    rows = []

    async def run_sockets() -> dict:
        out = {}
        async with SimulatorServer(sim_start=NOW, resolve_delay_s=0.0) as server:
            for symbol in symbols:
                for interval in ALL_INTERVALS:
                    server.market.history(symbol, interval, NOW, args.count)  # warm the cache
                    first = await socket_ms(server, symbol, interval.tv_resolution, args.count)
                    again = await socket_ms(server, symbol, interval.tv_resolution, args.count)
                    out[symbol, interval] = first, again
        return out

    warmed_market = SyntheticMarket()
    for symbol in symbols:
        warmed_market.warm_up(symbol, NOW)
        for interval in ALL_INTERVALS:
            cold, bars = timed(lambda: cold_market.history(symbol, interval, NOW, args.count))
            warm, _ = timed(lambda: cold_market.history(symbol, interval, NOW, args.count))
            warmed, _ = timed(lambda: warmed_market.history(symbol, interval, NOW, args.count))
            rows.append([symbol, interval.value, len(bars), cold, warm, warmed])
    sockets = asyncio.run(run_sockets())
    header = ["symbol", "interval", "bars", "cold ms", "warm ms", "warmed-up ms", "socket ms", "socket again ms"]
    print(f"# python {platform.python_version()} on {platform.machine()}, {args.count} bars requested")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    else:
        print("".join(h.ljust(18 if i == 0 else 13) for i, h in enumerate(header)))
    for symbol, interval, n, cold, warm, warmed in rows:
        first, again = sockets[symbol, next(i for i in ALL_INTERVALS if i.value == interval)]
        cells = [symbol, interval, str(n), *(f"{ms:.0f}" for ms in (cold, warm, warmed, first, again))]
        if args.markdown:
            print("| " + " | ".join(cells) + " |")
        else:
            print("".join(c.ljust(18 if i == 0 else 13) for i, c in enumerate(cells)))


if __name__ == "__main__":
    main()
