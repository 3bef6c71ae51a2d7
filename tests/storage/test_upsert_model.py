"""Random upsert sequences against a plain-dict model of the bar store.

The embedded store merges bars into columnar windows with numpy; this checks that merge (and
the Mongo compare-then-write) against the obvious implementation: counts, canonical rows,
stream shadow, for batches that straddle window boundaries, repeat keys and flip flags.
"""

import math
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pocketquant_pipelines.storage.base import Source, UpsertResult
from tests.storage.helpers import T0, bar

SYMBOL = "NASDAQ:AAPL"
# 1m windows hold 1024 minutes: keys up to 2600 minutes cross two window boundaries.
keys = st.integers(min_value=0, max_value=2600)
rows = st.tuples(keys, st.sampled_from([10.0, 11.0, 12.5]), st.booleans())
batches = st.tuples(st.lists(rows, min_size=1, max_size=40), st.sampled_from(list(Source)),
                    st.booleans())


def apply_model(state: dict, shadow: dict, batch, source: Source, partial: bool) -> UpsertResult:
    latest = {}
    for k, close, no_volume in batch:  # last occurrence of a key wins
        latest[k] = (close, None if no_volume else 100.0)
    ins = upd = same = 0
    for k, (close, vol) in latest.items():
        row = (close, vol, source.value, partial)
        if k not in state:
            ins += 1
        elif state[k] == row:
            same += 1
        else:
            upd += 1
        state[k] = row
        if source is Source.STREAM:
            shadow[k] = row
    return UpsertResult(ins, upd, same)


def frame_rows(frame) -> dict:
    out = {}
    for t, r in frame.iterrows():
        k = int((t.to_pydatetime() - T0) / timedelta(minutes=1))
        vol = None if math.isnan(r["volume"]) else r["volume"]
        out[k] = (r["close"], vol, r["source"], bool(r["partial"]))
    return out


def run_sequence(store, sequence) -> None:
    state: dict = {}
    shadow: dict = {}
    for batch, source, partial in sequence:
        bars = [bar(SYMBOL, "1m", T0 + timedelta(minutes=k), close, None if nv else 100.0)
                for k, close, nv in batch]
        expected = apply_model(state, shadow, batch, source, partial)
        assert store.upsert_bars(bars, source=source, partial=partial) == expected
    assert frame_rows(store.read_bars(SYMBOL, "1m")) == state
    assert {k: v for k, v in frame_rows(store.read_stream_bars(SYMBOL, "1m")).items()} == shadow
    assert store.count_bars(SYMBOL, "1m") == len(state)
    if state:
        assert store.last_bar_time(SYMBOL, "1m") == T0 + timedelta(minutes=max(state))
        latest = sorted(state)[-3:]
        assert list(frame_rows(store.read_bars(SYMBOL, "1m", limit=3))) == latest


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(batches, min_size=1, max_size=6))
def test_sqlite_store_matches_the_model(sequence):
    from pocketquant_pipelines.storage.sqlite_store import SQLiteBarStore

    with tempfile.TemporaryDirectory() as tmp:
        with SQLiteBarStore(Path(tmp) / "bars.sqlite3") as store:
            run_sequence(store, sequence)


@pytest.mark.parametrize("backend", ["mongo-mongomock-FAKE"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(batches, min_size=1, max_size=4))
def test_mongo_store_matches_the_model(backend, sequence):
    import mongomock_ng

    from pocketquant_pipelines.storage.mongo_store import MongoBarStore

    with MongoBarStore(client=mongomock_ng.MongoClient(), database="pq_model") as store:
        run_sequence(store, sequence)
