"""History benchmark: our asyncio client vs tvdatafeed 2.1.1, same simulator, same data.

    .venv/bin/python bench/history.py                       # 5000 1-minute bars, best of 10
    .venv/bin/python bench/history.py --bars 5000 --symbol BINANCE:BTCUSDT --rounds 5

What it does:

1. Starts the protocol simulator as a subprocess (``pocketquant simulate``) on a free port, so the
   server's CPU does not share the GIL with the clients being measured.
2. Fetches N bars of one symbol with
   * ``ours (cold)``: ``fetch_history_sync`` (new client + socket per call, like tvdatafeed),
   * ``ours (warm)``: ``BlockingTradingViewClient`` (socket kept open between calls),
   * ``tvdatafeed``: ``TvDatafeed().get_hist`` (new socket per call; it hardcodes
     ``wss://data.tradingview.com``, so this script, and only this script, replaces the
     ``create_connection`` it imported with one that dials the simulator).
   and prints wall time (best of the rounds), bars/s and the speed-up.
3. Checks both returned the same bars. tvdatafeed builds its index with
   ``datetime.fromtimestamp(ts)``: naive *local* time. We run with ``TZ=UTC`` so that local time is
   UTC, then localize the index to UTC (without that, DST hours would be ambiguous). The last bar
   may still be forming between the two fetches, so it is left out of the comparison.
4. Micro-benchmark: decoding the captured ``timescale_update`` message (the codec plus the bar
   rows), in bars per second; and the same plus validation into ``Bar`` objects.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import statistics
import time
from pathlib import Path

os.environ["TZ"] = "UTC"  # tvdatafeed reads timestamps as local time; make local time UTC
time.tzset()

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pocketquant_pipelines.market.intervals import Interval  # noqa: E402
from pocketquant_pipelines.tradingview.client import (  # noqa: E402
    BlockingTradingViewClient,
    fetch_history_sync,
)
from pocketquant_pipelines.tradingview.codec import decode_message, encode_message  # noqa: E402
from pocketquant_pipelines.tradingview.history import (  # noqa: E402
    rows_to_bars,
    rows_to_columns,
    series_rows,
    symbol_descriptor,
)

TVDF_INTERVALS = {
    "1m": "in_1_minute", "3m": "in_3_minute", "5m": "in_5_minute", "15m": "in_15_minute",
    "30m": "in_30_minute", "45m": "in_45_minute", "1h": "in_1_hour", "2h": "in_2_hour",
    "3h": "in_3_hour", "4h": "in_4_hour", "1d": "in_daily", "1w": "in_weekly", "1M": "in_monthly",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_simulator(seed: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pocketquant_pipelines", "simulate", "--host", "127.0.0.1",
         "--port", str(port), "--seed", str(seed)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"simulator exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"ws://127.0.0.1:{port}/socket.io/websocket"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("simulator did not start within 30 s")


MEDIANS: dict[int, float] = {}  # id(fn) -> median of its last best_of run


def best_of(rounds: int, fn, clock=time.perf_counter):
    times, result = [], None
    for _ in range(rounds):
        t0 = clock()
        result = fn()
        times.append(clock() - t0)
    MEDIANS[id(fn)] = statistics.median(times)
    return min(times), result


def best_and_median(rounds: int, fn):
    """(best, median, result): the median shows what a typical call costs, spikes included
    (garbage collections, scheduler noise), which the best hides."""
    best, result = best_of(rounds, fn)
    return best, MEDIANS[id(fn)], result


def tvdatafeed_fetcher(url: str, symbol: str, interval: str, bars: int):
    import websocket
    from tvDatafeed import Interval as TvInterval
    from tvDatafeed import TvDatafeed
    from tvDatafeed import main as tvmain

    def dial_simulator(_hardcoded_url, **kwargs):
        return websocket.create_connection(url, **kwargs)

    tvmain.create_connection = dial_simulator  # bench-only redirect of the hardcoded wss URL
    exchange, code = symbol.split(":")
    tv_interval = getattr(TvInterval, TVDF_INTERVALS[interval])

    def fetch():
        return TvDatafeed().get_hist(symbol=code, exchange=exchange, interval=tv_interval, n_bars=bars)

    return fetch


class RawFloor:
    """The same request on a bare socket that parses nothing: how long the server itself takes
    (generate, encode, send). Wall time minus this floor is the client's own cost."""

    def __init__(self, url: str, symbol: str, interval: str, bars: int):
        self.url, self.symbol, self.bars = url, symbol, bars
        self.resolution = Interval.parse(interval).tv_resolution
        self.ws = None
        self.n = 0

    def _connect(self):
        from websockets.sync.client import connect

        ws = connect(self.url, max_size=None, origin="https://www.tradingview.com", proxy=None, compression=None).__enter__()
        ws.send(encode_message("set_auth_token", ["unauthorized_user_token"]))
        return ws

    def fetch(self, ws) -> None:
        self.n += 1
        cs = f"cs_floor{self.n:05d}"
        for method, params in [
            ("chart_create_session", [cs, ""]),
            ("resolve_symbol", [cs, "sds_sym_1", symbol_descriptor(self.symbol)]),
            ("create_series", [cs, "sds_1", "s1", "sds_sym_1", self.resolution, self.bars]),
        ]:
            ws.send(encode_message(method, params))
        while True:
            message = ws.recv(timeout=30)
            if '"series_completed"' in message and cs in message:
                break
            if message.startswith("~m~4~m~~h~") or message.startswith("~m~5~m~~h~"):
                ws.send(message)
        ws.send(encode_message("chart_delete_session", [cs]))

    def cold(self) -> None:
        ws = self._connect()
        try:
            self.fetch(ws)
        finally:
            ws.close()

    def warm(self) -> None:
        if self.ws is None:
            self.ws = self._connect()
        self.fetch(self.ws)

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()


