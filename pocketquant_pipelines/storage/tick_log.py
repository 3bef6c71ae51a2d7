"""The tick audit trail: every tick the streamer saw, per symbol and UTC day, in Parquet.

Layout under ``<data_dir>/ticks/``::

    <YYYY-MM-DD>/part-<writer>-<seq>.parquet   one file per flushed batch, every symbol's ticks
    <YYYY-MM-DD>/_journal.jsonl                one line per batch, one per clean close

A symbol's day is read by filtering the day's files on the ``symbol`` column (each file is
sorted by symbol, so Parquet's row-group statistics skip the rest). One file per batch for all
symbols, not one per symbol: with a thousand streamed symbols, per-symbol files would mean a
thousand small files a second, and their per-file cost (milliseconds each) would dominate the
streamer's CPU; one file of every symbol's batch costs about a microsecond per tick. Parquet
files cannot be appended to, so each batch is its own file, written to a temporary name and
renamed: a file is either whole or absent. The journal is the log's own accounting: a writer that
started and never wrote its ``close`` line ended in a crash, and whatever it held in memory —
at most one batch — is lost; :func:`read_ticks` reports that as a note naming the writer and the
last receipt time it recorded.

Columns: ``symbol``, ``exchange_time`` and ``received_at`` (float epoch seconds, UTC), ``price``,
``volume`` (the per-tick volume the aggregator used), ``cumulative_volume``, ``bid``, ``ask``,
``dropped`` (null when the tick was aggregated, else why it was not: ``future``,
``before_epoch``, ``invalid``, ``late``, ``out_of_session``), ``writer`` (one id per streamer
run: a rebuild restarts aggregation where a new writer starts, as the streamer did), ``seq``.

A retention setting (``TICK_LOG_RETENTION_DAYS``) bounds disk use: day directories older than
that are removed when a writer starts and once a day after.
"""

import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pocketquant_pipelines.errors import InvalidInputError, StoreDamagedError, StoreUnavailableError
from pocketquant_pipelines.logging import get_logger

log = get_logger("storage.tick_log")

SCHEMA = pa.schema([
    ("symbol", pa.string()), ("exchange_time", pa.float64()), ("received_at", pa.float64()), ("price", pa.float64()),
    ("volume", pa.float64()), ("cumulative_volume", pa.float64()), ("bid", pa.float64()),
    ("ask", pa.float64()), ("dropped", pa.string()), ("writer", pa.string()), ("seq", pa.int64()),
])
_COLUMNS = ("symbol", "exchange_time", "received_at", "price", "volume", "cumulative_volume", "bid", "ask", "dropped")
DROP_REASONS = ("future", "before_epoch", "invalid", "late", "out_of_session")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_PENDING = 2_000_000  # ticks held while the disk refuses them (~200 MB) before the oldest go


def day_dir(root: Path, day: date | str) -> Path:
    return Path(root) / (day if isinstance(day, str) else day.isoformat())


@dataclass
class _Pending:
    """One day's ticks not yet written, column by column (appends are cheap)."""

    columns: tuple[list, ...] = field(default_factory=lambda: tuple([] for _ in _COLUMNS))


