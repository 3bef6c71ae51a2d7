"""TradingView commands: ``fetch`` (history) and ``quotes`` (live ticks).

    pocketquant fetch NASDAQ:AAPL --interval 1d --bars 500 --format csv
    pocketquant quotes BINANCE:BTCUSDT NASDAQ:AAPL --limit 20 --format json
"""

from __future__ import annotations

import asyncio
import sys

import click

from pocketquant_pipelines.commands import formatting as fmt
from pocketquant_pipelines.commands.options import (
    Count, Seconds, format_option, interval_option, limit_option, pass_app, quiet_client_logs,
    verbose_option, ws_url_option,
)
from pocketquant_pipelines.settings import MAX_BARS  # the client's ceiling (a test keeps them equal)
from pocketquant_pipelines.tradingview.errors import ConnectionLostError, SymbolNotFoundError

BAR_COLUMNS = ["time", "open", "high", "low", "close", "volume"]
TICK_COLUMNS = ["symbol", "time", "price", "volume", "bid", "ask", "cumulative_volume"]


def _client(settings, ws_url: str | None):
    from pocketquant_pipelines.tradingview.client import TradingViewClient

    return TradingViewClient.from_settings(settings, **({"url": ws_url} if ws_url else {}))


@click.command("fetch")
@click.argument("symbol")
@interval_option()
@click.option("--bars", type=Count(1, MAX_BARS), default=100, show_default=True,
              help="bars to request from TradingView (pages past the first batch up to the account's depth)")
@click.option("--session", type=click.Choice(["regular", "extended"]), default="regular", show_default=True)
@click.option("--adjustment", type=click.Choice(["splits", "dividends"]), default="splits", show_default=True)
@format_option()
@ws_url_option()
@verbose_option()
@pass_app
def fetch(app, symbol, interval, bars, session, adjustment, output_format, ws_url, verbose) -> int:
    """Historical bars of one symbol from TradingView.

    The latest --bars bars of SYMBOL (EXCHANGE:CODE); history pages past the first batch up
    to the account's depth (5000 bars anonymously)."""
    from pocketquant_pipelines.tradingview.client import run_blocking

    settings = app.settings
    quiet_client_logs(settings, verbose)

    async def go():
        async with _client(settings, ws_url) as tv:
            return await tv.fetch_history(symbol, interval, bars, session=session, adjustment=adjustment)

    result = run_blocking(go())
    out = sys.stdout
    records = [(b.time, b.open, b.high, b.low, b.close, b.volume) for b in result.bars]
    if output_format == "json":
        fmt.write_json_lines((dict(zip(BAR_COLUMNS, (fmt.iso(r[0]), *r[1:]), strict=True)) for r in records), out)
    elif output_format == "csv":
        fmt.write_csv(BAR_COLUMNS, records, out)
    else:
        scale = result.metadata.pricescale
        fmt.table(["TIME (UTC)", "OPEN", "HIGH", "LOW", "CLOSE", "VOLUME"],
                  [[fmt.utc_time(t), *(fmt.number(p, scale) for p in (o, h, lo, c)), fmt.number(v)]
                   for t, o, h, lo, c, v in records], out, align="<>>>>>")
    if result.implausible_times:
        print(f"note: {result.symbol} {interval}: {result.implausible_times} bar(s) rejected: dated "
              f"beyond now + {settings.clock_skew_s:g} s (POCKETQUANT_CLOCK_SKEW_S) or before 1970",
              file=sys.stderr)
    if result.depth_reached or len(result.columns) < bars:
        print(f"note: {result.symbol} {interval}: {len(result.columns)} of {bars} bars "
              + ("(history or account depth exhausted)" if result.depth_reached or not result.implausible_times
                 else "(the rest were rejected)"), file=sys.stderr)
    out.flush()
    return 0


WAIT_NOTICE_S = 10.0  # silence after which `quotes` says it is still waiting


@click.command("quotes")
@click.argument("symbols", nargs=-1, required=True, metavar="SYMBOL...")
@limit_option("stop after N ticks")
@click.option("--duration", type=Seconds(), default=None, help="stop after this many seconds")
@format_option()
@ws_url_option()
@verbose_option()
@pass_app
def quotes(app, symbols, limit, duration, output_format, ws_url, verbose) -> int:
    """Live quotes of SYMBOLs, as ticks.

    Prints ticks until Ctrl-C, --limit ticks or --duration seconds."""
    settings = app.settings
    quiet_client_logs(settings, verbose)
    out = sys.stdout
    errors: list = []
    emit = _tick_printer(output_format, out)

    def on_error(error) -> None:
        errors.append(error)
        print(f"warning: {error.symbol}: {error.reason}", file=sys.stderr, flush=True)

    async def go() -> int:
        count = 0
        async with _client(settings, ws_url) as tv:
            stream = tv.quote_stream(list(symbols), on_error=on_error)
            async with stream:
                ticks = stream.__aiter__()
                loop = asyncio.get_running_loop()
                started = loop.time()
                deadline = None if duration is None else started + duration
                last_news = started
                while limit is None or count < limit:
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
                        # a quiet market ticks rarely: say the command is waiting, not stuck
                        now = loop.time()
                        if now - last_news >= WAIT_NOTICE_S:
                            last_news = now
                            wanted = f" of {limit}" if limit is not None else ""
                            print(f"waiting for ticks of {', '.join(stream.symbols) or ', '.join(symbols)}: "
                                  f"{count}{wanted} after {now - started:.0f} s (Ctrl-C stops)",
                                  file=sys.stderr, flush=True)
                        continue
                    except StopAsyncIteration:
                        break
                    count += 1
                    emit(tick)
        return 0

    return asyncio.run(go())


def _tick_printer(output_format: str, out):
    if output_format == "json":
        return lambda tick: fmt.json_line(tick.to_dict(), out, flush=True)
    if output_format == "csv":
        writer = fmt.CsvWriter(TICK_COLUMNS, out, flush=True)
        return lambda tick: writer.row([tick.to_dict()[c] for c in TICK_COLUMNS])
    table = fmt.StreamingTable(["TIME (UTC)", "SYMBOL", "PRICE", "VOLUME", "BID", "ASK"],
                               [19, 22, 14, 14, 12, 12], out, align="<<>>>>")
    return lambda tick: table.row([fmt.utc_time(tick.time, seconds=True), tick.symbol, fmt.number(tick.price),
                                   fmt.number(tick.volume), fmt.number(tick.bid), fmt.number(tick.ask)])


COMMANDS = [fetch, quotes]
