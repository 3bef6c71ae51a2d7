"""A strategy's view of PocketQuant: stored bars, the latest quote, live bars.

Run it against the demo (``make demo`` in another shell; its settings are the demo's data dir):

    POCKETQUANT_DATA_DIR=data/demo .venv/bin/python examples/sma_crossover.py BINANCE:BTCUSDT
    POCKETQUANT_DATA_DIR=data/demo .venv/bin/python examples/sma_crossover.py BINANCE:BTCUSDT --follow 3

It computes a fast/slow simple moving average on the stored 1h bars, reports the latest
crossover, then (with --follow N) waits for N completed 1m bars from the streamer.
"""

import argparse
import sys

from pocketquant_pipelines import api
from pocketquant_pipelines.errors import PocketQuantError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SMA crossover on stored bars")
    parser.add_argument("symbol")
    parser.add_argument("--interval", default="1h")
    parser.add_argument("--fast", type=int, default=10)
    parser.add_argument("--slow", type=int, default=30)
    parser.add_argument("--follow", type=int, default=0, help="then wait for N completed 1m bars")
    args = parser.parse_args(argv)
    try:
        bars = api.bars(args.symbol, args.interval, limit=500)
        if len(bars) < args.slow:
            print(f"only {len(bars)} {args.interval} bars stored; sync first "
                  f"(pocketquant sync {args.symbol} -i {args.interval})", file=sys.stderr)
            return 1
        fast = bars["close"].rolling(args.fast).mean()
        slow = bars["close"].rolling(args.slow).mean()
        above = (fast > slow).dropna()
        crosses = above[above != above.shift()].iloc[1:]
        print(f"{args.symbol} {args.interval}: {len(bars)} bars, last close {bars['close'].iloc[-1]:.2f} "
              f"at {bars.index[-1]:%Y-%m-%d %H:%M} UTC; {bars['partial'].sum()} partial")
        if len(crosses):
            when, up = crosses.index[-1], bool(crosses.iloc[-1])
            print(f"last crossover: SMA{args.fast} crossed {'above' if up else 'below'} "
                  f"SMA{args.slow} at {when:%Y-%m-%d %H:%M} UTC")
        quote = api.latest_quote(args.symbol)
        if quote is None:
            print("no live quote (is the streamer running, and is the symbol streamed?)")
        else:
            print(f"latest quote {quote.price} ({quote.age_s:.1f} s old)")
        for bar in api.subscribe_bars(args.symbol, ["1m"], timeout=120, limit=args.follow or 0) if args.follow else ():
            print(f"1m bar {bar.time:%H:%M} O {bar.open} H {bar.high} L {bar.low} C {bar.close}")
    except PocketQuantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
