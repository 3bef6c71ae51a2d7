"""Embedded bar store: one SQLite file (WAL), bars kept as columnar chunks.

Why chunks and not one row per bar: Python's sqlite3 hands back one tuple per row, so a 1M-bar
read of a row table costs ~10x a Parquet read however it is written. Here each
(symbol, interval) series is cut into fixed time windows of ``CHUNK_BARS`` nominal bars; one
row per window holds the window's bars as packed little-endian numpy columns. A read fetches
~1000 rows for 1M bars and concatenates columns; an upsert loads the touched windows, merges
with numpy (which also yields the inserted / updated / unchanged counts) and writes back only
windows that changed. The store key stays (symbol, interval, bar start) — unique by
construction inside a window.

Schema (``PRAGMA user_version``-free; see the ``meta`` table's ``format``, now ``2``):

- ``series(id, symbol, interval)`` — one id per (symbol, interval), never reused.
- ``bar_chunks(series_id, kind, chunk, n, first_us, last_us, data)`` — kind 0 = canonical
  bars, kind 1 = the stream shadow copy; ``chunk = floor(time_us / span_us)``.
- ``ingest_log(seq AUTOINCREMENT, symbol, interval, source, first_us, last_us, count,
  written_at_us)`` — written in the same transaction as the bars.
- ``history_coverage(series_id, first_us, last_us, bars, start_us)`` — per series, the first
  and last bar start history wrote and how many keys hold history's row, maintained in the
  same transaction as every history upsert; ``start_us`` is where the server said the
  series' history begins (NULL until it said so). Format 1 files get it on first open
  (:func:`_migrate`), computed from their chunks.
- ``symbols(symbol, stream, record JSON)`` — the registry.

Times are integer epoch microseconds (UTC). Concurrency: every write runs in
``BEGIN IMMEDIATE`` (the file's single write lock, taken up front, waiting up to
busy_timeout), so writers from several processes serialise and readers see snapshots (WAL).
Because writers serialise, ingest ``seq`` order is commit order: a reader paging by seq
never skips an entry that commits later.
"""

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from pocketquant_pipelines.errors import StoreDamagedError, UnknownSymbolError
from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.bar_columns import BarColumns
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.timeutil import utcnow
from pocketquant_pipelines.storage.bars import HistoryCoverage, Source, UpsertResult
from pocketquant_pipelines.storage.durable import DurableStore
from pocketquant_pipelines.storage.frames import (
    HISTORY_CODE, PRICE_FIELDS, SOURCE_CODE, bars_table, check_source, coverage_of_table,
    empty_bars_table, prepare_upsert, replace_mask, table_to_frame,
)
from pocketquant_pipelines.storage.ingest import IngestEntry, IngestPage
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.storage.registry_records import (
    check_update_fields, info_from_record, info_to_record, prepare_new,
)
from pocketquant_pipelines.storage.sqlite_util import ThreadConnections, name_failures
from pocketquant_pipelines.storage.validation import (
    check_interval, check_limit, check_page_limit, check_stored_bars, check_symbol,
    format_seq_cursor, from_us, parse_seq_cursor, time_range_us, to_us,
)

log = get_logger(__name__)

FORMAT_VERSION = "2"
CHUNK_BARS = 1024
KIND_CANONICAL = 0
KIND_STREAM = 1

# Column layout of a chunk blob: each column stored whole, one after another.
_LAYOUT: tuple[tuple[str, str], ...] = (
    ("time", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"), ("close", "<f8"),
    ("volume", "<f8"), ("written_at", "<i8"), ("source", "u1"), ("partial", "u1"),
)
_ROW_BYTES = sum(np.dtype(d).itemsize for _, d in _LAYOUT)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('format', '2');
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    symbol TEXT NOT NULL,
    interval TEXT NOT NULL,
    UNIQUE (symbol, interval)
);
CREATE TABLE IF NOT EXISTS bar_chunks (
    series_id INTEGER NOT NULL REFERENCES series(id),
    kind INTEGER NOT NULL,
    chunk INTEGER NOT NULL,
    n INTEGER NOT NULL,
    first_us INTEGER NOT NULL,
    last_us INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (series_id, kind, chunk)
);
CREATE TABLE IF NOT EXISTS ingest_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    symbol TEXT NOT NULL,
    interval TEXT NOT NULL,
    source TEXT NOT NULL,
    first_us INTEGER NOT NULL,
    last_us INTEGER NOT NULL,
    count INTEGER NOT NULL,
    written_at_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ingest_log_by_source ON ingest_log (source, seq);