def capture_timescale_message(url: str, symbol: str, interval: str, bars: int) -> str:
    """The raw WebSocket message carrying the history, as the simulator sends it."""
    from websockets.sync.client import connect

    with connect(url, max_size=None, origin="https://www.tradingview.com", proxy=None) as ws:
        for method, params in [
            ("set_auth_token", ["unauthorized_user_token"]),
            ("chart_create_session", ["cs_bench", ""]),
            ("resolve_symbol", ["cs_bench", "sds_sym_1", symbol_descriptor(symbol)]),
            ("create_series", ["cs_bench", "sds_1", "s1", "sds_sym_1", Interval.parse(interval).tv_resolution, bars]),
        ]:
            ws.send(encode_message(method, params))
        while True:
            message = ws.recv(timeout=30)
            if '"timescale_update"' in message and '"sds_1"' in message:
                return message


def decode_bench(message: str, symbol: str, interval: Interval, rounds: int = 20) -> dict[str, float]:
    """Bars/s of the client's decode stages on one captured message (wall and CPU time)."""
    def rows():
        for frame in decode_message(message):
            if frame.method == "timescale_update" and "sds_1" in frame.params[1]:
                return series_rows(frame.params[1]["sds_1"])
        raise SystemExit("no timescale_update in the captured message")

    n = len(rows())
    out = {"bars": n}
    for name, fn in (("rows", rows),
                     ("columns", lambda: rows_to_columns(symbol, interval, rows())),
                     ("bar objects", lambda: rows_to_bars(symbol, interval, rows()))):
        t_wall, _ = best_of(rounds, fn)
        # CPU time of this process: less distorted than wall time when other jobs share the CPUs
        t_cpu, _ = best_of(rounds, fn, clock=time.process_time)
        out[name] = n / t_wall
        out[name + " cpu"] = n / max(t_cpu, 1e-9)
    return out


def parse_bench(message: str, symbol: str, interval: Interval, rounds: int = 5) -> tuple[float, float]:
    """Client-side parsing only, same captured message, into a DataFrame each: ours (frames ->
    validated columns -> DataFrame) vs tvdatafeed's own parser (regex over the raw text ->
    DataFrame; a private static method)."""
    from tvDatafeed import TvDatafeed

    tv_parse = TvDatafeed._TvDatafeed__create_df

    def ours():
        for frame in decode_message(message):
            if frame.method == "timescale_update" and "sds_1" in frame.params[1]:
                return rows_to_columns(symbol, interval, series_rows(frame.params[1]["sds_1"]))[0].to_frame()

    t_ours, frame = best_of(rounds, ours)
    t_tv, df = best_of(rounds, lambda: tv_parse(message + "\n", symbol))
    return len(frame) / t_ours, len(df) / t_tv


