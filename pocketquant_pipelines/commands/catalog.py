"""Catalog commands: the symbol registry, one-off syncs, reading bars and the sync status.

    pocketquant symbols add NASDAQ:AAPL --stream --name "Apple"
    pocketquant symbols list [--format table|json]
    pocketquant symbols remove NASDAQ:AAPL [--delete-bars]
    pocketquant sync NASDAQ:AAPL --interval 1d --bars 500      # same code path as the asset
    pocketquant bars NASDAQ:AAPL --interval 1d --start 2024-01-01 --limit 20 --format csv
    pocketquant bars NASDAQ:AAPL --interval 1h --format parquet --output aapl_1h.parquet
    pocketquant status [--symbol NASDAQ:AAPL] [--format table|json]

The registry is what Dagster's ``symbol_registry_sensor`` mirrors into partitions; ``sync``
runs without Dagster (for scripts) and so leaves no run history; ``status`` reads the Dagster
instance at DAGSTER_HOME plus the bar store.
"""

import argparse
import asyncio
import csv
import json
import math
import sys
from datetime import UTC, datetime

from pocketquant_pipelines.commands.argtypes import positive_int, ws_url
from pocketquant_pipelines.errors import InvalidInputError, InvalidSymbolError, PocketQuantError
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.symbols import normalize_symbol