class TickLogWriter:
    """Appends ticks in memory; :meth:`flush` writes each day's batch as one Parquet file and
    one journal line. Not thread-safe: one streamer, one writer; ``flush`` may run in a
    worker thread while the event loop keeps calling :meth:`record` (it swaps the buffers
    first)."""

    def __init__(self, root: Path, retention_days: int = 7):
        self.root = Path(root)
        self.retention_days = retention_days
        # sortable: writers of one machine order by their start, to the microsecond
        self.writer_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._seq = 0
        self._days_started: set[tuple[str, str]] = set()
        self._write_lock = threading.Lock()  # a periodic write may still run when close() flushes
        self.written = 0
        self.failed_batches = 0
        self.given_up = 0
        self._last_purge = 0.0
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(f"tick log directory {str(self.root)!r}: {exc.strerror or exc}") from None
        self.purge()

    def record(self, symbol: str, exchange_time: float, received_at: float, price: float,
               volume: float | None, cumulative_volume: float | None, bid: float | None,
               ask: float | None, dropped: str | None = None) -> None:
        """Remember one tick (the streamer's hot path: a dict lookup and nine appends). A
        dropped tick is filed under the day it was received: its own time may be absurd."""
        try:
            day = int((exchange_time if dropped is None else received_at) // 86_400)
        except (OverflowError, ValueError):
            day = int(received_at // 86_400)
        pending = self._pending.get(day)
        if pending is None:
            pending = self._pending[day] = _Pending()
        c = pending.columns
        c[0].append(symbol)
        c[1].append(exchange_time)
        c[2].append(received_at)
        c[3].append(price)
        c[4].append(volume)
        c[5].append(cumulative_volume)
        c[6].append(bid)
        c[7].append(ask)
        c[8].append(dropped)

    @property
    def pending(self) -> int:
        return sum(len(p.columns[0]) for p in self._pending.values())

    def take(self) -> dict:
        """Hand over what is pending (call it on the thread that records)."""
        batches, self._pending = self._pending, {}
        return batches

    def write(self, batches: dict) -> tuple[int, dict]:
        """Write taken batches (any thread); (ticks written, batches that failed)."""
        done, failed = 0, {}
        for day_number, pending in batches.items():
            day = (date(1970, 1, 1) + timedelta(days=day_number)).isoformat()
            try:
                done += self._write(day, pending)
            except OSError as exc:
                self.failed_batches += 1
                failed[day_number] = pending
                log.warning("tick_log_write_failed", day=day, error=exc.strerror or str(exc),
                            kept_in_memory=len(pending.columns[0]))
        self.written += done
        if time.monotonic() - self._last_purge > 86_400:
            self.purge()
        return done, failed

    def requeue(self, failed: dict) -> None:
        """Put batches that failed back in front of what arrived since (the recording thread).
        Memory stays bounded: beyond MAX_PENDING ticks the oldest are given up, and counted."""
        for key, older in failed.items():
            kept = self._pending.setdefault(key, _Pending())
            for mine, theirs in zip(kept.columns, older.columns, strict=True):
                mine[:0] = theirs
        excess = self.pending - MAX_PENDING
        if excess > 0:
            for pending in self._pending.values():
                cut = min(excess, len(pending.columns[0]))
                for col in pending.columns:
                    del col[:cut]
                excess -= cut
                self.given_up += cut
                if excess <= 0:
                    break
            log.error("tick_log_full", given_up=self.given_up, hint="the tick log's disk is full or failing")

    def flush(self) -> int:
        """take + write + requeue on one thread; the ticks written."""
        done, failed = self.write(self.take())
        self.requeue(failed)
        return done

    def _write(self, day: str, pending: _Pending) -> int:
        n = len(pending.columns[0])
        if n == 0:
            return 0
        directory = self.root / day
        directory.mkdir(parents=True, exist_ok=True)
        with self._write_lock:
            if day not in self._days_started:
                self._journal(directory, {"event": "start", "writer": self.writer_id, "at": time.time()})
                self._days_started.add(day)
            first_seq = self._seq
            self._seq += n
        arrays = [pa.array(col, type=SCHEMA.field(name).type) for name, col in zip(_COLUMNS, pending.columns, strict=True)]
        arrays.append(pa.array([self.writer_id] * n, type=pa.string()))
        arrays.append(pa.array(range(first_seq, first_seq + n), type=pa.int64()))
        table = pa.Table.from_arrays(arrays, schema=SCHEMA).sort_by([("symbol", "ascending"), ("seq", "ascending")])
        name = f"part-{self.writer_id}-{first_seq:012d}.parquet"
        tmp = directory / f".{name}.tmp"
        # written whole, then renamed: a killed process leaves a complete file or none. No
        # fsync: it would cost milliseconds per file, and a process crash loses nothing the
        # OS already has; only an OS crash can lose the last seconds
        pq.write_table(table, tmp, compression="zstd", row_group_size=16_384)
        os.replace(tmp, directory / name)
        self._journal(directory, {"event": "batch", "writer": self.writer_id, "part": name, "rows": n,
                                  "last_received_at": max(pending.columns[2])})
        return n

    @staticmethod
    def _journal(directory: Path, entry: dict) -> None:
        with open(directory / "_journal.jsonl", "a") as fh:
            fh.write(json.dumps(entry) + "\n")

    def close(self) -> None:
        """Flush, then mark every day this writer touched as cleanly closed."""
        self.flush()
        for day in sorted(self._days_started):
            try:
                self._journal(self.root / day,
                              {"event": "close", "writer": self.writer_id, "at": time.time(),
                               "unwritten": self.pending + self.given_up})
            except OSError as exc:
                log.warning("tick_log_close_failed", day=day, error=exc.strerror or str(exc))

    def purge(self, today: date | None = None) -> int:
        """Remove day directories older than the retention; return how many went."""
        self._last_purge = time.monotonic()
        cutoff = (today or datetime.now(UTC).date()) - timedelta(days=self.retention_days)
        removed = 0
        for day_path in self.root.iterdir() if self.root.is_dir() else ():
            if _DAY.fullmatch(day_path.name) and date.fromisoformat(day_path.name) < cutoff:
                shutil.rmtree(day_path, ignore_errors=True)
                removed += 1
        if removed:
            log.info("tick_log_purged", days=removed, retention_days=self.retention_days)
        return removed


@dataclass(frozen=True)
class TickDay:
    """One symbol-day of the log: the ticks in receipt order and what the journal says."""

    symbol: str
    day: date
    table: pa.Table
    notes: list[str]

    @property
    def accepted(self) -> pa.Table:
        import pyarrow.compute as pc

        return self.table.filter(pc.is_null(self.table.column("dropped")))


def read_ticks(root: Path, symbol: str, day: date | str) -> TickDay:
    """The logged ticks of ``symbol`` on the UTC ``day``, in the order they were received,
    with the journal's notes (an unclean end, batches it names that are missing)."""
    if isinstance(day, str):
        try:
            day = date.fromisoformat(day)
        except ValueError:
            raise InvalidInputError(f"--date {day!r}: expected YYYY-MM-DD (a UTC day)") from None
    directory = day_dir(root, day)
    parts = sorted(directory.glob("part-*.parquet")) if directory.is_dir() else []
    tables = []
    for part in parts:
        try:
            tables.append(pq.read_table(part, schema=SCHEMA, filters=[("symbol", "=", symbol)]))
        except (OSError, pa.ArrowInvalid) as exc:
            raise StoreDamagedError(f"tick log file {str(part)!r} is damaged: {exc}") from None
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    notes = _journal_notes(directory, {p.name for p in parts}) if directory.is_dir() else []
    if table.num_rows == 0 and not notes:
        raise InvalidInputError(f"no ticks logged for {symbol} on {day.isoformat()} (looked in {directory})")
    table = table.sort_by([("writer", "ascending"), ("seq", "ascending")])
    return TickDay(symbol, day, table, notes)


def _journal_notes(directory: Path, parts: set[str]) -> list[str]:
    path = directory / "_journal.jsonl"
    if not path.exists():
        return ["no journal: the log's accounting for this day is missing"]
    writers: dict[str, dict] = {}
    notes = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            notes.append("a torn journal line (the writer was killed while writing it)")
            continue
        w = writers.setdefault(entry.get("writer", "?"), {"closed": False, "last": None, "rows": 0})
        if entry.get("event") == "batch":
            w["rows"] += entry.get("rows", 0)
            w["last"] = entry.get("last_received_at")
            if entry.get("part") not in parts:
                notes.append(f"batch {entry.get('part')} is in the journal but its file is missing")
        elif entry.get("event") == "close":
            w["closed"] = True
            if entry.get("unwritten"):
                notes.append(f"writer {entry['writer']} closed with {entry['unwritten']} ticks it could not write")
    for writer, w in writers.items():
        if not w["closed"]:
            last = (datetime.fromtimestamp(w["last"], UTC).isoformat() if w["last"] is not None else "its start")
            notes.append(f"writer {writer} did not close (the streamer was killed): ticks it received "
                         f"after {last} were not written (at most one batch)")
    return notes


def day_span(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def logged_days(root: Path) -> list[str]:
    root = Path(root)
    return sorted(p.name for p in root.iterdir() if _DAY.fullmatch(p.name)) if root.is_dir() else []


def iter_segments(table: pa.Table) -> Iterable[tuple[str, pa.Table]]:
    """(writer id, its accepted ticks) in the order the writers ran."""
    import pyarrow.compute as pc

    accepted = table.filter(pc.is_null(table.column("dropped")))
    writers = accepted.column("writer").to_pylist()
    order = list(dict.fromkeys(writers))
    for writer in order:
        yield writer, accepted.filter(pc.equal(accepted.column("writer"), writer))
