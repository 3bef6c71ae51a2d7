"""Embedded live cache: a SQLite file (settings.live_cache_path, WAL) shared by every process
on the machine, so the streamer, a strategy and the CLI see one cache with no server.

Tables:

- ``quotes(symbol, data, expires_at)`` and ``current_bars(symbol, interval, data,
  expires_at)``: JSON values with a wall-clock expiry (epoch seconds); reads ignore expired
  rows and writers prune them every few seconds.
- ``messages(id AUTOINCREMENT, channel, data, created_at)``: pub/sub as an append-only log.
  A subscription remembers the newest id when it starts and polls for newer rows every
  ``POLL_INTERVAL_S``, matching channels against its glob patterns (Redis glob syntax).
  SQLite serialises writers, so ids are in commit order and a poller never skips one.
  Messages older than ``MESSAGE_RETENTION_S`` are pruned: like Redis pub/sub, a subscriber
  that falls that far behind loses messages.

synchronous=NORMAL: the data is ephemeral, and commits then cost no fsync (a few hundred
writes/s from the streamer stay cheap).

Disk: the cache usually shares a disk with the bar store, and its data is worth far less. So
its WAL is kept small: ``journal_size_limit`` cuts the WAL file back to ``WAL_LIMIT_BYTES``
whenever a checkpoint resets it, checkpoints run every ``WAL_AUTOCHECKPOINT_PAGES`` pages
(SQLite's default is 1000, ~4 MB), and a write that fails for lack of space gives the WAL
back at once (a TRUNCATE checkpoint) before the error is raised.
"""

import json
import re
import sqlite3
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.storage.live import CURRENT_BAR_TTL_S, QUOTE_TTL_S, LiveCache, LiveMessage, Subscription
from pocketquant_pipelines.storage.live_records import (
    batch_json, check_patterns, current_bars_json, publish_json, quote_json,
)
from pocketquant_pipelines.storage.payloads import bar_from_json
from pocketquant_pipelines.storage.sqlite_util import BUSY_TIMEOUT_MS, ThreadConnections, name_failures
from pocketquant_pipelines.storage.validation import check_symbol, check_ttl

log = get_logger(__name__)

POLL_INTERVAL_S = 0.025
MESSAGE_RETENTION_S = 120.0
PRUNE_EVERY_S = 5.0
_POLL_BATCH = 1000
WAL_LIMIT_BYTES = 1 << 20
WAL_AUTOCHECKPOINT_PAGES = 256
_SQLITE_FULL = 13

_SCHEMA = """
CREATE TABLE IF NOT EXISTS quotes (
    symbol TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS current_bars (
    symbol TEXT NOT NULL,
    interval TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (symbol, interval)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_created_at ON messages (created_at)
"""


