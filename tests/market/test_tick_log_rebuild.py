"""The tick audit trail and the rebuild from it: what a streamer-like run logs is read back
whole, a killed writer is reported by the log's own accounting, retention removes old days,
and re-aggregating the logged ticks gives the bars the run produced, at every interval."""

import json
import random
from datetime import UTC, date, datetime, timedelta

import pytest

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.market.aggregator import BarAggregator
from pocketquant_pipelines.market.intervals import ALL_INTERVALS
from pocketquant_pipelines.market.rebuild import compare, rebuild
from pocketquant_pipelines.market.sessions import SESSION_24X7
from pocketquant_pipelines.storage.tick_log import TickLogWriter, iter_segments, read_ticks, day_dir

BTC = "BINANCE:BTCUSDT"
DAY = date(2026, 6, 1)  # a Monday and the first of a month: 1w and 1M bars start on it too
T0 = datetime(2026, 6, 1, tzinfo=UTC).timestamp()


def streamed_run(writer: TickLogWriter, start: float, seconds: int, seed: int, session=None):
    """Ticks as a streamer would handle them: aggregate, close due bars on a clock between
    ticks, log every tick (dropped ones with the reason). Returns the bars it stored:
    {(interval, time): (ohlcv, partial)}, flushed in-progress bars included (shutdown)."""
    rng = random.Random(seed)
    agg = BarAggregator(BTC, session or SESSION_24X7)
    price, t, anchor, out = 100.0, start, None, {}

    def keep(bars, partial_at):
        for b in bars:
            out[(b.interval, b.time)] = ((b.open, b.high, b.low, b.close, b.volume),
                                         b.time.timestamp() <= partial_at)

    while t < start + seconds:
        t += rng.choice([0.4, 1.0, 2.5, 7.0, 65.0])
        price = max(1.0, price + rng.gauss(0, 0.3))
        volume = rng.choice([None, 0.0, 0.5, 3.0])
        received = t + 0.05
        if rng.random() < 0.01:  # a tick dated in the future: dropped before aggregation
            writer.record(BTC, t + 10 ** 8, received, price, volume, None, None, None, dropped="future")
            continue
        late_before = agg.late_ticks
        tick_t = t - 120 if rng.random() < 0.02 else t  # a straggler from a closed minute
        completed = agg.on_tick_values(tick_t, price, volume)
        if agg.late_ticks != late_before:
            writer.record(BTC, tick_t, received, price, volume, None, None, None, dropped="late")
            continue
        anchor = tick_t if anchor is None else anchor
        writer.record(BTC, tick_t, received, price, volume, None, price - 0.01, price + 0.01)
        keep(completed, anchor)
        if rng.random() < 0.1:
            keep(agg.close_due_epoch(t + rng.choice([1.0, 30.0])), anchor)  # the streamer's clock
        if rng.random() < 0.05:
            writer.flush()
    keep(agg.flush(), float("inf"))  # shutdown: in-progress bars stored partial
    return out


def stored_values(bars):
    return {key: values for key, (values, _partial) in bars.items()}


def test_a_logged_day_rebuilds_to_the_bars_the_run_stored(tmp_path):
    writer = TickLogWriter(tmp_path, retention_days=3650)
    stored = streamed_run(writer, T0, 6 * 3600, seed=1)
    writer.close()
    logged = read_ticks(tmp_path, BTC, DAY)
    assert logged.notes == []
    assert logged.table.num_rows == logged.accepted.num_rows + sum(
        1 for r in logged.table.column("dropped").to_pylist() if r)
    assert {"future", "late"} <= set(filter(None, logged.table.column("dropped").to_pylist()))
    runs = [list(zip(seg.column("exchange_time").to_pylist(), seg.column("price").to_pylist(),
                     seg.column("volume").to_pylist(), strict=True)) for _, seg in iter_segments(logged.table)]
    rebuilt = rebuild(BTC, SESSION_24X7, runs)
    start = datetime(2026, 6, 1, tzinfo=UTC)
    assert compare(rebuilt, stored_values(stored), start, start + timedelta(days=1)) == []
    intervals = {r.bar.interval for r in rebuilt}
    assert intervals == set(ALL_INTERVALS)
    partial_rebuilt = {(r.bar.interval, r.bar.time) for r in rebuilt if r.partial}
    assert partial_rebuilt == {key for key, (_, partial) in stored.items() if partial}


