"""A full check of the embedded bar store file, for ``pocketquant doctor``.

It reads the file with plain SQLite (never the store's own open path, which would create
tables or migrate a file that may be damaged) and reports, without changing anything:

- SQLite's own ``PRAGMA integrity_check`` (pages, indexes, free list);
- the format marker;
- every chunk of bars: its blob length, its row count and time bounds, times ascending and
  unique inside the chunk's window, valid source codes and partial flags;
- every bar: the OHLC rules (finite prices, low <= open, close <= high, volume >= 0 or none);
- every key: on a whole minute, and a bar start of the symbol's session when the registry
  knows the session (the alignment the streamer and the gap checks use);
- every registry row: JSON that decodes to a symbol entry under its own key.

Each problem comes with what to do about it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.sessions import bar_starts_between_epoch
from pocketquant_pipelines.market.timeutil import utcnow
from pocketquant_pipelines.settings import MAX_BARS
from pocketquant_pipelines.storage.frames import SOURCE_CODES
from pocketquant_pipelines.storage.registry_records import info_from_record
from pocketquant_pipelines.storage.sqlite_store import (
    _LAYOUT, _ROW_BYTES, FORMAT_VERSION, KIND_CANONICAL, chunk_span_us,
)
from pocketquant_pipelines.storage.symbol_session import session_of
from pocketquant_pipelines.storage.validation import describe_us, stored_bar_problems

# Examples per kind of problem in a report: enough to locate the damage, not a flood.
MAX_EXAMPLES = 3
_MINUTE_US = 60_000_000


@dataclass
class Finding:
    """One thing wrong with a store: what, where, and how to recover."""

    what: str
    recovery: str

    def lines(self) -> list[str]:
        return [f"problem: {self.what}", f"  fix: {self.recovery}"]


@dataclass
class Report:
    store: str                      # what was checked, e.g. "bar store /data/bars.sqlite3"
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was checked and found sound

    @property
    def ok(self) -> bool:
        return not self.findings


def _resync_hint(symbol: str, interval: Interval, first_bad_us: int, now: datetime) -> str:
    """The sync that rewrites history's bars from the first damaged one to now."""
    now_us = int(now.timestamp() * 1_000_000)
    bars = (now_us - first_bad_us) // (interval.nominal_seconds * 1_000_000) + 10
    bars = int(min(max(bars, 10), MAX_BARS))
    return (f"`pocketquant sync {symbol} -i {interval.value} --bars {bars}` rewrites them with "
            "TradingView's bars (history replaces whatever a key holds)")


def check_sqlite_bar_store(path: Path, now: datetime | None = None) -> Report:
    path = Path(path)
    now = now or utcnow()
    report = Report(f"bar store {path}")
    backup = (f"stop the writers (streamer, Dagster runs), copy {path} aside, then restore it "
              f"from a backup, or salvage what still reads with `sqlite3 {path} .recover | sqlite3 "
              f"{path.with_suffix('.recovered.sqlite3')}` and move that file in its place; "
              f"or delete {path} (with its -wal and -shm files) and rebuild: `pocketquant symbols "
              "add` per symbol, then `pocketquant sync`")
    if not path.exists():
        report.notes.append(f"no bar store at {path} yet (nothing stored)")
        return report
    if not path.is_file():
        report.findings.append(Finding(f"{path} is not a file", f"move it aside; {backup}"))
        return report
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        report.findings.append(Finding(f"{path} cannot be opened: {exc}", backup))
        return report
    try:
        _check(conn, path, report, backup, now)
    finally:
        conn.close()
    return report


def _check(conn: sqlite3.Connection, path: Path, report: Report, backup: str, now: datetime) -> None:
    try:
        rows = _lines(r[0] for r in conn.execute("PRAGMA integrity_check(20)"))
    except sqlite3.DatabaseError as exc:
        report.findings.append(Finding(f"{path} is not a readable SQLite database: {exc}", backup))
        return
    if rows != ["ok"]:
        shown = "; ".join(rows[:MAX_EXAMPLES]) + (f"; ... ({len(rows)} messages)" if len(rows) > MAX_EXAMPLES else "")
        report.findings.append(Finding(f"SQLite integrity check of {path} failed: {shown}", backup))
    else:
        report.notes.append("SQLite integrity check: ok")
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        report.findings.append(Finding(f"the schema of {path} cannot be read: {exc}", backup))
        return
    missing = {"meta", "series", "bar_chunks", "symbols"} - tables
    if missing:
        report.findings.append(Finding(f"{path} lacks the table(s) {', '.join(sorted(missing))}: it is "
                                       "not a PocketQuant bar store, or it is damaged", backup))
        return
    fmt = _safe(conn, report, backup, "SELECT value FROM meta WHERE key = 'format'")
    if fmt is not None and (not fmt or fmt[0][0] != FORMAT_VERSION):
        report.findings.append(Finding(
            f"{path} has format {fmt[0][0] if fmt else None!r}; this code reads {FORMAT_VERSION!r}",
            "open it once with a PocketQuant version that reads that format, or " + backup))
    infos = _check_registry(conn, report, backup)
    _check_bars(conn, report, backup, infos, now)


