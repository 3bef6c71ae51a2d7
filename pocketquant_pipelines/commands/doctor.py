"""``pocketquant doctor``: check the stores and say what is wrong and how to recover.

    pocketquant doctor              # bar store, registry, live cache
    pocketquant doctor -f json      # one object per store

Checks the data directory, the bar store (the embedded file: SQLite's integrity check, every
chunk and every bar by the OHLC rules, keys on their interval's bar starts, the registry rows;
MongoDB: reachable, every series readable under the same rules) and the live cache (reachable;
the embedded file's integrity). Nothing is changed. Exit 0 when all is sound, 1 when a
problem was found (each printed with its fix).
"""

from __future__ import annotations

import sqlite3
import sys

import click

from pocketquant_pipelines.commands import formatting as fmt
from pocketquant_pipelines.commands.options import format_option, pass_app
from pocketquant_pipelines.errors import PocketQuantError
from pocketquant_pipelines.storage.sqlite_check import Finding, Report, check_sqlite_bar_store


def _data_dir_report(settings) -> Report | None:
    from pocketquant_pipelines.commands.stores import check_data_dir

    if settings.mongodb_url is not None and settings.redis_url is not None:
        return None  # no embedded store uses it
    report = Report(f"data directory {settings.data_dir}")
    try:
        check_data_dir(settings, write=False)
    except PocketQuantError as exc:
        report.findings.append(Finding(str(exc), "set POCKETQUANT_DATA_DIR to the directory the "
                                       "stores live in (see .env.example)"))
    else:
        report.notes.append("exists and is writable")
    return report


def _mongo_report(settings) -> Report:
    from pocketquant_pipelines.commands.stores import open_bar_store
    from pocketquant_pipelines.settings import redact_url

    report = Report(f"bar store {redact_url(settings.mongodb_url.get_secret_value())} "
                    f"(database {settings.mongodb_database})")
    try:
        store = open_bar_store(settings)
    except PocketQuantError as exc:
        report.findings.append(Finding(str(exc), "start MongoDB or correct MONGODB_URL"))
        return report
    with store:
        try:
            infos = store.list_symbols()
            report.notes.append(f"registry: {len(infos)} symbol(s), all valid")
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            report.findings.append(Finding(f"the registry cannot be read: {exc}",
                                           "remove and re-add the symbols it names"))
        total = bad = 0
        for stats in store.bar_stats():
            symbol, interval = stats["symbol"], stats["interval"]
            try:
                total += len(store.read_bars(symbol, interval))
            except PocketQuantError as exc:
                bad += 1
                report.findings.append(Finding(str(exc), f"`pocketquant sync {symbol} -i {interval.value}` "
                                               "with --bars reaching back to that bar rewrites it"))
        if not bad:
            report.notes.append(f"bars: {total} read back, all valid")
    return report


def _live_cache_report(settings) -> Report:
    from pocketquant_pipelines.commands.stores import open_live_cache
    from pocketquant_pipelines.settings import redact_url

    if settings.redis_url is not None:
        report = Report(f"live cache {redact_url(settings.redis_url.get_secret_value())}")
        try:
            open_live_cache(settings).close()
            report.notes.append("reachable")
        except PocketQuantError as exc:
            report.findings.append(Finding(str(exc), "start Redis or correct REDIS_URL"))
        return report
    path = settings.live_cache_path
    report = Report(f"live cache {path}")
    if not path.exists():
        report.notes.append("no live cache file yet (the streamer creates it)")
        return report
    fix = (f"stop the streamer, delete {path} (and its -wal and -shm files) and start the streamer "
           "again: the cache holds only the last minutes and refills")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check(5)")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        report.findings.append(Finding(f"{path} cannot be read: {exc}", fix))
        return report
    if rows != ["ok"]:
        report.findings.append(Finding(f"SQLite integrity check of {path} failed: {'; '.join(rows)}", fix))
    else:
        report.notes.append("SQLite integrity check: ok")
    return report


def run_checks(settings) -> list[Report]:
    reports = [r for r in [_data_dir_report(settings)] if r is not None]
    if settings.mongodb_url is not None:
        reports.append(_mongo_report(settings))
    else:
        reports.append(check_sqlite_bar_store(settings.bar_store_path))
    reports.append(_live_cache_report(settings))
    return reports


@click.command("doctor")
@format_option(help="output format (json: one object per store)")
@pass_app
def doctor(app, output_format) -> int:
    """Check the stores and say how to recover from what is wrong.

    Checks POCKETQUANT_DATA_DIR, the bar store (SQLite integrity, every bar by the OHLC rules,
    keys aligned to their interval, the registry rows; or MongoDB reachable and readable) and
    the live cache (reachable, intact). Changes nothing. Exits 1 when a problem is found."""
    reports = run_checks(app.settings)
    problems = sum(len(r.findings) for r in reports)
    if output_format == "json":
        fmt.write_json_lines({"store": r.store, "ok": r.ok, "checked": r.notes,
                              "problems": [{"problem": f.what, "fix": f.recovery} for f in r.findings]}
                             for r in reports)
    elif output_format == "csv":
        fmt.write_csv(["store", "status", "detail", "fix"],
                      [*([r.store, "ok", note, None] for r in reports for note in r.notes),
                       *([r.store, "problem", f.what, f.recovery] for r in reports for f in r.findings)])
    else:
        out = sys.stdout
        for r in reports:
            out.write(f"{r.store}: {'ok' if r.ok else f'{len(r.findings)} problem(s)'}\n")
            for note in r.notes:
                out.write(f"  ok: {note}\n")
            for f in r.findings:
                out.write(f"  problem: {f.what}\n    fix: {f.recovery}\n")
    if problems:
        raise PocketQuantError(f"doctor found {problems} problem(s) in the stores (each printed with its fix above)")
    return 0


COMMANDS = [doctor]
