"""Where the streamer says how far it streamed, and which stretches it missed.

* heartbeat, per symbol: the market time up to which the streamer was streaming *and* had the
  bars completed by then in the bar store (the streamer writes a beat only after those bars).
* hole (symbol, start, end): at start, a symbol's first tick came more than ``HOLE_MIN_S``
  after its last heartbeat: the streamer was down (crash, kill, restart) from ``start`` to
  ``end`` and the bars of that stretch, and those in progress when it stopped, are missing
  or partial. ``defs/healing.py`` turns open holes into historical syncs and marks them
  requested.

Both live with the bar store, because the Dagster sensor reading them may run on another
machine: tables in the embedded store's SQLite file, or collections in the store's MongoDB
database. Small on purpose: one row per streamed symbol, one per hole (requested holes older
than ``KEEP_REQUESTED_S`` are pruned).
"""

import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pocketquant_pipelines.market.timeutil import ensure_utc, utcnow
from pocketquant_pipelines.settings import Settings
from pocketquant_pipelines.storage.sqlite_util import ThreadConnections

HOLE_MIN_S = 60.0           # shorter gaps miss no whole bar; a later sync completes partial ones
KEEP_REQUESTED_S = 30 * 86400


@dataclass(frozen=True, slots=True)
class Hole:
    id: str
    symbol: str
    start: datetime           # the last heartbeat before the downtime (market time, UTC)
    end: datetime             # the first tick after it
    recorded_at: datetime
    requested_at: datetime | None = None
    run_key: str | None = None