def _lines(rows) -> list[str]:
    """SQLite's check output as single-line messages (a row may hold several lines)."""
    out = []
    for row in rows:
        for line in str(row).replace("***", "\n").splitlines():
            line = " ".join(line.split())
            if line and line != "in database main":
                out.append(line)
    return out or ["ok"]


def _safe(conn, report: Report, backup: str, sql: str, params=()) -> list | None:
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.DatabaseError as exc:
        report.findings.append(Finding(f"reading `{sql.split(' WHERE ')[0]}` failed: {exc}", backup))
        return None


def _check_registry(conn, report: Report, backup: str) -> dict:
    rows = _safe(conn, report, backup, "SELECT symbol, stream, record FROM symbols ORDER BY symbol")
    infos, bad = {}, []
    for symbol, stream, record in rows or []:
        try:
            info = info_from_record(json.loads(record))
            if info.symbol != symbol:
                raise ValueError(f"the record names {info.symbol!r}")
            if bool(stream) != info.stream:
                raise ValueError(f"stream column {stream!r} disagrees with the record")
            infos[symbol] = info
        except (ValueError, TypeError, KeyError) as exc:
            bad.append(f"{str(symbol)[:80]!r} ({str(exc)[:120]})")
    if bad:
        report.findings.append(Finding(
            f"{len(bad)} registry row(s) are not valid symbol entries: {', '.join(bad[:MAX_EXAMPLES])}",
            "remove and re-add each: `pocketquant symbols remove SYMBOL` then `pocketquant symbols add "
            "SYMBOL` (its bars stay)"))
    elif rows is not None:
        report.notes.append(f"registry: {len(rows)} symbol(s), all valid")
    return infos


@dataclass
class _SeriesDamage:
    bad_chunks: list[str] = field(default_factory=list)
    bad_bars: list[tuple[int, str]] = field(default_factory=list)   # (time_us, reason)
    misaligned: list[int] = field(default_factory=list)
    first_bad_us: int | None = None

    def note(self, us: int) -> None:
        self.first_bad_us = us if self.first_bad_us is None else min(self.first_bad_us, us)


def _check_bars(conn, report: Report, backup: str, infos: dict, now: datetime) -> None:
    series = _safe(conn, report, backup, "SELECT id, symbol, interval FROM series ORDER BY symbol, interval")
    if series is None:
        return
    before, total = len(report.findings), 0
    for sid, symbol, interval_text in series:
        try:
            interval = Interval(interval_text)
        except ValueError:
            report.findings.append(Finding(f"series {sid} has interval {interval_text!r}, which is not one of ours",
                                           backup))
            continue
        damage = _SeriesDamage()
        times: list[np.ndarray] = []
        try:
            cur = conn.execute("SELECT kind, chunk, n, first_us, last_us, data FROM bar_chunks "
                               "WHERE series_id = ? ORDER BY kind, chunk", (sid,))
            for kind, chunk, n, first_us, last_us, data in cur:
                t = _check_chunk(damage, interval, kind, chunk, n, first_us, last_us, data)
                if t is not None and kind == KIND_CANONICAL:
                    times.append(t)
                    total += len(t)
        except sqlite3.DatabaseError as exc:
            report.findings.append(Finding(f"reading the bars of {symbol} {interval.value} failed: {exc}", backup))
            continue
        if times:
            _check_alignment(damage, symbol, interval, np.concatenate(times), infos.get(symbol))
        _report_series(report, symbol, interval, damage, now, backup)
    if len(report.findings) == before:
        report.notes.append(f"bars: {total} in {len(series)} series, all valid")


