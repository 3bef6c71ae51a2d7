"""The downtime log (heartbeats and holes) on both backends: the embedded store's SQLite file
and MongoDB over the wire (the storage tests' server: a MongoDB-wire-compatible server, or the
real one POCKETQUANT_TEST_MONGODB_URL names)."""

from datetime import UTC, datetime, timedelta

import pytest

from pocketquant_pipelines.storage.downtime import MongoDowntimeLog, SQLiteDowntimeLog
from pocketquant_pipelines.storage.sqlite_store import SQLiteBarStore

T0 = datetime(2026, 1, 30, 15, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "mongo-wire"])
def downtime(request, tmp_path):
    if request.param == "sqlite":
        # beside the bar store, in its file: both open side by side
        with SQLiteBarStore(tmp_path / "bars.sqlite3"):
            log = SQLiteDowntimeLog(tmp_path / "bars.sqlite3")
            yield log
            log.close()
    else:
        import pymongo

        client = pymongo.MongoClient(request.getfixturevalue("mongo_url"), tz_aware=True,
                                     serverSelectionTimeoutMS=5000)
        database = request.getfixturevalue("mongo_database")
        log = MongoDowntimeLog(client=client, database=database)
        yield log
        client.close()


def test_heartbeats_only_move_forward(downtime):
    downtime.beat({"BINANCE:BTCUSDT": T0, "NASDAQ:AAPL": T0})
    downtime.beat({"BINANCE:BTCUSDT": T0 + timedelta(minutes=1)})
    downtime.beat({"BINANCE:BTCUSDT": T0 - timedelta(minutes=5)})  # a stale beat never moves it back
    assert downtime.last_beats() == {"BINANCE:BTCUSDT": T0 + timedelta(minutes=1), "NASDAQ:AAPL": T0}


def test_holes_are_open_until_requested(downtime):
    a = downtime.record_hole("BINANCE:BTCUSDT", T0, T0 + timedelta(minutes=7))
    b = downtime.record_hole("NASDAQ:AAPL", T0, T0 + timedelta(minutes=3))
    opened = downtime.open_holes()
    assert [(h.id, h.symbol, h.start, h.end) for h in opened] == [
        (a.id, "BINANCE:BTCUSDT", T0, T0 + timedelta(minutes=7)), (b.id, "NASDAQ:AAPL", T0, T0 + timedelta(minutes=3))]
    downtime.mark_requested([a.id], "heal:BINANCE:BTCUSDT")
    assert [h.id for h in downtime.open_holes()] == [b.id]
