"""SQLite connections shared by the embedded backends: one connection per thread, WAL mode,
a generous busy_timeout (several processes write the same file: Dagster runs, the streamer,
the CLI), and explicit transactions (autocommit mode; we issue BEGIN IMMEDIATE ourselves so
the write lock is taken up front and a read-then-write never dies with SQLITE_BUSY)."""

import functools
import os
import sqlite3
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pocketquant_pipelines.errors import PocketQuantError, StoreDamagedError, StoreUnavailableError

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
        with self._transaction("BEGIN IMMEDIATE") as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot across several statements (WAL)."""
        with self._transaction("BEGIN") as conn:
            yield conn

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        conn = self.get()
        conn.execute(begin)
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

    def ping(self) -> bool:
        try:
            return self.get().execute("SELECT 1").fetchone() == (1,)
        except (sqlite3.Error, RuntimeError):
            return False

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


# SQLite's words for a file it cannot read as a database, and for a file it cannot write.
_DAMAGE = ("malformed", "not a database", "file is encrypted", "corrupt")
_UNWRITABLE = ("disk is full", "disk i/o error", "readonly", "read-only", "unable to open")


def store_failure(exc: BaseException, path: Path, what: str) -> PocketQuantError | None:
    """One clear error for a SQLite or file-system failure of the store file at ``path``
    (``what``: "bar store", "live cache"), or None when ``exc`` is not one of those."""
    if isinstance(exc, StoreDamagedError):
        text = str(exc)
        return exc if str(path) in text else StoreDamagedError(f"{what} {path}: {text}")
    if isinstance(exc, sqlite3.DatabaseError):
        reason = str(exc)
        low = reason.lower()
        if any(word in low for word in _DAMAGE):
            return StoreDamagedError(
                f"{what} {path} is damaged ({reason}); run `pocketquant doctor`, then restore it "
                "from a backup or move it aside and re-sync")
        if "disk is full" in low or ("disk i/o error" in low and _no_space(path)):
            return StoreUnavailableError(
                f"{what} {path}: the disk is full; nothing of this write was stored (free space "
                "on that file system, or point POCKETQUANT_DATA_DIR elsewhere)")
        if any(word in low for word in _UNWRITABLE):
            return StoreUnavailableError(
                f"{what} {path}: {reason} (check POCKETQUANT_DATA_DIR={str(path.parent)!r}: it must "
                "be a writable directory with free space)")
        return None
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
        reason = exc.strerror or str(exc)
        return StoreUnavailableError(
            f"{what} {path}: {reason} (POCKETQUANT_DATA_DIR={str(path.parent)!r} must be a writable "
            "directory with free space)")
    return None


def _no_space(path: Path) -> bool:
    # SQLite reports a full disk as "disk I/O error" when it fails to create its -shm file
    try:
        return os.statvfs(path.parent).f_bavail == 0
    except OSError:
        return False


def name_failures(cls: type, what: str) -> type:
    """Wrap ``cls``'s public methods (and ``__init__``) so a damaged, unwritable or full store
    file surfaces as one error naming the file, not as a bare sqlite3 exception."""

    def wrap(method):
        @functools.wraps(method)
        def guarded(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except (sqlite3.DatabaseError, OSError, StoreDamagedError) as exc:
                failure = store_failure(exc, Path(getattr(self, "path", "?")), what)
                if failure is None or failure is exc:
                    raise
                raise failure from exc
        return guarded

    for name, member in list(vars(cls).items()):
        if isinstance(member, types.FunctionType) and (name == "__init__" or not name.startswith("_")):
            setattr(cls, name, wrap(member))
    return cls