def _check_chunk(damage: _SeriesDamage, interval: Interval, kind: int, chunk: int, n: int,
                 first_us: int, last_us: int, data: bytes) -> np.ndarray | None:
    where = f"chunk {chunk} ({'stream copy' if kind else 'bars'})"
    if not isinstance(data, bytes) or not isinstance(n, int) or n <= 0 or len(data) != n * _ROW_BYTES:
        size = len(data) if isinstance(data, bytes) else type(data).__name__
        damage.bad_chunks.append(f"{where}: {size} bytes for {n!r} bars")
        damage.note(int(chunk) * chunk_span_us(interval) if isinstance(chunk, int) else 0)
        return None
    cols, offset = {}, 0
    for name, dt in _LAYOUT:
        cols[name] = np.frombuffer(data, dtype=dt, count=n, offset=offset)
        offset += n * np.dtype(dt).itemsize
    t = cols["time"]
    span = chunk_span_us(interval)
    structural = []
    if np.any(np.diff(t) <= 0):
        structural.append("times not ascending and unique")
    if np.any(np.floor_divide(t, span) != chunk):
        structural.append("times outside the chunk's window")
    if int(t[0]) != first_us or int(t[-1]) != last_us:
        structural.append("first/last times disagree with the row")
    if np.any(cols["source"] >= len(SOURCE_CODES)) or np.any(cols["partial"] > 1):
        structural.append("unknown source codes or partial flags")
    if structural:
        damage.bad_chunks.append(f"{where}: {', '.join(structural)}")
        damage.note(int(t.min()))
    for row, reason in stored_bar_problems(t, cols["open"], cols["high"], cols["low"], cols["close"],
                                           cols["volume"]):
        damage.bad_bars.append((int(t[row]), reason + (" (stream copy)" if kind else "")))
        damage.note(int(t[row]))
    return t


def _check_alignment(damage: _SeriesDamage, symbol: str, interval: Interval, t: np.ndarray, info) -> None:
    off_minute = t[t % _MINUTE_US != 0]
    session, known = session_of(info)
    if known and len(t):
        lo, hi = float(t[0]) / 1e6, float(t[-1]) / 1e6
        starts = np.rint(np.asarray(bar_starts_between_epoch(lo, hi + 1e-6, interval, session)) * 1e6)
        off_session = t[~np.isin(t, starts.astype(np.int64))]
        off_minute = np.union1d(off_minute, off_session)
    for us in off_minute[:1000].tolist():
        damage.misaligned.append(int(us))
        damage.note(int(us))


def _report_series(report: Report, symbol: str, interval: Interval, damage: _SeriesDamage,
                   now: datetime, backup: str) -> None:
    name = f"{symbol} {interval.value}"
    if damage.bad_chunks:
        report.findings.append(Finding(
            f"{len(damage.bad_chunks)} chunk(s) of {name} do not decode as bars: "
            + "; ".join(damage.bad_chunks[:MAX_EXAMPLES]),
            _resync_hint(symbol, interval, damage.first_bad_us or 0, now) + "; if that does not clear it, "
            + backup))
    if damage.bad_bars:
        shown = ", ".join(f"{describe_us(us)} ({reason})" for us, reason in damage.bad_bars[:MAX_EXAMPLES])
        report.findings.append(Finding(
            f"stored bars of {name} break the OHLC rules: {len(damage.bad_bars)} bar(s), e.g. {shown}",
            _resync_hint(symbol, interval, damage.first_bad_us or 0, now)))
    if damage.misaligned:
        shown = ", ".join(describe_us(us) for us in damage.misaligned[:MAX_EXAMPLES])
        report.findings.append(Finding(
            f"{len(damage.misaligned)} key(s) of {name} are not bar starts of its interval and session: {shown}",
            f"re-sync the series (`pocketquant sync {symbol} -i {interval.value}`) after checking the "
            "registry's session (`pocketquant symbols list`); keys that remain misaligned are not "
            "TradingView's bars"))



def quick_check(path: Path, what: str) -> None:
    """SQLite's ``PRAGMA quick_check`` of an existing store file (one pass over its pages,
    without the index cross-checks of integrity_check): raises StoreDamagedError naming the
    file, so a command never reads or writes a damaged file as if it were sound."""
    from pocketquant_pipelines.errors import StoreDamagedError

    path = Path(path)
    if not path.is_file():
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        try:
            rows = _lines(r[0] for r in conn.execute("PRAGMA quick_check(3)"))
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        from pocketquant_pipelines.storage.sqlite_util import store_failure

        failure = store_failure(exc, path, what)  # damaged, or not readable here (full disk, ...)
        if failure is None:
            raise
        raise failure from None
    if rows != ["ok"]:
        detail = "; ".join(rows[:3])
        raise StoreDamagedError(f"{what} {path} is damaged ({detail[:200]}); run `pocketquant doctor` "
                                "for what is wrong and how to recover")
