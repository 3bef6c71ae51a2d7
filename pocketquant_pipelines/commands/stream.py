"""``pocketquant stream`` (the streamer sidecar) and ``pocketquant live`` (read the live cache).

    pocketquant stream                      # same service as `python -m streamer`
    pocketquant live NASDAQ:AAPL            # latest quote + in-progress bar of each interval
    pocketquant live --all                  # every cached quote
    pocketquant live --follow [SYMBOL ...]  # quotes and completed bars as they are published
    pocketquant live --follow --bars-only --format json
"""

import sys

import click

from pocketquant_pipelines.commands import formatting as fmt
from pocketquant_pipelines.commands.options import Count, Port, Seconds, format_option, limit_option, pass_app
from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.market.intervals import ALL_INTERVALS
from pocketquant_pipelines.market.symbols import normalize_symbol

# The live cache holds the bars still in progress: partial until they close, and labelled so.
IN_PROGRESS = "in progress (partial)"
# One CSV shape for quotes and bars, whichever `live` prints (a row fills the columns its type has).
LIVE_COLUMNS = ["type", "symbol", "interval", "time", "price", "bid", "ask", "volume", "cumulative_volume",
                "open", "high", "low", "close", "partial"]


@click.command("stream")
@click.option("--health-port", type=Port(), default=None,
              help="port of /health and /metrics (default STREAMER_HEALTH_PORT; 0 = any free port)")
@pass_app
def stream(app, health_port) -> int:
    """Run the streamer sidecar (live quotes -> bars -> cache + store).

    The same service as `python -m streamer`. Configured from the environment/.env (STREAMER_*, REDIS_URL,
    MONGODB_URL, TRADINGVIEW_WS_URL). SIGTERM/Ctrl-C flush in-progress bars as partial."""
    import asyncio

    from pocketquant_pipelines.commands.stores import open_bar_store, open_live_cache
    from pocketquant_pipelines.errors import StoreUnavailableError
    from streamer import exit_codes
    from streamer.disk import is_disk_full
    from streamer.service import run_service

    # reachable and writable before the service starts: a bad store is one line here
    try:
        open_bar_store(app.settings, write=True).close()
        open_live_cache(app.settings, write=True).close()
    except StoreUnavailableError as exc:
        if not (is_disk_full(exc) or "disk is full" in str(exc)):
            raise
        # the same line and exit code as `python -m streamer` on a full disk
        from pocketquant_pipelines.logging import get_logger

        get_logger("streamer").error(
            "streamer_disk_full", error=str(exc), data_dir=str(app.settings.data_dir),
            hint="free space on the disk of POCKETQUANT_DATA_DIR; nothing was streamed")
        return exit_codes.DISK_FULL
    return asyncio.run(run_service(app.settings, health_port=health_port))


@click.command("live")
@click.argument("symbols", nargs=-1, metavar="[SYMBOL]...")
@click.option("--all", "all_quotes", is_flag=True, help="list every cached quote")
@click.option("--follow", is_flag=True, help="print quotes and completed bars as they are published (Ctrl-C stops)")
@click.option("--bars-only", is_flag=True, help="with --follow: completed bars only")
@click.option("--quotes-only", is_flag=True, help="with --follow: quotes only")
@format_option()
@limit_option("with --follow: stop after N messages")
@click.option("--count", type=Count(), default=None, hidden=True)  # the flag's former name
@click.option("--timeout", type=Seconds(), default=None,
              help="with --follow: stop after this many seconds without a message")
