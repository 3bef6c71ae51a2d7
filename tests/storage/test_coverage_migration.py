"""Stores written before the history coverage record existed get it on first open, computed
from the bars they hold: history's keys only, never the stream's."""

import sqlite3
from datetime import timedelta

import pytest

from pocketquant_pipelines.storage.bars import Source
from tests.storage.helpers import T0, series

AAPL, BTC = "NASDAQ:AAPL", "BINANCE:BTCUSDT"


def fill(store) -> None:
    # history in two windows (1m windows hold 1024 minutes), stream bars around and inside
    store.upsert_bars(series(AAPL, "1m", 1500))
    store.upsert_bars(series(AAPL, "1m", 10, start=T0 + timedelta(minutes=1490)), source=Source.STREAM)
    store.upsert_bars(series(AAPL, "1m", 30, start=T0 + timedelta(days=3)), source=Source.STREAM)
    store.upsert_bars(series(BTC, "1h", 20), source=Source.STREAM)  # stream only


def check_backfilled(store) -> None:
    cov = store.history_coverage(AAPL, "1m")
    assert (cov.first_time, cov.last_time, cov.bars) == (T0, T0 + timedelta(minutes=1499), 1500)
    assert store.history_coverage(BTC, "1h") is None
    assert store.count_bars(AAPL, "1m") == 1530  # the bars themselves are untouched


def test_a_format_1_sqlite_file_is_migrated_on_open(tmp_path):
    from pocketquant_pipelines.storage.sqlite_store import FORMAT_VERSION, SQLiteBarStore

    path = tmp_path / "bars.sqlite3"
    with SQLiteBarStore(path) as store:
        fill(store)
    # what a format-1 file is: the same tables without history_coverage
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE history_coverage")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'format'")
    conn.commit()
    conn.close()

    with SQLiteBarStore(path) as store:
        check_backfilled(store)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() == (FORMAT_VERSION,)
    conn.close()
    with SQLiteBarStore(path) as store:  # a second open changes nothing
        check_backfilled(store)


def test_a_newer_sqlite_format_is_refused_by_name(tmp_path):
    from pocketquant_pipelines.storage.sqlite_store import SQLiteBarStore

    path = tmp_path / "bars.sqlite3"
    SQLiteBarStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '9' WHERE key = 'format'")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="format .*'9'"):
        SQLiteBarStore(path)


def test_a_mongo_database_without_coverage_records_gets_them_on_open(mongo_client, mongo_database):
    from pocketquant_pipelines.storage.mongo_store import MongoBarStore

    with MongoBarStore(client=mongo_client, database=mongo_database) as store:
        fill(store)
    db = mongo_client[mongo_database]
    db["history_coverage"].drop()
    db["counters"].delete_one({"_id": "schema"})

    with MongoBarStore(client=mongo_client, database=mongo_database) as store:
        check_backfilled(store)
    assert db["counters"].find_one({"_id": "schema"})["coverage"] == 1
