"""Catalog commands: the symbol registry, one-off syncs, reading bars and the sync status.

    pocketquant symbols add NASDAQ:AAPL --stream --name "Apple"
    pocketquant symbols list [--format table|csv|json]
    pocketquant symbols remove NASDAQ:AAPL [--delete-bars]
    pocketquant sync NASDAQ:AAPL --interval 1d --bars 500      # same code path as the asset
    pocketquant bars NASDAQ:AAPL --interval 1d --start 2024-01-01 --limit 20 --format csv
    pocketquant bars NASDAQ:AAPL --interval 1h --format parquet --output aapl_1h.parquet
    pocketquant status [--symbol NASDAQ:AAPL] [--format table|csv|json]

The registry is what Dagster's ``symbol_registry_sensor`` mirrors into partitions; ``sync``
runs without Dagster (for scripts) and so leaves no run history; ``status`` reads the Dagster
instance at DAGSTER_HOME plus the bar store.
"""

import asyncio
import math
import sys
from dataclasses import fields

import click

from pocketquant_pipelines.commands import formatting as fmt
from pocketquant_pipelines.commands.options import (
    Count, UtcTime, format_option, interval_option, limit_option, pass_app, quiet_client_logs, ws_url_option,
)
from pocketquant_pipelines.errors import InvalidInputError, InvalidSymbolError, PocketQuantError
from pocketquant_pipelines.market.symbols import normalize_symbol
from pocketquant_pipelines.settings import MAX_BARS  # the client's ceiling (a test keeps them equal)

SYMBOL_COLUMNS = ["symbol", "name", "type", "currency", "timezone", "session", "stream", "added_at"]
BAR_COLUMNS = ["time", "open", "high", "low", "close", "volume", "source", "partial"]


def _open_store(settings, write: bool = False):
    from pocketquant_pipelines.commands.stores import open_bar_store

    return open_bar_store(settings, write=write)


# --------------------------------------------------------------------------- symbols
@click.group("symbols")
def symbols():
    """Manage the symbol registry (what Dagster syncs).

    The registry lists the symbols to sync (and to stream); Dagster's symbol_registry_sensor
    turns it into partitions."""


@symbols.command("add")
@click.argument("symbol")
@click.option("--stream", is_flag=True, help="the streamer subscribes to it")
@click.option("--name", default=None, help="a display name")
@click.option("--offline", is_flag=True, help="register without asking TradingView whether the symbol exists")
@ws_url_option()
@pass_app
def symbols_add(app, symbol, stream, name, offline, ws_url) -> int:
    """Register a symbol (checked against TradingView first).

    Resolves SYMBOL (EXCHANGE:CODE) against TradingView (or the simulator: TRADINGVIEW_WS_URL /
    --ws-url), then registers it with what symbol_resolved says (timezone, session, type). An
    unknown symbol is an error and nothing is registered; --offline skips the check."""
    from pocketquant_pipelines.market.timeutil import utcnow
    from pocketquant_pipelines.storage.registry import SymbolInfo
    from pocketquant_pipelines.storage.symbol_metadata import record_metadata

    settings = app.settings
    symbol = normalize_symbol(symbol)
    with _open_store(settings, write=True) as store:  # a store we cannot write fails first
        if offline:
            meta = None
        else:
            quiet_client_logs(settings)
            meta = resolve_for_registry(settings, symbol, ws_url)
        now = utcnow()
        added = store.add_symbol(SymbolInfo(symbol=symbol, name=name, stream=stream,
                                            added_at=now, updated_at=now))
        record_metadata(store, symbol, meta)
        if name:  # symbol_resolved's "name" is the ticker; the user's display name wins
            store.update_symbol(symbol, name=name)
        if offline:  # after the write, so a failure is the only line on stderr
            print(f"note: --offline: {symbol} was not checked against TradingView; its timezone and "
                  "session come with its first sync", file=sys.stderr)
        what = _resolved_summary(meta)
        if added:
            print(f"added {symbol}" + (" (streamed)" if stream else "") + (f": {what}" if what else ""))
            return 0
        changes = {}
        if stream:
            changes["stream"] = True
        if name:
            changes["name"] = name
        if changes:
            store.update_symbol(symbol, **changes)
            print(f"{symbol} already registered; updated {', '.join(changes)}")
        else:
            print(f"{symbol} already registered")
    return 0