def unknown_symbol_latency(url: str, tv_fetch_unknown) -> tuple[float, float]:
    from pocketquant_pipelines.tradingview.errors import SymbolNotFoundError

    t0 = time.perf_counter()
    try:
        fetch_history_sync("BINANCE:NOPE", "1d", 10, url=url)
    except SymbolNotFoundError:
        pass
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    tv_fetch_unknown()  # waits for series_completed until its 5 s recv timeout, returns None
    return ours, time.perf_counter() - t0


def with_frame(result):
    return result, result.frame


def compare(ours, df) -> str:
    import pandas as pd

    index = pd.DatetimeIndex(df.index).tz_localize("UTC")  # naive local time, and local time is UTC here
    theirs = {
        ts.to_pydatetime(): (row.open, row.high, row.low, row.close, row.volume)
        for ts, row in zip(index, df.itertuples(), strict=True)
    }
    mine = {b.time: (b.open, b.high, b.low, b.close, 0.0 if b.volume is None else b.volume) for b in ours.bars}
    common_last = min(max(theirs), max(mine))
    t_keys = sorted(t for t in theirs if t < common_last)
    m_keys = sorted(t for t in mine if t < common_last)
    if t_keys != m_keys:
        return f"DIFFERENT bar times: ours {len(m_keys)}, tvdatafeed {len(t_keys)}"
    bad = [t for t in t_keys if theirs[t] != mine[t]]
    if bad:
        return f"DIFFERENT values at {len(bad)} bars, first {bad[0].isoformat()}: {mine[bad[0]]} vs {theirs[bad[0]]}"
    return f"identical ({len(t_keys)} bars compared; the still-forming last bar left out)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbol", default="BINANCE:BTCUSDT")
    parser.add_argument("--interval", default="1m")
    parser.add_argument("--bars", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--ws-url", default=None, help="use a running simulator instead of starting one")
    args = parser.parse_args()

    from pocketquant_pipelines.logging import configure_logging

    configure_logging("console", "ERROR")
    proc = None
    url = args.ws_url
    if url is None:
        proc, url = start_simulator(args.seed)
    try:
        interval = Interval.parse(args.interval)
        fetch_history_sync(args.symbol, interval, args.bars, url=url)  # warm the simulator's caches
        # Both sides end with a DataFrame of the bars (tvdatafeed's return type; ours is the
        # validated columns' .frame), so neither is timed without its result in a usable form.
        t_cold, m_cold, (ours, _) = best_and_median(args.rounds, lambda: with_frame(
            fetch_history_sync(args.symbol, interval, args.bars, url=url)))
        with BlockingTradingViewClient(url=url) as tv:
            tv.fetch_history(args.symbol, interval, args.bars)
            t_warm, m_warm, _ = best_and_median(
                args.rounds, lambda: with_frame(tv.fetch_history(args.symbol, interval, args.bars)))
        tv_fetch = tvdatafeed_fetcher(url, args.symbol, args.interval, args.bars)
        t_tv, m_tv, df = best_and_median(args.rounds, tv_fetch)
        same = compare(ours, df) if df is not None else "tvdatafeed returned nothing"
        floor = RawFloor(url, args.symbol, args.interval, args.bars)
        floor.warm()
        t_floor_cold, m_floor_cold, _ = best_and_median(args.rounds, floor.cold)
        t_floor_warm, m_floor_warm, _ = best_and_median(args.rounds, floor.warm)
        floor.close()

        n = len(ours.bars)
        print(f"history: {args.symbol} {interval}, {args.bars} bars requested, best of {args.rounds}, simulator {url}")
        print(f"{'client':<22} {'bars':>6} {'wall ms':>9} {'bars/s':>11} {'vs tvdatafeed':>14} {'client ms':>10}"
              f" {'median ms':>10} {'vs tvdf (median)':>17}")
        rows = [("ours (cold)", n, t_cold, t_floor_cold, m_cold), ("ours (warm)", n, t_warm, t_floor_warm, m_warm),
                ("tvdatafeed (cold)", 0 if df is None else len(df), t_tv, t_floor_cold, m_tv),
                ("raw socket floor (cold)", n, t_floor_cold, t_floor_cold, m_floor_cold),
                ("raw socket floor (warm)", n, t_floor_warm, t_floor_warm, m_floor_warm)]
        for name, count, seconds, base, median in rows:
            own = "" if seconds is base else f"{(seconds - base) * 1e3:>10.1f}"
            print(f"{name:<22} {count:>6} {seconds * 1e3:>9.1f} {count / seconds:>11,.0f} "
                  f"{t_tv / seconds:>13.1f}x {own:>10} {median * 1e3:>10.1f} {m_tv / median:>16.1f}x")
        print("client ms = wall time minus the raw-socket floor of the same kind (server time excluded)")
        print(f"client-side cost: tvdatafeed {(t_tv - t_floor_cold) * 1e3:.0f} ms vs ours "
              f"{(t_cold - t_floor_cold) * 1e3:.0f} ms cold: "
              f"{(t_tv - t_floor_cold) / max(t_cold - t_floor_cold, 1e-9):.1f}x")
        print(f"same data: {same}")

        # a batch, as a sync job runs it: 8 series of N bars; ours concurrently over the pool
        # (2 sockets, 4 in flight), tvdatafeed one blocking socket after another
        batch = [(args.symbol, iv, args.bars) for iv in ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h")]
        with BlockingTradingViewClient(url=url) as tv:
            t_batch, results = best_of(max(1, args.rounds // 2), lambda: tv.fetch_many(batch))
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise SystemExit(f"batch failed: {failures[0]!r}")
        t_tv_batch, frames = best_of(max(1, args.rounds // 2), lambda: [
            tvdatafeed_fetcher(url, s, iv, n)() for s, iv, n in batch])
        got = sum(len(r.bars) for r in results)
        got_tv = sum(0 if f is None else len(f) for f in frames)
        print(f"batch of {len(batch)} x {args.bars} bars: ours {t_batch * 1e3:.0f} ms ({got:,} bars), "
              f"tvdatafeed {t_tv_batch * 1e3:.0f} ms ({got_tv:,} bars): {t_tv_batch / t_batch:.1f}x")

        message = capture_timescale_message(url, args.symbol, args.interval, args.bars)
        rates = decode_bench(message, args.symbol, interval)
        print(f"decode, {rates['bars']} bars in a {len(message) / 1024:.0f} KB message (bars/s, wall | per CPU-second):")
        for stage, what in (("rows", "frames + rows (JSON parsed)"),
                            ("columns", "validated columns (what fetch returns)"),
                            ("bar objects", "validated Bar objects (on demand)")):
            print(f"  {what:<40} {rates[stage]:>11,.0f} | {rates[stage + ' cpu']:>11,.0f}")
        ours_parse, tv_parse = parse_bench(message, args.symbol, interval)
        print(f"parse to a DataFrame, same message: ours {ours_parse:,.0f} bars/s (validated), "
              f"tvdatafeed {tv_parse:,.0f} bars/s (regex, unvalidated): {ours_parse / tv_parse:.1f}x")
        exchange, _ = args.symbol.split(":")
        from tvDatafeed import Interval as TvInterval
        from tvDatafeed import TvDatafeed

        ours_unknown, tv_unknown = unknown_symbol_latency(
            url, lambda: TvDatafeed().get_hist(symbol="NOPE", exchange=exchange, interval=TvInterval.in_daily, n_bars=10))
        print(f"unknown symbol: ours raises SymbolNotFoundError in {ours_unknown * 1e3:.0f} ms; "
              f"tvdatafeed returns None after {tv_unknown * 1e3:.0f} ms ({tv_unknown / ours_unknown:.0f}x)")
        import os as _os

        print(f"load average during the run: {', '.join(f'{x:.1f}' for x in _os.getloadavg())} "
              f"on {_os.cpu_count()} CPUs")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
