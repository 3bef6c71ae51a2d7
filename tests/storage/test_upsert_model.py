"""Random upsert sequences against a plain-dict model of the bar store.

The embedded store merges bars into columnar windows with numpy; this checks that merge (and
the Mongo compare-then-write) against the obvious implementation: counts, canonical rows,
stream shadow, history coverage and the precedence rule (history outranks the stream, a
complete bar outranks a partial one), for batches that straddle window boundaries, repeat
keys and flip flags.
"""

import math
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pocketquant_pipelines.storage.bars import Source, UpsertResult
from tests.storage.helpers import T0, bar
from tests.storage.mongo_wire import MONGO_BACKEND_ID, throwaway_database

SYMBOL = "NASDAQ:AAPL"
# 1m windows hold 1024 minutes: keys up to 2600 minutes cross two window boundaries.
keys = st.integers(min_value=0, max_value=2600)
rows = st.tuples(keys, st.sampled_from([10.0, 11.0, 12.5]), st.booleans())
# (source, partial): only the stream writes partial bars
writers = st.sampled_from([(Source.HISTORY, False), (Source.STREAM, False), (Source.STREAM, True)])
batches = st.tuples(st.lists(rows, min_size=1, max_size=40), writers)


def may_replace(old: tuple, source: Source, partial: bool) -> bool:
    if source is Source.HISTORY:
        return True
    if old[2] == Source.HISTORY.value:
        return False
    return old[3] or not partial


def apply_model(state: dict, shadow: dict, batch, source: Source, partial: bool) -> UpsertResult:
    latest = {}
    for k, close, no_volume in batch:  # last occurrence of a key wins
        latest[k] = (close, None if no_volume else 100.0)
    ins = upd = same = refused = 0
    for k, (close, vol) in latest.items():
        row = (close, vol, source.value, partial)
        if k not in state:
            ins += 1
            state[k] = row
        elif not may_replace(state[k], source, partial):
            refused += 1
        elif state[k] == row:
            same += 1
        else:
            upd += 1
            state[k] = row
        if source is Source.STREAM and (k not in shadow or may_replace(shadow[k], source, partial)):
            shadow[k] = row
    return UpsertResult(ins, upd, same, refused)


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
    for batch, (source, partial) in sequence:
        bars = [bar(SYMBOL, "1m", T0 + timedelta(minutes=k), close, None if nv else 100.0)
                for k, close, nv in batch]
        expected = apply_model(state, shadow, batch, source, partial)
        assert store.upsert_bars(bars, source=source, partial=partial) == expected
    assert frame_rows(store.read_bars(SYMBOL, "1m")) == state
    assert {k: v for k, v in frame_rows(store.read_stream_bars(SYMBOL, "1m")).items()} == shadow
    assert store.count_bars(SYMBOL, "1m") == len(state)
    history = sorted(k for k, row in state.items() if row[2] == Source.HISTORY.value)
    cov = store.history_coverage(SYMBOL, "1m")
    if history:
        assert (cov.first_time, cov.last_time, cov.bars) == (
            T0 + timedelta(minutes=history[0]), T0 + timedelta(minutes=history[-1]), len(history))
    else:
        assert cov is None
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


@pytest.mark.parametrize("backend", [MONGO_BACKEND_ID])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(batches, min_size=1, max_size=4))
def test_mongo_store_matches_the_model(backend, mongo_client, sequence):
    from pocketquant_pipelines.storage.mongo_store import MongoBarStore

    db = throwaway_database()  # one per example: hypothesis reuses the test's fixtures
    try:
        with MongoBarStore(client=mongo_client, database=db) as store:
            run_sequence(store, sequence)
    finally:
        mongo_client.drop_database(db)