def resolve_for_registry(settings, symbol: str, url: str | None = None):
    """``symbol_resolved`` of ``symbol`` (a SymbolMetadata), asked before anything is
    registered: a symbol TradingView does not have would become 13 partitions that all fail.
    Errors are one line naming the symbol: unknown (InvalidSymbolError), unreachable (a hint
    at --offline)."""
    from pocketquant_pipelines.tradingview.client import TradingViewClient, run_blocking
    from pocketquant_pipelines.tradingview.errors import TRANSIENT_ERRORS, SymbolNotFoundError

    overrides = {"url": url} if url else {}

    async def go():
        async with TradingViewClient.from_settings(settings, **overrides) as client:
            return await client.resolve_symbol(symbol)

    target = url or settings.tradingview_ws_url
    try:
        return run_blocking(go())
    except SymbolNotFoundError as exc:
        reason = exc.reason or "symbol_error"
        raise InvalidSymbolError(f"unknown symbol {symbol!r}: TradingView answered {reason!r} "
                                 f"({target}); nothing registered") from None
    except (*TRANSIENT_ERRORS, OSError) as exc:
        raise PocketQuantError(f"cannot check {symbol} against TradingView at {target}: {exc}; nothing "
                               "registered (use --offline to register it without the check)") from None


def _resolved_summary(meta) -> str:
    if meta is None:
        return ""
    parts = [meta.description, meta.type, meta.timezone, meta.session and f"session {meta.session}"]
    return ", ".join(str(p) for p in parts if p)


@symbols.command("list")
@click.option("--search", default=None, metavar="TEXT",
              help="only symbols whose code, name or description contains TEXT (any case)")
@click.option("--streamed", "streamed", flag_value=True, default=None,
              help="only the symbols the streamer subscribes to")
@click.option("--not-streamed", "streamed", flag_value=False, help="only the symbols not streamed")
@click.option("--stream-only", "streamed", flag_value=True, hidden=True)  # the flag's former name
@format_option()
@pass_app
def symbols_list(app, search, streamed, output_format) -> int:
    """List the registered symbols."""
    from pocketquant_pipelines.api import PocketQuant

    if search is not None and not search.strip():
        raise InvalidInputError("--search '': give some text to look for")
    with PocketQuant(app.settings, store=_open_store(app.settings)) as pq:
        infos = pq.symbols(search=search, streamed=streamed)
    records = [[i.symbol, i.name, i.type, i.currency, i.timezone, i.session, i.stream, i.added_at] for i in infos]
    if output_format == "json":
        fmt.write_json_lines(dict(zip(SYMBOL_COLUMNS, r[:-1] + [fmt.iso(r[-1])], strict=True)) for r in records)
    elif output_format == "csv":
        fmt.write_csv(SYMBOL_COLUMNS, records)
    elif not infos:
        print("no symbols match" if search or streamed is not None
              else "no symbols registered (pocketquant symbols add EXCHANGE:CODE)")
    else:
        fmt.table(["SYMBOL", "STREAM", "NAME", "TYPE", "TIMEZONE", "SESSION", "ADDED (UTC)"],
                  [[i.symbol, "yes" if i.stream else "no", i.name or i.description, i.type,
                    i.timezone, i.session, fmt.utc_time(i.added_at)] for i in infos])
    return 0


MAX_TEXT = 200  # a display name or description longer than this is a mistake, not a name