def test_a_changed_stored_bar_and_a_missing_one_are_reported(tmp_path):
    writer = TickLogWriter(tmp_path, retention_days=3650)
    stored = stored_values(streamed_run(writer, T0, 3600, seed=2))
    writer.close()
    logged = read_ticks(tmp_path, BTC, DAY)
    runs = [list(zip(s.column("exchange_time").to_pylist(), s.column("price").to_pylist(),
                     s.column("volume").to_pylist(), strict=True)) for _, s in iter_segments(logged.table)]
    rebuilt = rebuild(BTC, SESSION_24X7, runs)
    keys = sorted(k for k in stored if k[0].value == "1m")
    changed, dropped = keys[5], keys[9]
    o, h, lo, c, v = stored[changed]
    stored[changed] = (o, h + 1.0, lo, c, v)
    del stored[dropped]
    start = datetime(2026, 6, 1, tzinfo=UTC)
    diffs = compare(rebuilt, stored, start, start + timedelta(days=1))
    assert {(d.time, d.what) for d in diffs} == {(changed[1], "values"), (dropped[1], "missing_from_store")}


def test_a_killed_writer_is_reported_and_loses_at_most_its_unflushed_batch(tmp_path):
    first = TickLogWriter(tmp_path, retention_days=3650)
    for k in range(100):
        first.record(BTC, T0 + k, T0 + k + 0.1, 100.0 + k, 1.0, None, None, None)
    first.flush()
    for k in range(100, 130):  # accepted, never flushed: the process is killed here
        first.record(BTC, T0 + k, T0 + k + 0.1, 100.0 + k, 1.0, None, None, None)
    second = TickLogWriter(tmp_path, retention_days=3650)  # the restarted streamer
    for k in range(200, 210):
        second.record(BTC, T0 + k, T0 + k + 0.1, 100.0, 1.0, None, None, None)
    second.close()
    logged = read_ticks(tmp_path, BTC, DAY)
    assert logged.table.num_rows == 110
    (note,) = logged.notes
    assert first.writer_id in note and "did not close" in note and "2026-06-01T00:01:39.100000+00:00" in note
    assert [w for w, _ in iter_segments(logged.table)] == [first.writer_id, second.writer_id]


def test_a_torn_journal_line_and_a_lost_part_are_named(tmp_path):
    writer = TickLogWriter(tmp_path, retention_days=3650)
    writer.record(BTC, T0, T0, 100.0, 1.0, None, None, None)
    writer.close()
    directory = day_dir(tmp_path, DAY)
    (part,) = directory.glob("part-*.parquet")
    part.unlink()
    with open(directory / "_journal.jsonl", "a") as fh:
        fh.write('{"event": "batch", "wri')
    notes = read_ticks(tmp_path, BTC, DAY).notes
    assert any(part.name in n and "missing" in n for n in notes) and any("torn" in n for n in notes)


def test_retention_removes_old_days_only(tmp_path):
    writer = TickLogWriter(tmp_path, retention_days=3)
    for days_ago in (0, 2, 3, 4, 10):
        t = (datetime.now(UTC) - timedelta(days=days_ago)).timestamp()
        writer.record(BTC, t, t, 1.0, None, None, None, None)
    writer.close()
    assert writer.purge() == 2
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert len(kept) == 3


def test_reading_a_day_that_is_not_logged_is_one_clear_error(tmp_path):
    with pytest.raises(InvalidInputError, match="no ticks logged for BINANCE:BTCUSDT on 2026-06-01"):
        read_ticks(tmp_path, BTC, DAY)
    with pytest.raises(InvalidInputError, match="'2026-13-01'"):
        read_ticks(tmp_path, BTC, "2026-13-01")


def test_the_journal_counts_every_batch(tmp_path):
    writer = TickLogWriter(tmp_path, retention_days=3650)
    for k in range(10):
        writer.record(BTC, T0 + k, T0 + k, 1.0, None, None, None, None)
        if k % 3 == 2:
            writer.flush()
    writer.close()
    lines = [json.loads(x) for x in (day_dir(tmp_path, DAY) / "_journal.jsonl").read_text().splitlines()]
    assert [e["event"] for e in lines].count("batch") == 4
    assert sum(e.get("rows", 0) for e in lines) == 10 and lines[-1]["event"] == "close"
