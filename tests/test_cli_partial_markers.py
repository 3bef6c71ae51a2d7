"""Partial bars look partial wherever the CLI shows bars: `pocketquant bars` (table, csv, json)
and `pocketquant live` (in-progress bars), as real processes against a real embedded store and
live cache holding complete and partial bars."""

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from pocketquant_pipelines.market.aggregator import BarAggregator
from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval
from pocketquant_pipelines.settings import load_settings
from pocketquant_pipelines.storage.bars import Source
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.storage.factory import open_bar_store, open_live_cache
from tradingview_simulator.market import SyntheticMarket

BTC = "BINANCE:BTCUSDT"
HISTORY_END = datetime(2026, 1, 28, tzinfo=UTC)
STREAM_END = datetime(2026, 1, 30, 12, 30, tzinfo=UTC)


@pytest.fixture
def env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "REDIS_", "TRADINGVIEW_"))}
    env["POCKETQUANT_DATA_DIR"] = str(tmp_path / "data")
    return env


@pytest.fixture
def filled(env, tmp_path):
    """Daily bars: ten synced from (simulated) history, then two the streamer wrote, the first
    complete, the last flushed partial at shutdown; plus the in-progress bars in the cache."""
    market = SyntheticMarket(seed=3)
    settings = load_settings(env, dotenv_path=tmp_path / "none.env")
    with open_bar_store(settings) as store:
        store.add_symbol(SymbolInfo(BTC, timezone="Etc/UTC", session="24x7"))
        history = market.history(BTC, Interval.D1, HISTORY_END, 11)[:-1]  # the complete ones
        store.upsert_bars(history, source=Source.HISTORY)
        streamed = market.bars_between(BTC, Interval.D1, HISTORY_END, STREAM_END)
        store.upsert_bars(streamed[:-1], source=Source.STREAM)
        store.upsert_bars(streamed[-1:], source=Source.STREAM, partial=True)
    aggregator = BarAggregator(BTC)
    ticks = market.ticks(BTC, datetime(2026, 1, 30, 12, tzinfo=UTC), STREAM_END)
    for tick in ticks:
        aggregator.on_tick(tick)
    cache = open_live_cache(settings)
    try:
        cache.set_current_bars(BTC, list(aggregator.current_bars().values()))
        last = ticks[-1]
        cache.set_quote(BTC, {**last.to_dict(), "received_at": last.time.timestamp()})
    finally:
        cache.close()
    return {"history": history, "streamed": streamed, "partial_time": streamed[-1].time}


def cli(env, *args):
    proc = subprocess.run([sys.executable, "-m", "pocketquant_pipelines", *args], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_bars_json_and_csv_carry_a_partial_column(env, filled):
    rows = [json.loads(line) for line in cli(env, "bars", BTC, "--format", "json").stdout.splitlines()]
    assert len(rows) == len(filled["history"]) + len(filled["streamed"])
    flagged = {datetime.fromisoformat(r["time"]) for r in rows if r["partial"] is True}
    assert flagged == {filled["partial_time"]}
    assert all(r["partial"] is False for r in rows if datetime.fromisoformat(r["time"]) != filled["partial_time"])
    assert {r["source"] for r in rows if not r["partial"]} == {"history", "stream"}

    text = cli(env, "bars", BTC, "--format", "csv").stdout
    table = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == "time,open,high,low,close,volume,source,partial"
    assert [r["partial"] for r in table] == ["false"] * (len(table) - 1) + ["true"]
    assert datetime.fromisoformat(table[-1]["time"]) == filled["partial_time"]


def test_bars_table_marks_every_partial_bar(env, filled):
    assert len(filled["streamed"]) == 3  # Jan 28 and 29 complete, Jan 30 partial
    proc = cli(env, "bars", BTC, "--limit", "4")
    header, _rule, *lines = proc.stdout.splitlines()
    assert header.split()[-2:] == ["SOURCE", "PARTIAL"]
    assert [line.split()[-1] for line in lines] == ["history", "stream", "stream", "yes"]
    assert lines[-1].startswith(filled["partial_time"].strftime("%Y-%m-%d %H:%M"))
    assert "note: 1 of 4 bars are partial" in proc.stderr
    # no partial bar in range: no note
    assert "partial" not in cli(env, "bars", BTC, "--end", HISTORY_END.isoformat()).stderr


def test_live_labels_in_progress_bars(env, filled):
    shown = cli(env, "live", BTC).stdout.splitlines()
    assert shown[0].startswith(f"{BTC}  last ")
    assert shown[1].split()[-1] == "state"
    rows = shown[2:]
    assert len(rows) == len(ALL_INTERVALS)
    assert all(row.endswith("in progress (partial)") for row in rows)
    snap = json.loads(cli(env, "live", "--format", "json", BTC).stdout)
    assert set(snap["bars"]) == {i.value for i in ALL_INTERVALS}
    assert all(b["partial"] is True and b["in_progress"] is True for b in snap["bars"].values())
