"""The MongoDB store reads by key range: what it asks the server for follows the bars a call
touches, not the length of the series, and the per-series extent record it starts from is only
a starting point (bars written past it by a writer that died before recording them are found).

Runs against the test server of tests/storage/conftest.py (the wire server, or a real one).
"""

from datetime import timedelta

import pytest

from pocketquant_pipelines.storage.bars import UpsertResult
from tests.storage.helpers import T0, series
from tests.storage.mongo_wire import MONGO_BACKEND_ID

AAPL = "NASDAQ:AAPL"


class FindRecorder:
    """The filters of the finds the store sends to the ``bars`` collection."""

    def __init__(self):
        self.filters: list[dict] = []

    def started(self, event):
        if event.command_name == "find" and event.command["find"] == "bars":
            self.filters.append(event.command.get("filter", {}))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass

    def reset(self):
        self.filters = []

    def touched(self, plain_db) -> int:
        """Stored bars inside the filters asked for: what the server had to read for them
        (a sort+limit on the whole series counts the whole series, whatever it returned)."""
        return sum(plain_db["bars"].count_documents(f) for f in self.filters)


@pytest.fixture(params=[MONGO_BACKEND_ID])  # the id says which server answered
def counted(mongo_url, mongo_client, mongo_database):
    import pymongo
    from pymongo import monitoring

    from pocketquant_pipelines.storage.mongo_store import MongoBarStore

    counter = FindRecorder()

    class Listener(monitoring.CommandListener):
        started = staticmethod(counter.started)
        succeeded = staticmethod(counter.succeeded)
        failed = staticmethod(counter.failed)

    client = pymongo.MongoClient(mongo_url, event_listeners=[Listener()],
                                 serverSelectionTimeoutMS=5000)
    store = MongoBarStore(client=client, database=mongo_database)
    yield store, counter, mongo_client[mongo_database]
    client.close()


def _has_in(flt) -> bool:
    if isinstance(flt, dict):
        return "$in" in flt or any(_has_in(v) for v in flt.values())
    return False


def test_latest_bars_and_last_time_read_about_as_many_bars_as_they_return(counted):
    store, counter, db = counted
    bars = series(AAPL, "1m", 3000)
    store.upsert_bars(bars)
    counter.reset()
    frame = store.read_bars(AAPL, "1m", limit=50)
    assert list(frame.index.to_pydatetime()) == [b.time for b in bars[-50:]]
    assert counter.touched(db) <= 100  # not the 3000 bars of the series
    counter.reset()
    assert store.last_bar_time(AAPL, "1m") == bars[-1].time
    assert counter.touched(db) <= 2
    assert all("time" in f for f in counter.filters)
    counter.reset()
    frame = store.read_bars(AAPL, "1m", end=bars[1000].time, limit=20)
    assert list(frame.index.to_pydatetime()) == [b.time for b in bars[980:1000]]
    assert counter.touched(db) <= 40


def test_re_upsert_looks_bars_up_by_range_not_by_key_list(counted):
    store, counter, db = counted
    bars = series(AAPL, "1m", 3000)
    store.upsert_bars(bars)
    store.upsert_bars(series(AAPL, "1m", 500, start=T0 + timedelta(days=30)))
    counter.reset()
    assert store.upsert_bars(bars[1000:2000]) == UpsertResult(0, 0, 1000)
    assert not any(_has_in(f) for f in counter.filters)
    assert counter.touched(db) <= 1000  # the batch's own keys, not the series


def test_a_sparse_batch_reads_short_ranges_not_the_span_between_its_keys(counted):
    store, counter, db = counted
    store.upsert_bars(series(AAPL, "1m", 3000))
    far = [series(AAPL, "1m", 1, start=T0 + timedelta(minutes=m))[0] for m in (5, 1500, 2900)]
    counter.reset()
    assert store.upsert_bars(far).unchanged == 0  # new values (base differs): updated
    assert counter.touched(db) <= 3


def test_bars_beyond_the_extent_record_are_still_found(counted):
    store, _, db = counted
    bars = series(AAPL, "1h", 200)
    store.upsert_bars(bars[50:150])
    # a writer that died between its bars and its record: bars on both sides of the extent
    from pocketquant_pipelines.storage.validation import to_us

    def raw(b):
        return {"symbol": AAPL, "interval": "1h", "time": to_us(b.time), "open": b.open,
                "high": b.high, "low": b.low, "close": b.close, "volume": b.volume,
                "source": "history", "partial": False, "written_at": 0}

    db["bars"].insert_many([raw(b) for b in bars[:50] + bars[150:]])
    assert store.last_bar_time(AAPL, "1h") == bars[-1].time
    assert store.read_bars(AAPL, "1h", limit=3)["close"].tolist() == [b.close for b in bars[-3:]]
    assert store.read_bars(AAPL, "1h", end=bars[60].time, limit=120)["close"].tolist() == \
        [b.close for b in bars[:60]]
    # no record at all (a first writer that has not recorded yet): the same answers
    db["series_extent"].delete_many({})
    assert store.last_bar_time(AAPL, "1h") == bars[-1].time
    assert store.read_bars(AAPL, "1h", limit=3)["close"].tolist() == [b.close for b in bars[-3:]]


def test_latest_bars_across_a_long_gap_and_a_database_without_extent_records(counted):
    from pocketquant_pipelines.storage.mongo_store import MongoBarStore

    store, _, db = counted
    old = series(AAPL, "1d", 10, start=T0 - timedelta(days=3000))
    new = series(AAPL, "1d", 10, start=T0, base=500.0)
    store.upsert_bars(old + new)
    assert store.read_bars(AAPL, "1d", limit=15)["close"].tolist() == \
        [b.close for b in old[5:] + new]
    assert len(store.read_bars(AAPL, "1d", limit=100)) == 20
    # a database from before the extent records gets them on open
    db["series_extent"].drop()
    db["counters"].update_one({"_id": "schema"}, {"$unset": {"extent": ""}})
    reopened = MongoBarStore(client=db.client, database=db.name)
    rec = db["series_extent"].find_one({"_id": f"1d|{AAPL}"})
    assert (rec["first_time"], rec["last_time"]) == (db["bars"].find_one(
        {"time": {"$exists": True}}, sort=[("time", 1)])["time"], db["bars"].find_one(
        {"time": {"$exists": True}}, sort=[("time", -1)])["time"])
    assert reopened.read_bars(AAPL, "1d", limit=12)["close"].tolist() == \
        [b.close for b in old[8:] + new]
    store.delete_bars(AAPL)
    assert db["series_extent"].count_documents({}) == 0
    assert store.last_bar_time(AAPL, "1d") is None
