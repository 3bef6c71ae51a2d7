"""SQLite connections shared by the embedded backends: one connection per thread, WAL mode,
a generous busy_timeout (several processes write the same file: Dagster runs, the streamer,
the CLI), and explicit transactions (autocommit mode; we issue BEGIN IMMEDIATE ourselves so
the write lock is taken up front and a read-then-write never dies with SQLITE_BUSY)."""

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_MS = 60_000


class ThreadConnections:
    def __init__(self, path: Path | str, synchronous: str = "NORMAL", setup_sql: str = "",
                 pragmas: tuple[str, ...] = ()):
        self.path = Path(path)
        self._pragmas = pragmas
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._pid = os.getpid()
        if setup_sql:  # idempotent DDL (IF NOT EXISTS), in one transaction
            self.get().executescript(f"BEGIN IMMEDIATE; {setup_sql}; COMMIT;")

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # journal_mode=WAL is persistent in the file; setting it again is cheap and safe.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        for pragma in self._pragmas:
            conn.execute(f"PRAGMA {pragma}")
        return conn

    def get(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError(f"store at {self.path} is closed")
        if os.getpid() != self._pid:
            # Forked child: SQLite connections must not cross fork(). Forget the parent's
            # (closing them here could release the parent's locks) and open our own.
            self._pid = os.getpid()
            self._local = threading.local()
            self._all = []
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                # Close connections of threads that have ended (thread pools come and go).
                alive = []
                for thread, other in self._all:
                    if thread.is_alive():
                        alive.append((thread, other))
                    else:
                        other.close()
                alive.append((threading.current_thread(), conn))
                self._all = alive
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding SQLite's write lock from its first statement."""
        conn = self.get()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            # A COMMIT that fails (SQLITE_FULL: no space for the WAL) leaves the transaction
            # open, and every later BEGIN would fail with "within a transaction" -- a writer
            # that never recovers once space is back. SQLite may also have rolled back by
            # itself already, so roll back only what is still open, and keep the first error.
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot across several statements (WAL)."""
        conn = self.get()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conns, self._all = [c for _, c in self._all], []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()