@symbols.command("update")
@click.argument("symbol")
@click.option("--name", default=None, help="a display name ('' clears it)")
@click.option("--description", default=None, help="a description ('' clears it)")
@click.option("--stream/--no-stream", default=None, help="whether the streamer subscribes to it")
@pass_app
def symbols_update(app, symbol, name, description, stream) -> int:
    """Change a registered symbol's name, description or stream flag.

    The streamer picks up a --stream/--no-stream change at its next registry poll
    (STREAMER_REGISTRY_POLL_S); Dagster sees the registry as before (partitions are unchanged)."""
    symbol = normalize_symbol(symbol)
    updates: dict[str, object] = {}
    for flag, value in (("name", name), ("description", description)):
        if value is not None:
            if len(value) > MAX_TEXT or any(ch in value for ch in "\n\r\t\x00"):
                raise InvalidInputError(f"--{flag} {value[:40]!r}...: at most {MAX_TEXT} characters on one line")
            updates[flag] = value.strip() or None
    if stream is not None:
        updates["stream"] = stream
    if not updates:
        raise InvalidInputError("nothing to update: give --name, --description, --stream or --no-stream")
    with _open_store(app.settings) as store:
        if store.get_symbol(symbol) is None:
            raise InvalidInputError(f"{symbol} is not registered (pocketquant symbols add {symbol})")
        info = store.update_symbol(symbol, **updates)
    changes = ", ".join(f"{k}={getattr(info, k)!r}" for k in updates)
    print(f"updated {symbol}: {changes}")
    return 0


@symbols.command("remove")
@click.argument("symbol")
@click.option("--delete-bars", is_flag=True, help="also delete its stored bars")
@pass_app
def symbols_remove(app, symbol, delete_bars) -> int:
    """Unregister a symbol.

    Its partitions go with the next sensor tick; --delete-bars also deletes its stored bars."""
    symbol = normalize_symbol(symbol)
    with _open_store(app.settings, write=True) as store:
        if not store.remove_symbol(symbol):
            print(f"error: {symbol} is not registered", file=sys.stderr)
            return 1
        deleted = store.delete_bars(symbol) if delete_bars else 0
    print(f"removed {symbol}" + (f" and {deleted} stored bars" if delete_bars else ""))
    return 0


# --------------------------------------------------------------------------- sync
@click.command("sync")
@click.argument("symbol")
@interval_option(multiple=True)
@click.option("--bars", type=Count(1, MAX_BARS), default=None,
              help="bars to request from TradingView (default: automatic: first sync depth, then incremental)")