class DowntimeLog(ABC):
    @abstractmethod
    def beat(self, beats: Mapping[str, datetime]) -> None:
        """Record the heartbeat of each symbol (never moves a heartbeat back)."""

    @abstractmethod
    def last_beats(self) -> dict[str, datetime]: ...

    @abstractmethod
    def record_hole(self, symbol: str, start: datetime, end: datetime) -> Hole: ...

    @abstractmethod
    def open_holes(self, limit: int = 1000) -> list[Hole]:
        """Holes not yet requested, oldest first."""

    @abstractmethod
    def mark_requested(self, hole_ids: Iterable[str], run_key: str) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional for backends
        pass

    def __enter__(self) -> "DowntimeLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _iso(t: datetime) -> str:
    return ensure_utc(t).isoformat()


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS streamer_heartbeats (
    symbol TEXT PRIMARY KEY,
    streamed_to TEXT NOT NULL,
    written_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS downtime_holes (
    id TEXT PRIMARY KEY,
    symbol TEXT NOT NULL,
    start TEXT NOT NULL,
    "end" TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    requested_at TEXT,
    run_key TEXT
);
CREATE INDEX IF NOT EXISTS downtime_holes_open ON downtime_holes (requested_at, recorded_at)
"""


class SQLiteDowntimeLog(DowntimeLog):
    """Two tables in the embedded bar store's file (times as ISO-8601 UTC text, which sorts)."""

    def __init__(self, path: Path | str):
        self._db = ThreadConnections(path, synchronous="FULL", setup_sql=_SCHEMA)

    def beat(self, beats: Mapping[str, datetime]) -> None:
        if not beats:
            return
        now = _iso(utcnow())
        with self._db.write() as conn:
            conn.executemany(
                "INSERT INTO streamer_heartbeats (symbol, streamed_to, written_at) VALUES (?, ?, ?)"
                " ON CONFLICT(symbol) DO UPDATE SET streamed_to = excluded.streamed_to,"
                " written_at = excluded.written_at WHERE excluded.streamed_to > streamed_to",
                [(symbol, _iso(t), now) for symbol, t in beats.items()])

    def last_beats(self) -> dict[str, datetime]:
        rows = self._db.get().execute("SELECT symbol, streamed_to FROM streamer_heartbeats").fetchall()
        return {symbol: _dt(t) for symbol, t in rows}

    def record_hole(self, symbol: str, start: datetime, end: datetime) -> Hole:
        hole = Hole(uuid.uuid4().hex, symbol, ensure_utc(start), ensure_utc(end), utcnow())
        with self._db.write() as conn:
            conn.execute('INSERT INTO downtime_holes (id, symbol, start, "end", recorded_at) VALUES (?, ?, ?, ?, ?)',
                         (hole.id, symbol, _iso(hole.start), _iso(hole.end), _iso(hole.recorded_at)))
            conn.execute("DELETE FROM downtime_holes WHERE requested_at IS NOT NULL AND requested_at < ?",
                         (_iso(utcnow() - timedelta(seconds=KEEP_REQUESTED_S)),))
        return hole

    def open_holes(self, limit: int = 1000) -> list[Hole]:
        rows = self._db.get().execute(
            'SELECT id, symbol, start, "end", recorded_at FROM downtime_holes WHERE requested_at IS NULL'
            " ORDER BY recorded_at LIMIT ?", (limit,)).fetchall()
        return [Hole(i, s, _dt(a), _dt(b), _dt(r)) for i, s, a, b, r in rows]

    def mark_requested(self, hole_ids: Iterable[str], run_key: str) -> None:
        now = _iso(utcnow())
        with self._db.write() as conn:
            conn.executemany("UPDATE downtime_holes SET requested_at = ?, run_key = ? WHERE id = ?",
                             [(now, run_key, i) for i in hole_ids])

    def close(self) -> None:
        self._db.close()


class MongoDowntimeLog(DowntimeLog):
    """Collections ``streamer_heartbeats`` (_id = symbol) and ``downtime_holes`` in the bar
    store's database; datetimes as BSON dates (UTC)."""

    def __init__(self, url: str | None = None, database: str = "pocketquant", *, client=None):
        if client is None:
            import pymongo

            client = pymongo.MongoClient(url, tz_aware=True, serverSelectionTimeoutMS=5000)
        self._client = client
        db = self._client[database]
        self._beats = db["streamer_heartbeats"]
        self._holes = db["downtime_holes"]
        self._holes.create_index([("requested_at", 1), ("recorded_at", 1)])

    def beat(self, beats: Mapping[str, datetime]) -> None:
        from pymongo import UpdateOne

        if not beats:
            return
        now = utcnow()
        self._beats.bulk_write([UpdateOne({"_id": s}, {"$max": {"streamed_to": ensure_utc(t)},
                                                        "$set": {"written_at": now}}, upsert=True)
                                for s, t in beats.items()], ordered=False)

    def last_beats(self) -> dict[str, datetime]:
        return {d["_id"]: ensure_utc(d["streamed_to"]) for d in self._beats.find({})}

    def record_hole(self, symbol: str, start: datetime, end: datetime) -> Hole:
        hole = Hole(uuid.uuid4().hex, symbol, ensure_utc(start), ensure_utc(end), utcnow())
        self._holes.insert_one({"_id": hole.id, "symbol": symbol, "start": hole.start, "end": hole.end,
                                "recorded_at": hole.recorded_at, "requested_at": None, "run_key": None})
        self._holes.delete_many({"requested_at": {"$lt": utcnow() - timedelta(seconds=KEEP_REQUESTED_S)}})
        return hole

    def open_holes(self, limit: int = 1000) -> list[Hole]:
        docs = self._holes.find({"requested_at": None}).sort("recorded_at", 1).limit(limit)
        return [Hole(d["_id"], d["symbol"], ensure_utc(d["start"]), ensure_utc(d["end"]),
                     ensure_utc(d["recorded_at"])) for d in docs]

    def mark_requested(self, hole_ids: Iterable[str], run_key: str) -> None:
        self._holes.update_many({"_id": {"$in": list(hole_ids)}},
                                {"$set": {"requested_at": utcnow(), "run_key": run_key}})

    def close(self) -> None:
        self._client.close()


def open_downtime_log(settings: Settings) -> DowntimeLog:
    """Beside the bar store the settings choose (MONGODB_URL or the embedded file)."""
    if settings.mongodb_url:
        return MongoDowntimeLog(settings.mongodb_url.get_secret_value(), settings.mongodb_database)
    return SQLiteDowntimeLog(settings.bar_store_path)