@pass_app
def live(app, symbols, all_quotes, follow, bars_only, quotes_only, output_format, limit, count, timeout) -> int:
    """Latest quotes and in-progress bars from the live cache.

    Reads the live cache the streamer fills; --follow prints quotes and completed bars as they
    are published."""
    from pocketquant_pipelines.commands.stores import open_live_cache

    symbols = [normalize_symbol(s) for s in symbols]
    if not (symbols or all_quotes or follow):
        raise InvalidInputError("live: give a SYMBOL, --all or --follow")
    if bars_only and quotes_only:
        raise InvalidInputError("live: --bars-only and --quotes-only exclude each other")
    if limit is not None and count is not None:
        raise InvalidInputError("live: give --limit or --count, not both")
    limit = count if limit is None else limit
    if not follow:
        used = [flag for flag, value in (("--limit", limit), ("--timeout", timeout), ("--bars-only", bars_only),
                                         ("--quotes-only", quotes_only)) if value]
        if used:
            raise InvalidInputError(f"live: {' and '.join(used)} need --follow")
    out = sys.stdout
    cache = open_live_cache(app.settings)
    try:
        if follow:
            return _follow(cache, symbols, out, output_format, bars_only, quotes_only, limit, timeout)
        if all_quotes:
            _print_all_quotes(cache.all_quotes(), out, output_format)
            return 0
        return _print_snapshots(cache, symbols, out, output_format, app.settings)
    finally:
        cache.close()


def _quote_line(symbol: str, quote: dict, pricescale: int | None = None) -> str:
    when = quote.get("time")
    return (f"{symbol}  last {fmt.number(quote.get('price'), pricescale)}"
            f"  at {fmt.utc_time(when, seconds=True)} UTC ({fmt.age(when)} ago)"
            f"  bid {fmt.number(quote.get('bid'), pricescale)}  ask {fmt.number(quote.get('ask'), pricescale)}"
            f"  session volume {fmt.number(quote.get('cumulative_volume'))}\n")


def _last_stored(settings, symbol: str):
    """(pricescale, (interval, bar time, close) of the newest stored bar) from the bar store:
    what ``live`` shows, marked stale, when the cache has no quote (market closed, streamer
    stopped, or the 60 s quote TTL passed)."""
    from pocketquant_pipelines.storage.factory import open_bar_store

    with open_bar_store(settings) as store:
        info = store.get_symbol(symbol)
        newest = None
        for interval in ALL_INTERVALS:  # finest first: the 1m bar is the latest price
            frame = store.read_bars(symbol, interval, limit=1)
            if len(frame):
                newest = (interval.value, frame.index[-1], float(frame["close"].iloc[-1]))
                break
    return (info.pricescale if info else None), newest


def _quote_row(symbol: str, quote: dict) -> list:
    return ["quote", symbol, None, quote.get("time"), quote.get("price"), quote.get("bid"), quote.get("ask"),
            quote.get("volume"), quote.get("cumulative_volume"), None, None, None, None, None]


def _bar_row(bar: dict, partial: bool) -> list:
    return ["bar", bar.get("symbol"), bar.get("interval"), bar.get("time"), None, None, None, bar.get("volume"),
            None, bar.get("open"), bar.get("high"), bar.get("low"), bar.get("close"), partial]


def _print_all_quotes(quotes: dict, out, output_format: str) -> None:
    if output_format == "json":
        fmt.write_json_lines(({"symbol": s, "quote": quotes[s]} for s in sorted(quotes)), out)
    elif output_format == "csv":
        fmt.write_csv(LIVE_COLUMNS, (_quote_row(s, quotes[s]) for s in sorted(quotes)), out)
    elif not quotes:
        out.write("no cached quotes (is the streamer running? quotes expire after 60 s)\n")
    else:
        for symbol in sorted(quotes):
            out.write(_quote_line(symbol, quotes[symbol]))