@format_option(help="output format (table: one summary line per interval; json: one object per line)")
@pass_app
def sync(app, symbol, intervals, bars, output_format) -> int:
    """Sync historical bars into the store (no Dagster).

    An incremental historical sync of SYMBOL: the same code path as the historical_bars asset,
    without Dagster (so no run history)."""
    from pocketquant_pipelines.market.intervals import Interval
    from pocketquant_pipelines.sync import SyncOutcome, source_from_url, sync_history_async
    from pocketquant_pipelines.tradingview.client import TradingViewClient

    settings = app.settings
    symbol = normalize_symbol(symbol)
    intervals = list(intervals) or [Interval.D1]
    source = source_from_url(settings.tradingview_ws_url)

    async def go(store):
        async with TradingViewClient.from_settings(settings) as client:
            return await asyncio.gather(*(
                sync_history_async(store, client, symbol, interval, bars,
                                   first_bars=settings.sync_first_bars,
                                   overlap_bars=settings.sync_overlap_bars, source=source,
                                   clock_skew_s=settings.clock_skew_s)
                for interval in intervals), return_exceptions=True)

    with _open_store(settings, write=True) as store:
        if store.get_symbol(symbol) is None:
            print(f"note: {symbol} is not in the registry; bars are stored but Dagster will not "
                  "schedule it (pocketquant symbols add)", file=sys.stderr)
        results = asyncio.run(go(store))
    columns = [f.name for f in fields(SyncOutcome)]
    csv_out = fmt.CsvWriter(columns) if output_format == "csv" else None
    failed = 0
    for interval, result in zip(intervals, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            failed += 1
            reason = getattr(result, "reason", None)
            print(f"error: {symbol} {interval.value}: {result}"
                  + (f" (server: {reason})" if reason and reason not in str(result) else ""),
                  file=sys.stderr)
        elif output_format == "json":
            fmt.json_line(result.metadata())
        elif csv_out is not None:
            csv_out.row(result.metadata()[c] for c in columns)
        else:
            print(result.summary())
    return 1 if failed else 0


# --------------------------------------------------------------------------- bars
@click.command("bars")
@click.argument("symbol")
@interval_option()
@click.option("--start", type=UtcTime(), default=None, help="first bar start, ISO date/time (UTC unless offset)")
@click.option("--end", type=UtcTime(), default=None, help="bars starting before this, ISO date/time")
@limit_option("only the latest N bars")
@format_option("parquet", help="output format (json: one object per line; parquet needs --output)")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="write to FILE instead of stdout")
@pass_app
def bars(app, symbol, interval, start, end, limit, output_format, output) -> int:
    """Read stored bars.

    --start/--end are ISO dates or times, UTC unless they carry an offset; --limit keeps the
    latest N. Partial bars (the streamer did not see them whole) are marked in every format."""
    symbol = normalize_symbol(symbol)
    if start and end and end <= start:
        raise InvalidInputError(f"--end {end.isoformat()!r} must be after --start {start.isoformat()!r}")
    if output_format == "parquet" and not output:
        raise InvalidInputError("--format parquet needs --output FILE (Parquet is binary)")
    if output:
        _check_output(output)
    with _open_store(app.settings) as store:
        frame = store.read_bars(symbol, interval, start=start, end=end, limit=limit)
        info = store.get_symbol(symbol)
    if output_format == "parquet":
        import pyarrow.parquet as pq

        from pocketquant_pipelines.datasets import dataset_table

        try:
            pq.write_table(dataset_table(frame, symbol, interval), output)
        except OSError as exc:
            raise _output_error(output, exc) from None
        print(f"wrote {len(frame)} bars to {output}", file=sys.stderr)
        return 0
    try:
        out = open(output, "w", newline="") if output else sys.stdout  # noqa: SIM115
        try:
            partial = _write_bars(frame, symbol, interval, output_format, out, info.pricescale if info else None)
        finally:
            if output:
                out.close()
    except BrokenPipeError:
        raise
    except OSError as exc:
        if not output:
            raise
        raise _output_error(output, exc) from None
    if len(frame) == 0:
        print(f"no bars stored for {symbol} {interval.value} in that range", file=sys.stderr)
    elif partial and output_format == "table":
        print(f"note: {partial} of {len(frame)} bars are partial (PARTIAL yes): the streamer did not "
              "see them whole, or they were in progress; a historical sync completes them", file=sys.stderr)
    return 0


def _check_output(output: str) -> None:
    """--output names a file in a directory that exists: checked before the store is read."""
    from pathlib import Path

    parent = Path(output).parent
    if not parent.is_dir():
        raise InvalidInputError(f"--output {output!r}: directory {str(parent)!r} does not exist")
    if Path(output).is_dir():
        raise InvalidInputError(f"--output {output!r} is a directory; give a file name")


def _output_error(output: str, exc: OSError) -> PocketQuantError:
    return PocketQuantError(f"--output {output!r}: cannot write: {exc.strerror or exc}")