CREATE TABLE IF NOT EXISTS symbols (
    symbol TEXT PRIMARY KEY,
    stream INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history_coverage (
    series_id INTEGER PRIMARY KEY REFERENCES series(id),
    first_us INTEGER NOT NULL,
    last_us INTEGER NOT NULL,
    bars INTEGER NOT NULL,
    start_us INTEGER
)
"""

_COVER = (
    "INSERT INTO history_coverage (series_id, first_us, last_us, bars) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (series_id) DO UPDATE SET first_us = MIN(first_us, excluded.first_us), "
    "last_us = MAX(last_us, excluded.last_us), bars = bars + excluded.bars"
)

_UPSERT_CHUNK = (
    "INSERT INTO bar_chunks (series_id, kind, chunk, n, first_us, last_us, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (series_id, kind, chunk) DO UPDATE SET "
    "n = excluded.n, first_us = excluded.first_us, last_us = excluded.last_us, data = excluded.data"
)


def chunk_span_us(interval: Interval) -> int:
    return interval.nominal_seconds * 1_000_000 * CHUNK_BARS


def encode_chunk(cols: dict[str, np.ndarray]) -> bytes:
    return b"".join(np.ascontiguousarray(cols[name], dtype=dt).tobytes() for name, dt in _LAYOUT)


def decode_chunk(blob: bytes, n: int) -> dict[str, np.ndarray]:
    """Read-only views into ``blob``."""
    if len(blob) != n * _ROW_BYTES:
        raise StoreDamagedError(f"a bar chunk holds {len(blob)} bytes for {n} bars (expected "
                                f"{n * _ROW_BYTES}); run `pocketquant doctor`")
    out, offset = {}, 0
    for name, dt in _LAYOUT:
        out[name] = np.frombuffer(blob, dtype=dt, count=n, offset=offset)
        offset += n * np.dtype(dt).itemsize
    return out


class Merged(NamedTuple):
    cols: dict[str, np.ndarray] | None  # the chunk after the merge; None when nothing changed
    inserted: int
    updated: int
    unchanged: int
    refused: int          # existing rows that outrank the write (kept as they are)
    changed: np.ndarray   # times of the inserted and updated keys, ascending
    promoted: int         # existing rows of another source replaced by a history write


def merge_chunk(existing: dict[str, np.ndarray] | None, new: dict[str, np.ndarray],
                now_us: int, source_code: int, partial: bool) -> Merged:
    """Merge sorted, unique ``new`` bars into a chunk, by the precedence rule of
    ``frames.replace_mask``.

    A key is unchanged only when prices, volume (NaN == NaN), source and the partial flag are
    all identical; so a partial row replaced by a final one counts as updated.
    """
    new_t = new["time"]
    m = len(new_t)
    if existing is None or len(existing["time"]) == 0:
        cols = {f: new[f] for f in ("time", *PRICE_FIELDS)}
        cols["written_at"] = np.full(m, now_us, np.int64)
        cols["source"] = np.full(m, source_code, np.uint8)
        cols["partial"] = np.full(m, partial, np.uint8)
        return Merged(cols, m, 0, 0, 0, new_t, 0)
    ex_t = existing["time"]
    pos = np.searchsorted(ex_t, new_t)
    posc = np.minimum(pos, len(ex_t) - 1)
    found = (pos < len(ex_t)) & (ex_t[posc] == new_t)
    fi = posc[found]
    ex_source = existing["source"][fi]
    allowed = replace_mask(ex_source, existing["partial"][fi], source_code, partial)
    same = allowed & (ex_source == source_code) & (existing["partial"][fi] == partial)
    for f in ("open", "high", "low", "close"):
        same &= existing[f][fi] == new[f][found]
    ev, nv = existing["volume"][fi], new["volume"][found]
    same &= (ev == nv) | (np.isnan(ev) & np.isnan(nv))
    write = allowed & ~same
    n_refused = int(np.count_nonzero(~allowed))
    n_unchanged = int(np.count_nonzero(same))
    n_updated = int(np.count_nonzero(write))
    n_inserted = m - len(fi)
    promoted = int(np.count_nonzero(write & (ex_source != source_code))) if source_code == HISTORY_CODE else 0
    if n_updated == 0 and n_inserted == 0:
        return Merged(None, 0, 0, n_unchanged, n_refused, new_t[:0], 0)
    changed = ~found
    changed[found] = write
    cols = {name: np.array(existing[name]) for name, _ in _LAYOUT}  # writable copies
    if n_updated:
        dst = fi[write]
        src = np.flatnonzero(found)[write]
        for f in PRICE_FIELDS:
            cols[f][dst] = new[f][src]
        cols["written_at"][dst] = now_us
        cols["source"][dst] = source_code
        cols["partial"][dst] = partial
    if n_inserted:
        ins = ~found
        at = pos[ins]  # new_t is sorted, so inserting before these positions keeps order
        for f in ("time", *PRICE_FIELDS):
            cols[f] = np.insert(cols[f], at, new[f][ins])
        cols["written_at"] = np.insert(cols["written_at"], at, now_us)
        cols["source"] = np.insert(cols["source"], at, source_code)
        cols["partial"] = np.insert(cols["partial"], at, partial)
    return Merged(cols, n_inserted, n_updated, n_unchanged, n_refused, new_t[changed], promoted)


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring an older file up to FORMAT_VERSION, inside one write transaction (a concurrent
    opener waits on the lock, then finds the work done)."""
    fmt = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    if fmt is not None and fmt[0] == "1":
        # Format 2 added history_coverage (the schema has just created it, empty): fill it
        # from the canonical chunks, where source code 0 marks history's rows.
        rows = []
        for (sid,) in conn.execute("SELECT id FROM series").fetchall():
            first = last = None
            bars = 0
            for n, data in conn.execute("SELECT n, data FROM bar_chunks WHERE series_id = ?"
                                        " AND kind = ? ORDER BY chunk", (sid, KIND_CANONICAL)):
                cols = decode_chunk(data, n)
                t = cols["time"][cols["source"] == HISTORY_CODE]
                if len(t):
                    first = int(t[0]) if first is None else first
                    last = int(t[-1])
                    bars += len(t)
            if bars:
                rows.append((sid, first, last, bars))
        conn.executemany(_COVER, rows)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'format'", (FORMAT_VERSION,))
        log.info("bar_store_migrated", store="sqlite", path=str(path), to_format=FORMAT_VERSION,
                 series_with_history=len(rows))


class SQLiteBarStore(DurableStore):
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._db = ThreadConnections(self.path, synchronous="FULL", setup_sql=_SCHEMA)
        with self._db.write() as conn:
            _migrate(conn, self.path)
        fmt = self._db.get().execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if fmt is None or fmt[0] != FORMAT_VERSION:
            raise RuntimeError(f"bar store {self.path} has format {fmt!r}; this code reads {FORMAT_VERSION!r}")
        self._sids: dict[tuple[str, Interval], int] = {}

    def __repr__(self) -> str:
        return f"SQLiteBarStore({str(self.path)!r})"

    # --- series ids ---------------------------------------------------------------------------
    def _series_id(self, conn: sqlite3.Connection, symbol: str, interval: Interval,
                   create: bool) -> int | None:
        key = (symbol, interval)
        sid = self._sids.get(key)
        if sid is not None:
            return sid
        if create:
            conn.execute("INSERT OR IGNORE INTO series (symbol, interval) VALUES (?, ?)",
                         (symbol, interval.value))
        row = conn.execute("SELECT id FROM series WHERE symbol = ? AND interval = ?",
                           (symbol, interval.value)).fetchone()
        if row is None:
            return None
        self._sids[key] = row[0]  # series rows are never deleted, so caching is safe
        return row[0]

    # --- bars ---------------------------------------------------------------------------------
    def upsert_bars(self, bars: Sequence[Bar] | BarColumns, source: Source = Source.HISTORY,
                    partial: bool = False) -> UpsertResult:
        source, batch, now_us = prepare_upsert(bars, source, partial)
        if not batch:
            return UpsertResult()
        code = SOURCE_CODE[source]
        total = UpsertResult()
        entries = []
        with self._db.write() as conn:
            for cols in batch:
                symbol, interval = cols.symbol, cols.interval
                sid = self._series_id(conn, symbol, interval, create=True)
                new = {"time": cols.time_us, "open": cols.open, "high": cols.high,
                       "low": cols.low, "close": cols.close, "volume": cols.volume}
                span = chunk_span_us(interval)
                result, changed, promoted = self._merge_series(conn, sid, KIND_CANONICAL, span,
                                                               new, now_us, code, partial)
                if source is Source.STREAM:
                    self._merge_series(conn, sid, KIND_STREAM, span, new, now_us, code, partial)
                else:
                    # every key of a history batch now holds history's row (history always
                    # wins): the coverage grows by the keys that were not history's before
                    t = new["time"]
                    conn.execute(_COVER, (sid, int(t[0]), int(t[-1]), result.inserted + promoted))
                total = total + result
                if result.written:
                    entries.append((symbol, interval.value, source.value, int(changed[0]),
                                    int(changed[1]), result.written, now_us))
            if entries:
                conn.executemany(
                    "INSERT INTO ingest_log (symbol, interval, source, first_us, last_us, count,"
                    " written_at_us) VALUES (?, ?, ?, ?, ?, ?, ?)", entries)
        log.debug("bars_upserted", store="sqlite", source=source.value, series=len(batch),
                  inserted=total.inserted, updated=total.updated, unchanged=total.unchanged,
                  refused=total.refused)
        return total

    def _merge_series(self, conn, sid, kind, span, new, now_us, code, partial):
        t = new["time"]
        chunk_ids = np.floor_divide(t, span)
        lo, hi = int(chunk_ids[0]), int(chunk_ids[-1])
        existing = {
            chunk: decode_chunk(data, n)
            for chunk, n, data in conn.execute(
                "SELECT chunk, n, data FROM bar_chunks WHERE series_id = ? AND kind = ?"
                " AND chunk BETWEEN ? AND ?", (sid, kind, lo, hi))
        }
        bounds = np.flatnonzero(np.diff(chunk_ids)) + 1
        starts = [0, *bounds.tolist()]
        ends = [*bounds.tolist(), len(t)]
        writes = []
        ins = upd = same = refused = promoted = 0
        first = last = None
        for s, e in zip(starts, ends):
            chunk = int(chunk_ids[s])
            part = {f: v[s:e] for f, v in new.items()}
            merged = merge_chunk(existing.get(chunk), part, now_us, code, partial)
            ins, upd, same = ins + merged.inserted, upd + merged.updated, same + merged.unchanged
            refused, promoted = refused + merged.refused, promoted + merged.promoted
            cols = merged.cols
            if cols is None:
                continue
            if first is None:
                first = int(merged.changed[0])
            last = int(merged.changed[-1])
            writes.append((sid, kind, chunk, len(cols["time"]), int(cols["time"][0]),
                           int(cols["time"][-1]), encode_chunk(cols)))
        if writes:
            conn.executemany(_UPSERT_CHUNK, writes)
        return UpsertResult(ins, upd, same, refused), (first, last), promoted

    def _read_table(self, symbol, interval, start, end, limit, kind) -> pa.Table:
        symbol, interval = check_symbol(symbol), check_interval(interval)
        lo, hi = time_range_us(start, end)
        limit = check_limit(limit)
        if hi <= lo or limit == 0:
            return empty_bars_table()
        conn = self._db.get()
        sid = self._series_id(conn, symbol, interval, create=False)
        if sid is None:
            return empty_bars_table()
        span = chunk_span_us(interval)
        c_lo, c_hi = lo // span, (hi - 1) // span
        sql = ("SELECT n, data, first_us, last_us FROM bar_chunks WHERE series_id = ? AND kind = ?"
               " AND chunk BETWEEN ? AND ? ORDER BY chunk")
        params = (sid, kind, max(c_lo, -(2**63)), min(c_hi, 2**63 - 1))
        if limit is None:
            chunks = [decode_chunk(data, n) for n, data, _, _ in conn.execute(sql, params)]
        else:
            # Latest N: walk windows newest first and stop once enough in-range bars are seen.
            chunks, seen = [], 0
            cur = conn.execute(sql + " DESC", params)
            for n, data, first_us, last_us in cur:
                cols = decode_chunk(data, n)
                chunks.append(cols)
                if first_us >= lo and last_us < hi:
                    seen += n
                else:
                    t = cols["time"]
                    seen += int(np.count_nonzero((t >= lo) & (t < hi)))
                if seen >= limit:
                    break
            # Reset the statement now: a half-read SELECT keeps its read snapshot open, and
            # this thread's next read would not see newer commits.
            cur.close()
            chunks.reverse()
        if not chunks:
            return empty_bars_table()
        cols = {name: (np.concatenate([c[name] for c in chunks]) if len(chunks) > 1
                       else chunks[0][name]) for name, _ in _LAYOUT}
        t = cols["time"]
        if len(t) and (t[0] < lo or t[-1] >= hi):
            keep = slice(int(np.searchsorted(t, lo, "left")), int(np.searchsorted(t, hi, "left")))
            cols = {k: v[keep] for k, v in cols.items()}
        if limit is not None and len(cols["time"]) > limit:
            cols = {k: v[-limit:] for k, v in cols.items()}
        check_stored_bars(symbol, interval, cols["time"], cols["open"], cols["high"], cols["low"],
                          cols["close"], cols["volume"])
        return bars_table(cols["time"], cols["open"], cols["high"], cols["low"], cols["close"],
                          cols["volume"], cols["source"], cols["partial"])

    def read_bars_table(self, symbol: str, interval: Interval | str, start: datetime | None = None,
                        end: datetime | None = None, limit: int | None = None) -> pa.Table:
        return self._read_table(symbol, interval, start, end, limit, KIND_CANONICAL)

    def read_stream_bars(self, symbol: str, interval: Interval | str,
                         start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        return table_to_frame(self._read_table(symbol, interval, start, end, None, KIND_STREAM))

    def _series_aggregate(self, symbol, interval, expr: str):
        symbol, interval = check_symbol(symbol), check_interval(interval)
        return self._db.get().execute(
            f"SELECT {expr} FROM bar_chunks c JOIN series s ON s.id = c.series_id"
            " WHERE s.symbol = ? AND s.interval = ? AND c.kind = 0",
            (symbol, interval.value)).fetchone()[0]

    def last_bar_time(self, symbol: str, interval: Interval | str) -> datetime | None:
        last = self._series_aggregate(symbol, interval, "MAX(c.last_us)")
        return None if last is None else from_us(last)

    def count_bars(self, symbol: str, interval: Interval | str) -> int:
        return int(self._series_aggregate(symbol, interval, "COALESCE(SUM(c.n), 0)"))

    def history_coverage(self, symbol: str, interval: Interval | str, start: datetime | None = None,
                         end: datetime | None = None) -> HistoryCoverage | None:
        symbol, interval = check_symbol(symbol), check_interval(interval)
        lo, hi = time_range_us(start, end)
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT h.first_us, h.last_us, h.bars, h.start_us FROM history_coverage h"
                " JOIN series s ON s.id = h.series_id WHERE s.symbol = ? AND s.interval = ?",
                (symbol, interval.value)).fetchone()
            if row is None or hi <= lo:
                return None
            first, last, bars, start_us = row
            history_start = None if start_us is None else from_us(start_us)
            if lo <= first and last < hi:
                return HistoryCoverage(from_us(first), from_us(last), int(bars), history_start)
            # part of the record lies outside the range: count history's rows inside it
            table = self._read_table(symbol, interval, start, end, None, KIND_CANONICAL)
        return coverage_of_table(table, history_start)

    def record_history_start(self, symbol: str, interval: Interval | str,
                             first_time: datetime) -> bool:
        symbol, interval = check_symbol(symbol), check_interval(interval)
        start_us = to_us(first_time, "first_time")
        with self._db.write() as conn:
            conn.execute(
                "UPDATE history_coverage SET start_us = ? WHERE series_id ="
                " (SELECT id FROM series WHERE symbol = ? AND interval = ?)",
                (start_us, symbol, interval.value))
            return conn.execute("SELECT changes()").fetchone()[0] == 1

    def bar_stats(self) -> list[dict]:
        rows = self._db.get().execute(
            "SELECT s.symbol, s.interval, SUM(c.n), MIN(c.first_us), MAX(c.last_us)"
            " FROM bar_chunks c JOIN series s ON s.id = c.series_id WHERE c.kind = 0"
            " GROUP BY s.id ORDER BY s.symbol, s.interval").fetchall()
        return [{"symbol": sym, "interval": Interval(iv), "count": int(n),
                 "first_time": from_us(first), "last_time": from_us(last)}
                for sym, iv, n, first, last in rows]

    def delete_bars(self, symbol: str, interval: Interval | str | None = None) -> int:
        """Delete canonical bars, their stream shadow and the history coverage record;
        returns canonical bars deleted."""
        symbol = check_symbol(symbol)
        where, params = "s.symbol = ?", [symbol]
        if interval is not None:
            where += " AND s.interval = ?"
            params.append(check_interval(interval).value)
        with self._db.write() as conn:
            sids = [r[0] for r in conn.execute(f"SELECT s.id FROM series s WHERE {where}", params)]
            if not sids:
                return 0
            marks = ",".join("?" * len(sids))
            deleted = conn.execute(
                f"SELECT COALESCE(SUM(n), 0) FROM bar_chunks WHERE kind = 0 AND series_id IN ({marks})",
                sids).fetchone()[0]
            conn.execute(f"DELETE FROM bar_chunks WHERE series_id IN ({marks})", sids)
            conn.execute(f"DELETE FROM history_coverage WHERE series_id IN ({marks})", sids)
        log.info("bars_deleted", store="sqlite", symbol=symbol,
                 interval=None if interval is None else str(interval), count=int(deleted))
        return int(deleted)

    # --- ingest cursor ------------------------------------------------------------------------
    def ingest_since(self, cursor: str | None, limit: int = 1000,
                     source: Source | None = None) -> IngestPage:
        after = parse_seq_cursor(cursor)
        limit = check_page_limit(limit)
        sql = ("SELECT seq, symbol, interval, source, first_us, last_us, count, written_at_us"
               " FROM ingest_log WHERE seq > ?")
        params: list = [after]
        if source is not None:
            sql += " AND source = ?"
            params.append(check_source(source).value)
        rows = self._db.get().execute(sql + " ORDER BY seq LIMIT ?", (*params, limit)).fetchall()
        entries = [
            IngestEntry(seq, sym, Interval(iv), Source(src), from_us(first), from_us(last), n,
                        from_us(written))
            for seq, sym, iv, src, first, last, n, written in rows
        ]
        return IngestPage(entries, format_seq_cursor(entries[-1].seq if entries else after))

    def latest_ingest_cursor(self) -> str:
        row = self._db.get().execute("SELECT COALESCE(MAX(seq), 0) FROM ingest_log").fetchone()
        return format_seq_cursor(row[0])

    # --- symbol registry ----------------------------------------------------------------------
    def add_symbol(self, info: SymbolInfo) -> bool:
        info = prepare_new(info)
        with self._db.write() as conn:
            conn.execute("INSERT OR IGNORE INTO symbols (symbol, stream, record) VALUES (?, ?, ?)",
                         (info.symbol, int(info.stream), json.dumps(info_to_record(info))))
            added = conn.execute("SELECT changes()").fetchone()[0] == 1
        if added:
            log.info("symbol_added", store="sqlite", symbol=info.symbol, stream=info.stream)
        return added

    def get_symbol(self, symbol: str) -> SymbolInfo | None:
        row = self._db.get().execute("SELECT record FROM symbols WHERE symbol = ?",
                                     (check_symbol(symbol),)).fetchone()
        return None if row is None else info_from_record(json.loads(row[0]))

    def list_symbols(self, stream_only: bool = False) -> list[SymbolInfo]:
        sql = "SELECT record FROM symbols" + (" WHERE stream = 1" if stream_only else "")
        return [info_from_record(json.loads(r[0]))
                for r in self._db.get().execute(sql + " ORDER BY symbol")]

    def update_symbol(self, symbol: str, **fields: object) -> SymbolInfo:
        symbol = check_symbol(symbol)
        changes = check_update_fields(fields)
        with self._db.write() as conn:
            row = conn.execute("SELECT record FROM symbols WHERE symbol = ?", (symbol,)).fetchone()
            if row is None:
                raise UnknownSymbolError(symbol)
            record = json.loads(row[0])
            record.update(changes)
            record["updated_at"] = to_us(utcnow())
            info = info_from_record(record)
            conn.execute("UPDATE symbols SET stream = ?, record = ? WHERE symbol = ?",
                         (int(info.stream), json.dumps(info_to_record(info)), symbol))
        log.info("symbol_updated", store="sqlite", symbol=symbol, fields=sorted(changes))
        return info

    def remove_symbol(self, symbol: str) -> bool:
        symbol = check_symbol(symbol)
        with self._db.write() as conn:
            conn.execute("DELETE FROM symbols WHERE symbol = ?", (symbol,))
            removed = conn.execute("SELECT changes()").fetchone()[0] == 1
        if removed:
            log.info("symbol_removed", store="sqlite", symbol=symbol)
        return removed

    # --- lifecycle ----------------------------------------------------------------------------
    def ping(self) -> bool:
        return self._db.ping()

    def close(self) -> None:
        self._db.close()


# a damaged, unwritable or full file is one error naming it (see sqlite_util.store_failure)
name_failures(SQLiteBarStore, "bar store")
