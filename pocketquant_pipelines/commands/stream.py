"""``pocketquant stream`` (the streamer sidecar) and ``pocketquant live`` (read the live cache).

    pocketquant stream                      # same service as `python -m streamer`
    pocketquant live NASDAQ:AAPL            # latest quote + in-progress bar of each interval
    pocketquant live --all                  # every cached quote
    pocketquant live --follow [SYMBOL ...]  # quotes and completed bars as they are published
    pocketquant live --follow --bars-only --json
"""

import argparse
import json
import sys

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.market.intervals import ALL_INTERVALS
from pocketquant_pipelines.market.symbols import normalize_symbol


# The live cache holds the bars still in progress: partial until they close, and labelled so.
IN_PROGRESS = "in progress (partial)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stream", help="run the streamer sidecar (live quotes -> bars -> cache + store)",
                       description="Run the streamer: the same service as `python -m streamer`. "
                       "Configured from the environment/.env (STREAMER_*, REDIS_URL, MONGODB_URL, "
                       "TRADINGVIEW_WS_URL). SIGTERM/Ctrl-C flush in-progress bars as partial.")
    p.add_argument("--health-port", type=int, default=None,
                   help="port of /health and /metrics (default STREAMER_HEALTH_PORT; 0 = any free port)")
    p.set_defaults(func=_cmd_stream)

    p = sub.add_parser("live", help="latest quote and in-progress bars from the live cache",
                       description="Read the live cache the streamer fills.")
    p.add_argument("symbols", nargs="*", metavar="SYMBOL", help="EXCHANGE:CODE, e.g. NASDAQ:AAPL")
    p.add_argument("--all", action="store_true", help="list every cached quote")
    p.add_argument("--follow", "-f", action="store_true",
                   help="print quotes and completed bars as they are published (Ctrl-C stops)")
    p.add_argument("--bars-only", action="store_true", help="with --follow: completed bars only")
    p.add_argument("--quotes-only", action="store_true", help="with --follow: quotes only")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.add_argument("--count", type=int, default=None,
                   help="with --follow: stop after this many messages")
    p.add_argument("--timeout", type=float, default=None,
                   help="with --follow: stop after this many seconds without a message")
    p.set_defaults(func=_cmd_live)


def _cmd_stream(args: argparse.Namespace, settings) -> int:
    import asyncio

    from streamer.service import run_service

    return asyncio.run(run_service(settings, health_port=args.health_port))


def _fmt_num(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def _print_quote(symbol: str, quote: dict, out) -> None:
    out.write(f"{symbol}  last {_fmt_num(quote.get('price'))}  at {quote.get('time')}"
              f"  bid {_fmt_num(quote.get('bid'))}  ask {_fmt_num(quote.get('ask'))}"
              f"  session volume {_fmt_num(quote.get('cumulative_volume'))}\n")


def _cmd_live(args: argparse.Namespace, settings) -> int:
    from pocketquant_pipelines.market.bars import bar_to_dict
    from pocketquant_pipelines.storage.factory import open_live_cache

    symbols = [normalize_symbol(s) for s in args.symbols]
    if not (symbols or args.all or args.follow):
        raise InvalidInputError("live: give a SYMBOL, --all or --follow")
    if args.bars_only and args.quotes_only:
        raise InvalidInputError("live: --bars-only and --quotes-only exclude each other")
    out = sys.stdout
    cache = open_live_cache(settings)
    try:
        if args.follow:
            return _follow(cache, symbols, args, out)
        if args.all:
            quotes = cache.all_quotes()
            if args.json:
                for symbol in sorted(quotes):
                    out.write(json.dumps({"symbol": symbol, "quote": quotes[symbol]}) + "\n")
            elif not quotes:
                out.write("no cached quotes (is the streamer running? quotes expire after 60 s)\n")
            else:
                for symbol in sorted(quotes):
                    _print_quote(symbol, quotes[symbol], out)
            return 0
        missing = 0
        for symbol in symbols:
            quote = cache.get_quote(symbol)
            bars = cache.get_current_bars(symbol)
            if args.json:
                # the cache holds the bars still in progress: partial by nature
                out.write(json.dumps({
                    "symbol": symbol, "quote": quote,
                    "bars": {i.value: {**bar_to_dict(bars[i]), "partial": True, "in_progress": True}
                             for i in ALL_INTERVALS if i in bars},
                }) + "\n")
            else:
                if quote is None:
                    out.write(f"{symbol}  no cached quote (not streamed, or none in the last 60 s)\n")
                else:
                    _print_quote(symbol, quote, out)
                if bars:
                    out.write(f"  {'interval':<8} {'start (UTC)':<25} {'open':>12} {'high':>12} "
                              f"{'low':>12} {'close':>12} {'volume':>14}  state\n")
                    for interval in ALL_INTERVALS:
                        if interval in bars:
                            b = bars[interval]
                            out.write(f"  {interval.value:<8} {b.time.isoformat():<25} {_fmt_num(b.open):>12} "
                                      f"{_fmt_num(b.high):>12} {_fmt_num(b.low):>12} {_fmt_num(b.close):>12} "
                                      f"{_fmt_num(b.volume):>14}  {IN_PROGRESS}\n")
            missing += quote is None and not bars
        return 1 if missing == len(symbols) and symbols else 0
    finally:
        cache.close()


def _follow(cache, symbols: list[str], args: argparse.Namespace, out) -> int:
    from pocketquant_pipelines.storage.base import BARS_PATTERN, QUOTES_PATTERN, bar_channel, quote_channel

    if symbols:
        patterns = []
        for s in symbols:
            if not args.bars_only:
                patterns.append(quote_channel(s))
            if not args.quotes_only:
                patterns.append(bar_channel(s, "1m").rsplit(":", 1)[0] + ":*")
    else:
        patterns = ([] if args.bars_only else [QUOTES_PATTERN]) + ([] if args.quotes_only else [BARS_PATTERN])
    seen = 0
    with cache.subscribe(*patterns) as sub:
        if not args.json:
            out.write(f"following {', '.join(patterns)} (Ctrl-C to stop)\n")
            out.flush()
        while args.count is None or seen < args.count:
            msg = sub.get(timeout=args.timeout if args.timeout is not None else 1.0)
            if msg is None:
                if args.timeout is not None:
                    break
                continue
            seen += 1
            kind = "bar" if msg.channel.startswith("pq:bars:") else "quote"
            if args.json:
                out.write(json.dumps({"channel": msg.channel, "type": kind, "data": msg.data}) + "\n")
            elif kind == "quote":
                d = msg.data
                out.write(f"quote {d.get('symbol')} {_fmt_num(d.get('price'))} at {d.get('time')}"
                          f" vol {_fmt_num(d.get('volume'))}\n")
            else:
                d = msg.data
                flag = " (partial)" if d.get("partial") else ""
                out.write(f"bar   {d.get('symbol')} {d.get('interval'):>3} {d.get('time')} O {_fmt_num(d.get('open'))}"
                          f" H {_fmt_num(d.get('high'))} L {_fmt_num(d.get('low'))} C {_fmt_num(d.get('close'))}"
                          f" V {_fmt_num(d.get('volume'))}{flag}\n")
            out.flush()
    return 0
