"""``pocketquant ticks`` (read the tick audit trail) and ``pocketquant rebuild`` (re-aggregate a
logged day and compare it with the stream bars in the store).

    pocketquant ticks BINANCE:BTCUSDT --date 2026-12-01 -n 20
    pocketquant ticks BINANCE:BTCUSDT --date 2026-12-01 --dropped -f csv
    pocketquant rebuild BINANCE:BTCUSDT --date 2026-12-01
"""

import math
import sys
from datetime import UTC, date, datetime, timedelta

import click

from pocketquant_pipelines.commands import formatting as fmt
from pocketquant_pipelines.commands.options import format_option, limit_option, pass_app
from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.market.symbols import normalize_symbol


class UtcDay(click.ParamType):
    name = "date"

    def convert(self, value, param, ctx):
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not a UTC day (YYYY-MM-DD)", param, ctx)


def _date_option():
    return click.option("--date", "day", type=UtcDay(), default=None,
                        help="the UTC day, YYYY-MM-DD (default: today, UTC)")


def _stamp(epoch):
    if epoch is None or (isinstance(epoch, float) and math.isnan(epoch)):
        return None
    return datetime.fromtimestamp(epoch, UTC)


TICK_COLUMNS = ["exchange_time", "received_at", "price", "volume", "cumulative_volume", "bid", "ask",
                "dropped", "writer"]


@click.command("ticks")
@click.argument("symbol")
@_date_option()
@click.option("--dropped", "only_dropped", is_flag=True, help="only the ticks that were not aggregated, with why")
@limit_option("only the last N ticks")
@format_option()
@pass_app
def ticks(app, symbol, day, only_dropped, limit, output_format) -> int:
    """The ticks the streamer received for SYMBOL on a UTC day, from the tick audit trail.

    Notes from the log's accounting (a streamer that was killed, a missing batch) go to stderr."""
    import pyarrow.compute as pc

    from pocketquant_pipelines.storage.tick_log import read_ticks

    symbol = normalize_symbol(symbol)
    logged = read_ticks(app.settings.tick_log_dir, symbol, day or datetime.now(UTC).date())
    table = logged.table
    if only_dropped:
        table = table.filter(pc.invert(pc.is_null(table.column("dropped"))))
    if limit is not None:
        table = table.slice(max(0, table.num_rows - limit))
    rows = table.select(TICK_COLUMNS).to_pylist()
    if output_format == "json":
        fmt.write_json_lines({**r, "exchange_time": fmt.iso(_stamp(r["exchange_time"])),
                              "received_at": fmt.iso(_stamp(r["received_at"]))} for r in rows)
    elif output_format == "csv":
        fmt.write_csv(TICK_COLUMNS, ([fmt.iso(_stamp(r["exchange_time"])), fmt.iso(_stamp(r["received_at"])),
                                      *(r[c] for c in TICK_COLUMNS[2:])] for r in rows))
    else:
        fmt.table(["EXCHANGE TIME (UTC)", "RECEIVED (UTC)", "PRICE", "VOLUME", "BID", "ASK", "DROPPED"],
                  [[fmt.utc_time(_stamp(r["exchange_time"]), seconds=True), fmt.utc_time(_stamp(r["received_at"]), seconds=True),
                    fmt.number(r["price"]), fmt.number(r["volume"]), fmt.number(r["bid"]), fmt.number(r["ask"]),
                    r["dropped"] or ""] for r in rows])
    accepted = logged.accepted.num_rows
    print(f"{symbol} {logged.day.isoformat()}: {logged.table.num_rows} ticks logged, {accepted} aggregated, "
          f"{logged.table.num_rows - accepted} dropped", file=sys.stderr)
    for note in logged.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


@click.command("rebuild")
@click.argument("symbol")
@_date_option()
@format_option()
@pass_app
def rebuild(app, symbol, day, output_format) -> int:
    """Re-aggregate SYMBOL's logged ticks of a UTC day with the streamer's aggregator and report
    every difference from the stream bars in the store (exit 1 when there is one)."""
    from pocketquant_pipelines.market.intervals import ALL_INTERVALS
    from pocketquant_pipelines.market.rebuild import compare
    from pocketquant_pipelines.market.rebuild import rebuild as rebuild_bars
    from pocketquant_pipelines.storage.factory import open_bar_store
    from pocketquant_pipelines.storage.symbol_session import session_of
    from pocketquant_pipelines.storage.tick_log import day_span, iter_segments, logged_days, read_ticks

    symbol = normalize_symbol(symbol)
    day = day or datetime.now(UTC).date()
    root = app.settings.tick_log_dir
    logged = read_ticks(root, symbol, day)  # the day itself must be there
    # bars that cross midnight UTC take ticks from the neighbouring days too
    days = [d for d in (day - timedelta(days=1), day, day + timedelta(days=1))
            if d.isoformat() in logged_days(root)]
    runs: dict[str, list] = {}
    for d in days:
        try:
            neighbour = read_ticks(root, symbol, d).table
        except InvalidInputError:  # the symbol has no ticks on a neighbouring day
            continue
        for writer, seg in iter_segments(neighbour):
            runs.setdefault(writer, []).extend(zip(seg.column("exchange_time").to_pylist(),
                                                   seg.column("price").to_pylist(),
                                                   seg.column("volume").to_pylist(), strict=True))
    start, end = day_span(day)
    with open_bar_store(app.settings) as store:
        info = store.get_symbol(symbol)
        session, known = session_of(info)
        rebuilt = rebuild_bars(symbol, session, [runs[w] for w in sorted(runs)])
        stored = {}
        for interval in ALL_INTERVALS:
            frame = store.read_stream_bars(symbol, interval, start=start, end=end)
            for t, row in zip(frame.index, frame.itertuples(index=False), strict=True):
                volume = None if row.volume is None or math.isnan(row.volume) else row.volume
                stored[(interval, t.to_pydatetime())] = (row.open, row.high, row.low, row.close, volume)
    diffs = compare(rebuilt, stored, start, end)
    compared = sum(1 for r in rebuilt if start <= r.bar.time < end)
    if output_format == "json":
        fmt.write_json_lines({"interval": d.interval.value, "time": d.time.isoformat(), "what": d.what,
                              "detail": d.detail} for d in diffs)
    elif output_format == "csv":
        fmt.write_csv(["interval", "time", "what", "detail"],
                      ([d.interval.value, d.time.isoformat(), d.what, d.detail] for d in diffs))
    elif diffs:
        fmt.table(["INTERVAL", "START (UTC)", "DIFFERENCE", "DETAIL"],
                  [[d.interval.value, fmt.utc_time(d.time), d.what, d.detail] for d in diffs])
    summary = (f"{symbol} {day.isoformat()}: {logged.accepted.num_rows} ticks in {len(runs)} streamer run(s) "
               f"rebuilt {compared} bars; {len(stored)} stream bars stored; {len(diffs)} difference(s)")
    print(summary, file=sys.stdout if output_format == "table" else sys.stderr)
    if not known:
        print(f"note: {symbol}'s session is not in the registry; rebuilt as 24x7", file=sys.stderr)
    for note in logged.notes:
        print(f"note: {note}", file=sys.stderr)
    if not logged.table.num_rows:
        raise InvalidInputError(f"no ticks logged for {symbol} on {day.isoformat()}")
    return 1 if diffs else 0


COMMANDS = [ticks, rebuild]