def _print_snapshots(cache, symbols: list[str], out, output_format: str, settings=None) -> int:
    from pocketquant_pipelines.market.bars import bar_to_dict

    csv_out = fmt.CsvWriter(LIVE_COLUMNS, out) if output_format == "csv" else None
    missing = 0
    for symbol in symbols:
        quote = cache.get_quote(symbol)
        bars = cache.get_current_bars(symbol)
        current = [bars[i] for i in ALL_INTERVALS if i in bars]
        if output_format == "json":
            # the cache holds the bars still in progress: partial by nature
            fmt.json_line({"symbol": symbol, "quote": quote,
                           "bars": {b.interval.value: {**bar_to_dict(b), "partial": True, "in_progress": True}
                                    for b in current}}, out)
        elif csv_out is not None:
            if quote is not None:
                csv_out.row(_quote_row(symbol, quote))
            for b in current:
                csv_out.row(_bar_row(bar_to_dict(b), partial=True))
        else:
            pricescale, stored = _last_stored(settings, symbol) if settings is not None else (None, None)
            if quote is not None:
                out.write(_quote_line(symbol, quote, pricescale))
            elif stored is not None:
                interval, when, close = stored
                out.write(f"{symbol}  STALE: no live quote in the last 60 s; last stored {interval} bar "
                          f"{fmt.utc_time(when)} UTC close {fmt.number(close, pricescale)} "
                          f"({fmt.age(when)} ago)\n")
                quote = {"stale": True}  # something to show: not a miss
            else:
                out.write(f"{symbol}  no cached quote and no stored bar (not streamed or synced yet)\n")
            if current:
                fmt.table(["interval", "start (UTC)", "open", "high", "low", "close", "volume", "state"],
                          [[b.interval.value, fmt.utc_time(b.time), *(fmt.number(p) for p in
                                                                      (b.open, b.high, b.low, b.close)),
                            fmt.number(b.volume), IN_PROGRESS] for b in current],
                          out, align="<<>>>>><", rule=False, indent="  ")
        missing += quote is None and not bars
    return 1 if missing == len(symbols) and symbols else 0


def _follow(cache, symbols: list[str], out, output_format: str, bars_only: bool, quotes_only: bool,
            limit: int | None, timeout: float | None) -> int:
    from pocketquant_pipelines.api import follow
    from pocketquant_pipelines.storage.live import BARS_PATTERN, QUOTES_PATTERN, bar_channel, quote_channel

    if symbols:
        patterns = []
        for s in symbols:
            if not bars_only:
                patterns.append(quote_channel(s))
            if not quotes_only:
                patterns.append(bar_channel(s, "1m").rsplit(":", 1)[0] + ":*")
    else:
        patterns = ([] if bars_only else [QUOTES_PATTERN]) + ([] if quotes_only else [BARS_PATTERN])
    csv_out = fmt.CsvWriter(LIVE_COLUMNS, out, flush=True) if output_format == "csv" else None

    def announce():
        if output_format == "table":
            out.write(f"following {', '.join(patterns)} (Ctrl-C to stop)\n")
            out.flush()

    for msg in follow(cache, patterns, timeout, limit, on_subscribed=announce):
        kind = "bar" if msg.channel.startswith("pq:bars:") else "quote"
        d = msg.data
        if output_format == "json":
            fmt.json_line({"channel": msg.channel, "type": kind, "data": d}, out, flush=True)
        elif csv_out is not None:
            csv_out.row(_bar_row(d, bool(d.get("partial"))) if kind == "bar" else _quote_row(d.get("symbol"), d))
        else:
            out.write(_follow_line(kind, d))
            out.flush()
    return 0


def _follow_line(kind: str, d: dict) -> str:
    if kind == "quote":
        return f"quote {d.get('symbol')} {fmt.number(d.get('price'))} at {d.get('time')} vol {fmt.number(d.get('volume'))}\n"
    flag = " (partial)" if d.get("partial") else ""
    return (f"bar   {d.get('symbol')} {d.get('interval'):>3} {d.get('time')} O {fmt.number(d.get('open'))}"
            f" H {fmt.number(d.get('high'))} L {fmt.number(d.get('low'))} C {fmt.number(d.get('close'))}"
            f" V {fmt.number(d.get('volume'))}{flag}\n")


COMMANDS = [stream, live]