def parse_time(value: str, what: str) -> datetime:
    """ISO date or datetime; a value without an offset is read as UTC (documented)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"{what} {value!r} is not an ISO date/time (e.g. 2024-01-31 or "
                                "2024-01-31T14:30:00Z)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _open_store(settings):
    from pocketquant_pipelines.storage.factory import open_bar_store

    return open_bar_store(settings)


def _fmt_time(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return value.strftime("%Y-%m-%d %H:%M")


def _print_table(headers: list[str], rows: list[list], out=None) -> None:
    out = out or sys.stdout
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out)


# --------------------------------------------------------------------------- register
def register(sub: argparse._SubParsersAction) -> None:
    intervals = ", ".join(i.value for i in Interval)

    p = sub.add_parser("symbols", help="manage the symbol registry (what Dagster syncs)",
                       description="The registry lists the symbols to sync (and to stream). "
                       "Dagster's symbol_registry_sensor turns it into partitions.")
    ssub = p.add_subparsers(dest="symbols_command", required=True, metavar="ACTION")
    a = ssub.add_parser("add", help="register a symbol (checked against TradingView first)",
                        description="Resolve SYMBOL against TradingView (or the simulator: "
                        "TRADINGVIEW_WS_URL / --ws-url), then register it with what symbol_resolved "
                        "says (timezone, session, type). An unknown symbol is an error and nothing "
                        "is registered; --offline registers without the check.")
    a.add_argument("symbol", metavar="SYMBOL", help="EXCHANGE:CODE, e.g. NASDAQ:AAPL")
    a.add_argument("--stream", action="store_true", help="the streamer subscribes to it")
    a.add_argument("--name", default=None, help="a display name")
    a.add_argument("--offline", action="store_true",
                   help="register without asking TradingView whether the symbol exists")
    a.add_argument("--ws-url", type=ws_url, default=None,
                   help="WebSocket URL (default TRADINGVIEW_WS_URL), e.g. the simulator's")
    a.set_defaults(func=_cmd_symbols_add)
    ls = ssub.add_parser("list", help="list registered symbols")
    ls.add_argument("--stream-only", action="store_true")
    ls.add_argument("--format", "-f", choices=("table", "json"), default="table")
    ls.set_defaults(func=_cmd_symbols_list)
    rm = ssub.add_parser("remove", help="unregister a symbol")
    rm.add_argument("symbol", metavar="SYMBOL")
    rm.add_argument("--delete-bars", action="store_true", help="also delete its stored bars")
    rm.set_defaults(func=_cmd_symbols_remove)

    p = sub.add_parser("sync", help="sync historical bars into the store (no Dagster)",
                       description="Incremental historical sync of SYMBOL, the same code path as "
                       "the historical_bars asset, without Dagster (no run history).")
    p.add_argument("symbol", metavar="SYMBOL")
    p.add_argument("--interval", "-i", action="append", default=None,
                   help=f"one of {intervals}; repeat for several (default 1d)")
    p.add_argument("--bars", "-n", type=positive_int, default=None,
                   help="bars to request (default: automatic — first sync depth, then incremental)")
    p.add_argument("--format", "-f", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_sync)

    p = sub.add_parser("bars", help="read stored bars",
                       description="Read stored bars of SYMBOL. --start/--end are ISO dates or "
                       "times, UTC unless they carry an offset; --limit keeps the latest N.")
    p.add_argument("symbol", metavar="SYMBOL")
    p.add_argument("--interval", "-i", default="1d", help=f"one of {intervals} (default 1d)")
    p.add_argument("--start", default=None)
    p.add_argument("--end", default=None)
    p.add_argument("--limit", "-n", type=positive_int, default=None)
    p.add_argument("--format", "-f", choices=("table", "csv", "json", "parquet"), default="table",
                   help="json = one object per line; parquet needs --output")
    p.add_argument("--output", "-o", default=None, help="write to FILE instead of stdout")
    p.set_defaults(func=_cmd_bars)

    p = sub.add_parser("status", help="sync status per (symbol, interval)",
                       description="Last sync, outcome, stored bars and last error per (symbol, "
                       "interval), from the Dagster instance at DAGSTER_HOME and the bar store.")
    p.add_argument("--symbol", "-s", default=None, help="only this symbol")
    p.add_argument("--format", "-f", choices=("table", "json"), default="table")
    p.set_defaults(func=_cmd_status)


# --------------------------------------------------------------------------- symbols
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


def _cmd_symbols_add(args, settings) -> int:
    from pocketquant_pipelines.market.timeutil import utcnow
    from pocketquant_pipelines.storage.base import SymbolInfo
    from pocketquant_pipelines.sync import record_metadata

    symbol = normalize_symbol(args.symbol)
    if args.offline:
        meta = None
        print(f"note: --offline: {symbol} was not checked against TradingView; its timezone and "
              "session come with its first sync", file=sys.stderr)
    else:
        _quiet_client_logs(settings)
        meta = resolve_for_registry(settings, symbol, args.ws_url)
    with _open_store(settings) as store:
        now = utcnow()
        added = store.add_symbol(SymbolInfo(symbol=symbol, name=args.name, stream=args.stream,
                                            added_at=now, updated_at=now))
        record_metadata(store, symbol, meta)
        if args.name:  # symbol_resolved's "name" is the ticker; the user's display name wins
            store.update_symbol(symbol, name=args.name)
        what = _resolved_summary(meta)
        if added:
            print(f"added {symbol}" + (" (streamed)" if args.stream else "") + (f": {what}" if what else ""))
            return 0
        changes = {}
        if args.stream:
            changes["stream"] = True
        if args.name:
            changes["name"] = args.name
        if changes:
            store.update_symbol(symbol, **changes)
            print(f"{symbol} already registered; updated {', '.join(changes)}")
        else:
            print(f"{symbol} already registered")
    return 0


def _resolved_summary(meta) -> str:
    if meta is None:
        return ""
    parts = [meta.description, meta.type, meta.timezone, meta.session and f"session {meta.session}"]
    return ", ".join(str(p) for p in parts if p)


def _quiet_client_logs(settings) -> None:
    # the client's own events would bury the command's one line of output or error
    from pocketquant_pipelines.logging import configure_logging

    configure_logging(settings.log_format, "DEBUG" if settings.log_level == "DEBUG" else "ERROR", force=True)


def _cmd_symbols_list(args, settings) -> int:
    with _open_store(settings) as store:
        infos = store.list_symbols(stream_only=args.stream_only)
    if args.format == "json":
        for info in infos:
            print(json.dumps({
                "symbol": info.symbol, "name": info.name, "type": info.type,
                "currency": info.currency, "timezone": info.timezone, "session": info.session,
                "stream": info.stream,
                "added_at": info.added_at.isoformat() if info.added_at else None,
            }))
        return 0
    if not infos:
        print("no symbols registered (pocketquant symbols add EXCHANGE:CODE)")
        return 0
    _print_table(["SYMBOL", "STREAM", "NAME", "TYPE", "TIMEZONE", "SESSION", "ADDED"],
                 [[i.symbol, "yes" if i.stream else "no", i.name or i.description, i.type,
                   i.timezone, i.session, _fmt_time(i.added_at)] for i in infos])
    return 0


def _cmd_symbols_remove(args, settings) -> int:
    symbol = normalize_symbol(args.symbol)
    with _open_store(settings) as store:
        if not store.remove_symbol(symbol):
            print(f"error: {symbol} is not registered", file=sys.stderr)
            return 1
        deleted = store.delete_bars(symbol) if args.delete_bars else 0
    print(f"removed {symbol}" + (f" and {deleted} stored bars" if args.delete_bars else ""))
    return 0


# --------------------------------------------------------------------------- sync
def _cmd_sync(args, settings) -> int:
    from pocketquant_pipelines.sync import source_from_url, sync_history_async
    from pocketquant_pipelines.tradingview.client import TradingViewClient

    symbol = normalize_symbol(args.symbol)
    intervals = [Interval.parse(i) for i in (args.interval or ["1d"])]
    source = source_from_url(settings.tradingview_ws_url)

    async def go(store):
        async with TradingViewClient.from_settings(settings) as client:
            return await asyncio.gather(*(
                sync_history_async(store, client, symbol, interval, args.bars,
                                   first_bars=settings.sync_first_bars,
                                   overlap_bars=settings.sync_overlap_bars, source=source,
                                   clock_skew_s=settings.clock_skew_s)
                for interval in intervals), return_exceptions=True)

    with _open_store(settings) as store:
        if store.get_symbol(symbol) is None:
            print(f"note: {symbol} is not in the registry; bars are stored but Dagster will not "
                  "schedule it (pocketquant symbols add)", file=sys.stderr)
        results = asyncio.run(go(store))
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
            continue
        print(json.dumps(result.metadata()) if args.format == "json" else result.summary())
    return 1 if failed else 0


# --------------------------------------------------------------------------- bars
def _cmd_bars(args, settings) -> int:
    interval = Interval.parse(args.interval)
    symbol = normalize_symbol(args.symbol)
    start = parse_time(args.start, "--start") if args.start else None
    end = parse_time(args.end, "--end") if args.end else None
    if start and end and end <= start:
        raise InvalidInputError(f"--end {args.end!r} must be after --start {args.start!r}")
    if args.format == "parquet" and not args.output:
        raise InvalidInputError("--format parquet needs --output FILE (Parquet is binary)")
    with _open_store(settings) as store:
        frame = store.read_bars(symbol, interval, start=start, end=end, limit=args.limit)
    if args.format == "parquet":
        from pocketquant_pipelines.datasets import frame_to_table
        import pyarrow.parquet as pq

        pq.write_table(frame_to_table(frame, symbol, interval), args.output)
        print(f"wrote {len(frame)} bars to {args.output}", file=sys.stderr)
        return 0
    out = open(args.output, "w", newline="") if args.output else sys.stdout  # noqa: SIM115
    try:
        partial = _write_bars(frame, symbol, interval, args.format, out)
    finally:
        if args.output:
            out.close()
    if len(frame) == 0:
        print(f"no bars stored for {symbol} {interval.value} in that range", file=sys.stderr)
    elif partial and args.format == "table":
        print(f"note: {partial} of {len(frame)} bars are partial (PARTIAL yes): the streamer did not "
              "see them whole, or they were in progress; a historical sync completes them", file=sys.stderr)
    return 0


def _num(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _write_bars(frame, symbol: str, interval: Interval, fmt: str, out) -> int:
    """Write the bars in ``fmt``; returns how many are partial. A partial bar (the streamer did
    not watch it from its start, or it was still in progress when stored) is marked in every
    format, so nobody backtests on one as if it were TradingView's bar."""
    cols = ["open", "high", "low", "close", "volume"]
    has_source, has_partial = "source" in frame.columns, "partial" in frame.columns
    records = [
        (ts.to_pydatetime(), *(_num(row[c]) for c in cols),
         str(row["source"]) if has_source else None,
         bool(row["partial"]) if has_partial else False)
        for ts, row in frame.iterrows()
    ]
    if fmt == "json":
        for t, o, h, l, c, v, src, part in records:
            out.write(json.dumps({"symbol": symbol, "interval": interval.value, "time": t.isoformat(),
                                  "open": o, "high": h, "low": l, "close": c, "volume": v,
                                  "source": src, "partial": part}) + "\n")
    elif fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(["time", *cols, "source", "partial"])
        for t, o, h, l, c, v, src, part in records:
            writer.writerow([t.isoformat(), o, h, l, c, "" if v is None else v, src, "true" if part else "false"])
    else:
        _print_table(["TIME (UTC)", "OPEN", "HIGH", "LOW", "CLOSE", "VOLUME", "SOURCE", "PARTIAL"],
                     [[t.strftime("%Y-%m-%d %H:%M"), f"{o:.6g}", f"{h:.6g}", f"{l:.6g}", f"{c:.6g}",
                       "-" if v is None else f"{v:.6g}", src, "yes" if part else ""]
                      for t, o, h, l, c, v, src, part in records],
                     out)
    return sum(1 for r in records if r[-1])


# --------------------------------------------------------------------------- status
def _cmd_status(args, settings) -> int:
    from pocketquant_pipelines.defs.status import open_instance, sync_status  # imports Dagster

    symbol = normalize_symbol(args.symbol) if args.symbol else None
    instance = open_instance()
    with _open_store(settings) as store:
        rows = sync_status(instance, store)
    if symbol:
        rows = [r for r in rows if r.symbol == symbol]
    if args.format == "json":
        for row in rows:
            print(json.dumps(row.as_dict()))
        return 0
    if not rows:
        print("nothing synced yet (add symbols with `pocketquant symbols add`, then let the "
              "Dagster sensor sync them, or run `pocketquant sync`)")
        return 0
    _print_table(
        ["SYMBOL", "INTERVAL", "STATUS", "LAST SYNC (UTC)", "OUTCOME", "BARS", "FIRST BAR",
         "LAST BAR", "LAST ERROR"],
        [[r.symbol, r.interval, r.status, _fmt_time(r.last_sync_at), r.last_outcome,
          r.bars_stored, _fmt_time(r.first_bar), _fmt_time(r.last_bar),
          (r.last_error or "")[:80] or None] for r in rows])
    return 0
