"""``pocketquant chart``: stored bars as a candlestick chart with volume (PNG).

    pocketquant chart NASDAQ:AAPL -i 1d -o aapl.png
    pocketquant chart BINANCE:BTCUSDT -i 1h --start 2026-11-01 --end 2026-11-08 -o btc.png
"""

import sys
from pathlib import Path

import click

from pocketquant_pipelines.commands.options import Count, UtcTime, interval_option, pass_app
from pocketquant_pipelines.errors import InvalidInputError

DEFAULT_BARS = 120  # what fits legibly on a 10-inch chart when no range is given


@click.command("chart")
@click.argument("symbol")
@interval_option()
@click.option("--start", type=UtcTime(), default=None, help="first bar start, ISO date/time (UTC unless offset)")
@click.option("--end", type=UtcTime(), default=None, help="bars starting before this, ISO date/time")
@click.option("-n", "--limit", type=Count(1, 5000), default=None,
              help=f"only the latest N bars (default {DEFAULT_BARS} when neither --start nor --end is given)")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="the PNG file to write")
@pass_app
def chart(app, symbol, interval, start, end, limit, output: Path) -> int:
    """Draw stored bars as candlesticks with volume into a PNG file.

    Grey candles are partial bars (the streamer wrote them before they closed)."""
    from pocketquant_pipelines.api import PocketQuant
    from pocketquant_pipelines.charts import candlestick_png
    from pocketquant_pipelines.commands.stores import open_bar_store

    if start and end and end <= start:
        raise InvalidInputError(f"--end {end.isoformat()!r} must be after --start {start.isoformat()!r}")
    if output.suffix.lower() != ".png":
        raise InvalidInputError(f"--output {str(output)!r}: the chart is a PNG, name it *.png")
    if not output.parent.is_dir():
        raise InvalidInputError(f"--output {str(output)!r}: directory {str(output.parent)!r} does not exist")
    if limit is None and start is None and end is None:
        limit = DEFAULT_BARS
    with PocketQuant(app.settings, store=open_bar_store(app.settings)) as pq:
        frame = pq.bars(symbol, interval, start, end, limit)
        symbol = frame.attrs.get("symbol", symbol.upper())
    if frame.empty:
        raise InvalidInputError(f"no bars stored for {symbol} {interval.value} in that range; "
                                f"sync first: pocketquant sync {symbol} -i {interval.value}")
    first, last = frame.index[0], frame.index[-1]
    title = f"{symbol} {interval.value}  {first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC  ({len(frame)} bars)"
    try:
        candlestick_png(frame, title, output)
    except OSError as exc:
        raise InvalidInputError(f"--output {str(output)!r}: {exc.strerror or exc}") from None
    print(f"wrote {output} ({len(frame)} bars of {symbol} {interval.value})", file=sys.stderr)
    return 0


COMMANDS = [chart]
