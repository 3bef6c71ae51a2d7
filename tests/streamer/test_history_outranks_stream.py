"""Sync, stream, SIGTERM: the real `python -m streamer` process runs after a historical sync of
1d and 1h and is stopped mid-bar. Every bar history wrote is unchanged afterwards (values and
source), although the streamer flushed in-progress bars for some of the same keys at
shutdown; those flushes are kept in the stream shadow, and the bars only the stream has are
marked partial."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from pocketquant_pipelines.market.intervals import ALL_INTERVALS
from pocketquant_pipelines.settings import load_settings
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.storage.factory import open_bar_store
from pocketquant_pipelines.sync import sync_history
from pocketquant_pipelines.tradingview.client import TradingViewClient
from tradingview_simulator.server import run_simulator_in_thread
from tests.support import free_port, wait_for

BTC, AAPL = "BINANCE:BTCUSDT", "NASDAQ:AAPL"
SYNCED = ("1d", "1h")
SIM_START = datetime(2026, 1, 30, 15, 10, 5, tzinfo=UTC)  # 10:10 New York: AAPL is trading
VALUES = ["open", "high", "low", "close", "volume", "source", "partial"]


def _default_signals():
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def metric(port: int, name: str) -> float:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return -1.0
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return -1.0


@pytest.mark.e2e
def test_sync_stream_sigterm_leaves_every_history_bar_unchanged(tmp_path):
    data = tmp_path / "data"
    port = free_port()
    with run_simulator_in_thread(seed=4, speed=60, sim_start=SIM_START, resolve_delay_s=0.0) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "TRADINGVIEW_", "REDIS_"))}
        env.update({
            "POCKETQUANT_DATA_DIR": str(data), "TRADINGVIEW_WS_URL": sim.url,
            "STREAMER_HEALTH_PORT": str(port), "STREAMER_REGISTRY_POLL_S": "0.2",
            "STREAMER_STORE_BATCH_MS": "100", "STREAMER_CACHE_FLUSH_MS": "50", "LOG_FORMAT": "json",
        })
        settings = load_settings(env, dotenv_path=tmp_path / "none.env")
        store = open_bar_store(settings)
        for symbol in (BTC, AAPL):
            spec = sim.market.spec(symbol)
            store.add_symbol(SymbolInfo(symbol, timezone=spec.timezone, session=spec.session, stream=True))
            for interval in SYNCED:
                out = sync_history(store, TradingViewClient(url=sim.url), symbol, interval,
                                   first_bars=60, overlap_bars=2)
                assert out.mode == "first" and out.inserted == 60
        before = {(s, i): store.read_bars(s, i) for s in (BTC, AAPL) for i in SYNCED}

        log_path = tmp_path / "streamer.log"
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen([sys.executable, "-m", "streamer"], env=env, cwd=tmp_path,
                                    stdout=log_file, stderr=subprocess.STDOUT,
                                    preexec_fn=_default_signals, start_new_session=True)
        try:
            # a few completed 1m bars have been written (a simulated minute per wall second)
            wait_for(lambda: metric(port, "pocketquant_streamer_bars_written_total") >= 6, 40,
                     "completed bars written")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    events = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    [stopped] = [e for e in events if e.get("event") == "streamer_stopped"]
    assert stopped["partial_bars"] == 26 and stopped["unwritten"] == 0  # 2 symbols x 13 intervals

    for (symbol, interval), old in before.items():
        new = store.read_bars(symbol, interval)
        # every bar history wrote: same key, same values, still history's, still complete
        kept = new.loc[old.index, VALUES]
        assert kept.equals(old[VALUES]), (symbol, interval)
        assert set(kept["source"]) == {"history"} and not kept["partial"].any()
        # the stream's flush of the key history already had (today's bar, this hour's bar) is
        # kept apart for reconciliation, not in the canonical row
        shadow = store.read_stream_bars(symbol, interval)
        flushed = shadow[shadow["partial"]]
        assert len(flushed) == 1 and flushed.index[0] in old.index, (symbol, interval)
        assert new.loc[flushed.index[0], "source"] == "history"
        # anything the stream added under new keys is the stream's, and the flushed one partial
        extra = new.drop(old.index)
        assert set(extra["source"]) <= {"stream"}
        assert extra["partial"].tolist() == [k in flushed.index for k in extra.index]

    # series history never wrote: the stream's bars as it wrote them, the bar in progress at
    # shutdown (and one joined mid-way, for the 1m bar the stream started in) marked partial
    for symbol in (BTC, AAPL):
        for interval in ALL_INTERVALS:
            if interval.value in SYNCED:
                continue
            frame = store.read_bars(symbol, interval)
            assert set(frame["source"]) == {"stream"}, (symbol, interval)
            assert frame[VALUES].equals(store.read_stream_bars(symbol, interval)[VALUES])
            assert bool(frame["partial"].iloc[-1]), (symbol, interval)
            assert int(frame["partial"].sum()) <= 2
    store.close()
