"""TradingView commands: ``fetch`` (history), ``quotes`` (live ticks), ``simulate`` (local server).

    pocketquant fetch NASDAQ:AAPL --interval 1d --bars 500 --format csv
    pocketquant quotes BINANCE:BTCUSDT NASDAQ:AAPL --limit 20 --format json
    pocketquant simulate --port 8765          # then: --ws-url ws://127.0.0.1:8765/socket.io/websocket
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys

from pocketquant_pipelines.commands.argtypes import positive_int, ws_url
from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.tradingview.errors import ConnectionLostError, SymbolNotFoundError




def register(sub: argparse._SubParsersAction) -> None:
    intervals = ", ".join(i.value for i in Interval)
    p = sub.add_parser("fetch", help="historical bars of one symbol from TradingView",
                       description="Fetch the latest N bars of SYMBOL (pages past the first batch "
                       "up to the account's depth: 5000 bars anonymously).")
    p.add_argument("symbol", metavar="SYMBOL", help="EXCHANGE:CODE, e.g. NASDAQ:AAPL")
    p.add_argument("--interval", "-i", default="1d", help=f"one of {intervals} (default 1d)")
    p.add_argument("--bars", "-n", type=positive_int, default=100, help="how many bars (default 100)")
    p.add_argument("--session", choices=("regular", "extended"), default="regular")
    p.add_argument("--adjustment", choices=("splits", "dividends"), default="splits")
    p.add_argument("--format", "-f", choices=("table", "csv", "json"), default="table",
                   help="json = one object per line")
    p.add_argument("--ws-url", type=ws_url, default=None,
                   help="WebSocket URL (default TRADINGVIEW_WS_URL), e.g. the simulator's")
    p.add_argument("--verbose", "-v", action="store_true", help="show client log events")
    p.set_defaults(func=_cmd_fetch)

    p = sub.add_parser("quotes", help="stream live quotes as ticks",
                       description="Stream ticks for SYMBOLs until Ctrl-C, --limit or --duration.")
    p.add_argument("symbols", nargs="+", metavar="SYMBOL", help="EXCHANGE:CODE ...")
    p.add_argument("--limit", "-n", type=positive_int, default=None, help="stop after N ticks")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--format", "-f", choices=("table", "json"), default="table",
                   help="json = one object per line")
    p.add_argument("--ws-url", type=ws_url, default=None,
                   help="WebSocket URL (default TRADINGVIEW_WS_URL), e.g. the simulator's")
    p.add_argument("--verbose", "-v", action="store_true", help="show client log events")
    p.set_defaults(func=_cmd_quotes)

    # The simulator's own module defines its options and runs it (helper D's area).
    from pocketquant_pipelines.tradingview.simulator.cli import add_simulate_arguments

    p = sub.add_parser("simulate", help="run the local TradingView protocol simulator",
                       description="A local server speaking TradingView's WebSocket protocol with "
                       "deterministic synthetic data and fault injection.")
    add_simulate_arguments(p)
    p.set_defaults(func=_cmd_simulate)


def _cmd_simulate(args: argparse.Namespace, settings) -> int:
    from pocketquant_pipelines.tradingview.simulator.cli import run_simulate

    return int(run_simulate(args) or 0)


def _quiet_logs(args, settings) -> None:
    # Command output goes to stdout; client events would only clutter stderr, where an error
    # must stay one clear line. --verbose brings them back.
    from pocketquant_pipelines.logging import configure_logging

    level = settings.log_level if args.verbose else "ERROR"
    configure_logging(settings.log_format, level, force=True)


def _client(args, settings):
    from pocketquant_pipelines.tradingview.client import TradingViewClient

    overrides = {"url": args.ws_url} if args.ws_url else {}
    return TradingViewClient.from_settings(settings, **overrides)


def _num(value) -> str:
    if value is None:
        return "-"
    return f"{value:.10g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------- fetch


def _cmd_fetch(args: argparse.Namespace, settings) -> int:
    _quiet_logs(args, settings)
    interval = Interval.parse(args.interval)  # bad values fail before any connection

    async def go():
        async with _client(args, settings) as tv:
            return await tv.fetch_history(args.symbol, interval, args.bars,
                                          session=args.session, adjustment=args.adjustment)

    from pocketquant_pipelines.tradingview.client import run_blocking

    result = run_blocking(go())
    out = sys.stdout
    rows = [
        {"time": b.time.isoformat(), "open": b.open, "high": b.high, "low": b.low, "close": b.close,
         "volume": b.volume}
        for b in result.bars
    ]
    if args.format == "json":
        for row in rows:
            out.write(json.dumps(row) + "\n")
    elif args.format == "csv":
        writer = csv.DictWriter(out, fieldnames=["time", "open", "high", "low", "close", "volume"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows({**r, "volume": "" if r["volume"] is None else r["volume"]} for r in rows)
    else:
        out.write(f"{'time':<26} {'open':>14} {'high':>14} {'low':>14} {'close':>14} {'volume':>16}\n")
        for r in rows:
            out.write(f"{r['time']:<26} {_num(r['open']):>14} {_num(r['high']):>14} {_num(r['low']):>14} "
                      f"{_num(r['close']):>14} {_num(r['volume']):>16}\n")
    if result.implausible_times:
        print(f"note: {result.symbol} {interval}: {result.implausible_times} bar(s) rejected: dated "
              f"beyond now + {settings.clock_skew_s:g} s (POCKETQUANT_CLOCK_SKEW_S) or before 1970",
              file=sys.stderr)
    if result.depth_reached or len(result.columns) < args.bars:
        print(f"note: {result.symbol} {interval}: {len(result.columns)} of {args.bars} bars "
              + ("(history or account depth exhausted)" if result.depth_reached or not result.implausible_times
                 else "(the rest were rejected)"), file=sys.stderr)
    out.flush()
    return 0


# ---------------------------------------------------------------------- quotes


def _cmd_quotes(args: argparse.Namespace, settings) -> int:
    _quiet_logs(args, settings)
    if args.duration is not None and args.duration <= 0:
        raise InvalidInputError(f"--duration {args.duration!r} must be > 0")
    out = sys.stdout
    errors: list = []

    def on_error(error) -> None:
        errors.append(error)
        print(f"warning: {error.symbol}: {error.reason}", file=sys.stderr, flush=True)

    async def go() -> int:
        count = 0
        async with _client(args, settings) as tv:
            stream = tv.quote_stream(args.symbols, on_error=on_error)
            async with stream:
                ticks = stream.__aiter__()
                loop = asyncio.get_running_loop()
                started = loop.time()
                deadline = None if args.duration is None else started + args.duration
                while args.limit is None or count < args.limit:
                    if not stream.symbols:
                        reasons = "; ".join(f"{e.symbol}: {e.reason}" for e in errors)
                        raise SymbolNotFoundError(f"no quotes: every symbol was refused ({reasons})")
                    if stream.stats.connections == 0 and loop.time() - started > tv.request_timeout_s:
                        # the stream would retry forever; a command line should say so and stop
                        raise ConnectionLostError(
                            f"cannot connect to {tv.url} within {tv.request_timeout_s:g} s "
                            "(TRADINGVIEW_REQUEST_TIMEOUT_S)")
                    timeout = None if deadline is None else deadline - loop.time()
                    if timeout is not None and timeout <= 0:
                        break
                    try:
                        # wake up now and then to notice refused symbols and the deadline
                        async with asyncio.timeout(min(timeout, 0.5) if timeout is not None else 0.5):
                            tick = await ticks.__anext__()
                    except TimeoutError:
                        continue
                    except StopAsyncIteration:
                        break
                    count += 1
                    if count == 1 and args.format == "table":
                        out.write(f"{'time':<26} {'symbol':<22} {'price':>14} {'volume':>14} "
                                  f"{'bid':>12} {'ask':>12}\n")
                    if args.format == "json":
                        out.write(json.dumps(tick.to_dict()) + "\n")
                    else:
                        out.write(f"{tick.time.isoformat():<26} {tick.symbol:<22} {_num(tick.price):>14} "
                                  f"{_num(tick.volume):>14} {_num(tick.bid):>12} {_num(tick.ask):>12}\n")
                    out.flush()
        return 0

    return asyncio.run(go())