def _num(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _write_bars(frame, symbol: str, interval, output_format: str, out, pricescale: int | None) -> int:
    """Write the bars; returns how many are partial. A partial bar (the streamer did not watch
    it from its start, or it was still in progress when stored) is marked in every format, so
    nobody backtests on one as if it were TradingView's bar."""
    cols = ["open", "high", "low", "close", "volume"]
    has_source, has_partial = "source" in frame.columns, "partial" in frame.columns
    records = [
        [ts.to_pydatetime(), *(_num(row[c]) for c in cols),
         str(row["source"]) if has_source else None,
         bool(row["partial"]) if has_partial else False]
        for ts, row in frame.iterrows()
    ]
    if output_format == "json":
        fmt.write_json_lines(({"symbol": symbol, "interval": interval.value,
                               **dict(zip(BAR_COLUMNS, [fmt.iso(r[0]), *r[1:]], strict=True))}
                              for r in records), out)
    elif output_format == "csv":
        fmt.write_csv(BAR_COLUMNS, records, out)
    else:
        fmt.table(["TIME (UTC)", "OPEN", "HIGH", "LOW", "CLOSE", "VOLUME", "SOURCE", "PARTIAL"],
                  [[fmt.utc_time(t), *(fmt.number(p, pricescale) for p in (o, h, lo, c)), fmt.number(v),
                    src, "yes" if part else ""]
                   for t, o, h, lo, c, v, src, part in records], out, align="<>>>>><<")
    return sum(1 for r in records if r[-1])


# --------------------------------------------------------------------------- status
@click.command("status")
@click.option("-s", "--symbol", default=None, help="only this symbol")
@format_option()
@pass_app
def status(app, symbol, output_format) -> int:
    """Sync status per (symbol, interval).

    Last sync, outcome, stored bars and last error, from the Dagster instance at DAGSTER_HOME
    and the bar store."""
    from pocketquant_pipelines.defs.status import SyncStatusRow, open_instance, sync_status  # imports Dagster

    symbol = normalize_symbol(symbol) if symbol else None
    settings = app.settings
    instance = open_instance()
    with _open_store(settings) as store:
        rows = sync_status(instance, store)
    if symbol:
        rows = [r for r in rows if r.symbol == symbol]
    if output_format == "json":
        fmt.write_json_lines(row.as_dict() for row in rows)
    elif output_format == "csv":
        columns = [f.name for f in fields(SyncStatusRow)]
        fmt.write_csv(columns, ([getattr(r, c) for c in columns] for r in rows))
    elif not rows:
        print("nothing synced yet (add symbols with `pocketquant symbols add`, then let the "
              "Dagster sensor sync them, or run `pocketquant sync`)")
    else:
        fmt.table(
            ["SYMBOL", "INTERVAL", "STATUS", "LAST SYNC (UTC)", "OUTCOME", "BARS", "FIRST BAR (UTC)",
             "LAST BAR (UTC)", "LAST ERROR"],
            [[r.symbol, r.interval, r.status, fmt.utc_time(r.last_sync_at), r.last_outcome,
              r.bars_stored, fmt.utc_time(r.first_bar), fmt.utc_time(r.last_bar),
              _error_cell(r)] for r in rows])
    synced = [r for r in rows if r.status == "MATERIALIZED"]
    if synced and not any(r.bars_stored for r in rows):
        # Dagster synced into some other store: the CLI reads the wrong POCKETQUANT_DATA_DIR
        print(f"warning: Dagster reports {len(synced)} synced partition(s) but the bar store at "
              f"{settings.data_dir} holds no bars: is POCKETQUANT_DATA_DIR the one Dagster uses? "
              "(with the demo: source data/demo/env)", file=sys.stderr)
    return 0


def _error_cell(row) -> str | None:
    """The last failure with its time, for a table: ``2026-12-01 12:00 UTC: unknown symbol ...``."""
    if not row.last_error:
        return None
    reason = row.last_error if len(row.last_error) <= 100 else row.last_error[:99] + "…"
    return f"{fmt.utc_time(row.last_error_at)} UTC: {reason}" if row.last_error_at else reason


COMMANDS = [symbols, sync, bars, status]