def glob_to_regex(pattern: str) -> re.Pattern:
    """Redis glob syntax: ``*``, ``?``, ``[abc]``, ``[^a]``, ``[a-z]``, ``\\x`` escapes."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            j = pattern.find("]", i + 2 if pattern[i + 1:i + 2] == "^" else i + 1)
            if j == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:j]
                neg = body.startswith("^")
                body = body[1:] if neg else body
                body = body.replace("\\", "\\\\").replace("]", "\\]")
                out.append(f"[{'^' if neg else ''}{body}]")
                i = j
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


class EmbeddedSubscription(Subscription):
    def __init__(self, path: Path, patterns: tuple[str, ...]):
        self._conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                     check_same_thread=False)
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._regexes = [glob_to_regex(p) for p in patterns]
        self._buffer: deque[LiveMessage] = deque()
        # Everything committed after this point is ours to deliver.
        self._last_id = self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0]
        self._closed = False

    def _poll(self) -> None:
        rows = self._conn.execute(
            "SELECT id, channel, data FROM messages WHERE id > ? ORDER BY id LIMIT ?",
            (self._last_id, _POLL_BATCH)).fetchall()
        for msg_id, channel, raw in rows:
            self._last_id = msg_id
            if any(r.fullmatch(channel) for r in self._regexes):
                try:
                    self._buffer.append(LiveMessage(channel, json.loads(raw)))
                except ValueError:
                    log.warning("live_message_malformed", channel=channel)

    def get(self, timeout: float | None = None) -> LiveMessage | None:
        if self._closed:
            raise RuntimeError("subscription is closed")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._buffer:
                return self._buffer.popleft()
            self._poll()
            if self._buffer:
                return self._buffer.popleft()
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return None
            time.sleep(POLL_INTERVAL_S if deadline is None else min(POLL_INTERVAL_S, deadline - now))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._conn.close()


class EmbeddedLiveCache(LiveCache):
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._db = ThreadConnections(self.path, synchronous="NORMAL", setup_sql=_SCHEMA, pragmas=(
            f"journal_size_limit = {WAL_LIMIT_BYTES}", f"wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}"))
        self._next_prune = 0.0

    def _give_back_wal(self, exc: sqlite3.Error) -> None:
        """After SQLITE_FULL: checkpoint and truncate the WAL so the space it holds is free for
        the bar store (best effort: readers may keep part of it a moment longer)."""
        if getattr(exc, "sqlite_errorcode", None) != _SQLITE_FULL:
            return
        try:
            self._db.get().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass

    def __repr__(self) -> str:
        return f"EmbeddedLiveCache({str(self.path)!r})"

    def _maybe_prune(self, conn: sqlite3.Connection, now: float) -> None:
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY_S
        conn.execute("DELETE FROM messages WHERE created_at < ?", (now - MESSAGE_RETENTION_S,))
        conn.execute("DELETE FROM quotes WHERE expires_at <= ?", (now,))
        conn.execute("DELETE FROM current_bars WHERE expires_at <= ?", (now,))

    def set_quote(self, symbol: str, quote: Mapping[str, object], ttl_s: float = QUOTE_TTL_S) -> None:
        symbol, raw = quote_json(symbol, quote)
        ttl = check_ttl(ttl_s)
        now = time.time()
        conn = self._db.get()
        conn.execute("INSERT OR REPLACE INTO quotes (symbol, data, expires_at) VALUES (?, ?, ?)",
                     (symbol, raw, now + ttl))
        self._maybe_prune(conn, now)

    def get_quote(self, symbol: str) -> dict | None:
        row = self._db.get().execute(
            "SELECT data FROM quotes WHERE symbol = ? AND expires_at > ?",
            (check_symbol(symbol), time.time())).fetchone()
        return None if row is None else json.loads(row[0])

    def all_quotes(self) -> dict[str, dict]:
        rows = self._db.get().execute("SELECT symbol, data FROM quotes WHERE expires_at > ?",
                                      (time.time(),)).fetchall()
        return {symbol: json.loads(raw) for symbol, raw in rows}

    def set_current_bars(self, symbol: str, bars: Sequence[Bar],
                         ttl_s: float = CURRENT_BAR_TTL_S) -> None:
        symbol, items = current_bars_json(symbol, bars)
        ttl = check_ttl(ttl_s)
        if not items:
            return
        now = time.time()
        with self._db.write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO current_bars (symbol, interval, data, expires_at)"
                " VALUES (?, ?, ?, ?)",
                [(symbol, interval.value, raw, now + ttl) for interval, raw in items])
            self._maybe_prune(conn, now)

    def get_current_bars(self, symbol: str) -> dict[Interval, Bar]:
        rows = self._db.get().execute(
            "SELECT interval, data FROM current_bars WHERE symbol = ? AND expires_at > ?",
            (check_symbol(symbol), time.time())).fetchall()
        return {Interval(iv): bar_from_json(raw) for iv, raw in rows}

    def publish(self, channel: str, data: Mapping[str, object]) -> None:
        channel, raw = publish_json(channel, data)
        now = time.time()
        conn = self._db.get()
        conn.execute("INSERT INTO messages (channel, data, created_at) VALUES (?, ?, ?)",
                     (channel, raw, now))
        self._maybe_prune(conn, now)

    def write_batch(self, quotes=None, current_bars=None, messages=(), quote_ttl_s=QUOTE_TTL_S,
                    bar_ttl_s=CURRENT_BAR_TTL_S) -> None:
        """One transaction (one commit) for the whole batch; messages get consecutive ids."""
        q, b, m, quote_ttl, bar_ttl = batch_json(quotes, current_bars, messages, quote_ttl_s, bar_ttl_s)
        if not (q or b or m):
            return
        try:
            self._write_batch(q, b, m, quote_ttl, bar_ttl)
        except sqlite3.Error as exc:
            self._give_back_wal(exc)
            raise

    def _write_batch(self, q, b, m, quote_ttl, bar_ttl) -> None:
        now = time.time()
        with self._db.write() as conn:
            if q:
                conn.executemany(
                    "INSERT OR REPLACE INTO quotes (symbol, data, expires_at) VALUES (?, ?, ?)",
                    [(symbol, raw, now + quote_ttl) for symbol, raw in q])
            rows = [(symbol, interval.value, raw, now + bar_ttl)
                    for symbol, items in b for interval, raw in items]
            if rows:
                conn.executemany(
                    "INSERT OR REPLACE INTO current_bars (symbol, interval, data, expires_at)"
                    " VALUES (?, ?, ?, ?)", rows)
            if m:
                conn.executemany(
                    "INSERT INTO messages (channel, data, created_at) VALUES (?, ?, ?)",
                    [(channel, raw, now) for channel, raw in m])
            self._maybe_prune(conn, now)

    def subscribe(self, *patterns: str) -> Subscription:
        return EmbeddedSubscription(self.path, check_patterns(patterns))

    def ping(self) -> bool:
        return self._db.ping()

    def close(self) -> None:
        self._db.close()


name_failures(EmbeddedLiveCache, "live cache")
