"""The real process: `python -m streamer` against the simulator with a real redis-server,
read back through the `pocketquant live` CLI in other processes, /health and /metrics over
HTTP, and SIGTERM mid-bar leaving the in-progress bars in the store marked partial."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest

from pocketquant_pipelines.market.intervals import ALL_INTERVALS
from pocketquant_pipelines.settings import load_settings
from pocketquant_pipelines.storage.factory import open_bar_store
from tradingview_simulator.server import run_simulator_in_thread
from streamer_helpers import as_synced
from tests.support import free_port, wait_for

BTC, AAPL = "BINANCE:BTCUSDT", "NASDAQ:AAPL"
SIM_START = datetime(2026, 1, 30, 15, 0, 5, tzinfo=UTC)  # 10:00 New York: AAPL is trading


def _default_signals():
    # test runners may start us with SIGINT/SIGTERM ignored; children inherit that
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def http_get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return None, ""


@pytest.fixture
def sim():
    with run_simulator_in_thread(seed=4, speed=60, sim_start=SIM_START, resolve_delay_s=0.0) as server:
        yield server


@pytest.mark.e2e
def test_streamer_process_live_cli_health_and_sigterm(tmp_path, sim, redis_server):
    data = tmp_path / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "TRADINGVIEW_", "REDIS_"))}
    env.update({
        "POCKETQUANT_DATA_DIR": str(data), "TRADINGVIEW_WS_URL": sim.url, "REDIS_URL": redis_server,
        "STREAMER_HEALTH_PORT": str(port), "STREAMER_REGISTRY_POLL_S": "0.2",
        "STREAMER_STORE_BATCH_MS": "100", "STREAMER_CACHE_FLUSH_MS": "50", "LOG_FORMAT": "json",
    })
    settings = load_settings(env, dotenv_path=tmp_path / "none.env")
    store = open_bar_store(settings)
    for symbol in (BTC, AAPL):
        store.add_symbol(as_synced(sim.market, symbol))

    log_path = tmp_path / "streamer.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "streamer"], env=env, cwd=tmp_path,
                                stdout=log_file, stderr=subprocess.STDOUT,
                                preexec_fn=_default_signals, start_new_session=True)
    cli = [sys.executable, "-m", "pocketquant_pipelines"]
    try:
        base = f"http://127.0.0.1:{port}"
        status, body = wait_for(lambda: (r := http_get(base + "/health"))[0] == 200 and r, 30, "/health 200")
        health = json.loads(body)
        assert health["connection"] == "connected" and health["subscribed"] == [BTC, AAPL]
        assert health["store"]["reachable"] and health["cache"]["reachable"]

        # --follow: completed bars as they are published (1m bars complete every wall second)
        follow = subprocess.run(cli + ["live", "--follow", "--bars-only", "--format", "json", "--limit", "3",
                                       "--timeout", "20", BTC],
                                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                                preexec_fn=_default_signals)
        assert follow.returncode == 0, follow.stderr
        lines = [json.loads(line) for line in follow.stdout.splitlines()]
        assert len(lines) == 3 and all(m["type"] == "bar" and m["data"]["symbol"] == BTC for m in lines)
        assert all(m["channel"] == f"pq:bars:{BTC}:{m['data']['interval']}" for m in lines)

        # the latest quote and the in-progress bar of every interval
        shown = subprocess.run(cli + ["live", BTC], env=env, cwd=tmp_path, capture_output=True, text=True,
                               timeout=60, preexec_fn=_default_signals)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith(f"{BTC}  last ")
        for interval in ALL_INTERVALS:
            assert f"\n  {interval.value:<8} " in shown.stdout
        as_json = subprocess.run(cli + ["live", "--format", "json", AAPL], env=env, cwd=tmp_path, capture_output=True,
                                 text=True, timeout=60, preexec_fn=_default_signals)
        snap = json.loads(as_json.stdout)
        assert snap["quote"]["symbol"] == AAPL and set(snap["bars"]) == {i.value for i in ALL_INTERVALS}
        everything = subprocess.run(cli + ["live", "--all"], env=env, cwd=tmp_path, capture_output=True,
                                    text=True, timeout=60, preexec_fn=_default_signals)
        assert everything.stdout.count(" last ") == 2

        status, metrics = http_get(base + "/metrics")
        assert status == 200
        values = dict(line.rsplit(" ", 1) for line in metrics.splitlines() if line and not line.startswith("#"))
        assert float(values["pocketquant_streamer_ticks_total"]) > 0
        assert float(values["pocketquant_streamer_bars_written_total"]) > 0
        assert values["pocketquant_streamer_connected"] == "1"
        assert "pocketquant_streamer_store_write_seconds_count" in values

        # a quote stamped in the year 3000: rejected and counted, the stream goes on
        sim.faults.future_tick_symbol = BTC
        sim.faults.future_ticks = 1

        def scrape() -> dict:
            return dict(line.rsplit(" ", 1) for line in http_get(base + "/metrics")[1].splitlines()
                        if line and not line.startswith("#"))

        future = 'pocketquant_streamer_rejected_ticks_total{reason="future"}'
        after = wait_for(lambda: (m := scrape()).get(future) == "1" and m, 20, "the year-3000 tick counted")
        assert after["pocketquant_streamer_late_ticks_total"] == "0"
        status, body = http_get(base + "/health")
        assert status == 200 and json.loads(body)["rejected_ticks"] == {"future": 1, "before_epoch": 0}
        ticks_then = float(after["pocketquant_streamer_ticks_total"])
        wait_for(lambda: float(scrape()["pocketquant_streamer_ticks_total"]) > ticks_then + 5, 20, "ticks after it")

        # SIGTERM mid-bar: exits promptly; in-progress bars land in the store marked partial
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log_text = log_path.read_text()
    events = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    stopped = [e for e in events if e.get("event") == "streamer_stopped"]
    assert stopped and stopped[0]["partial_bars"] == 26 and stopped[0]["unwritten"] == 0, log_text[-2000:]
    assert sim.stats.future_ticks_sent == 1
    assert sum(e.get("event") == "tick_rejected_implausible_time" for e in events) == 1
    for symbol in (BTC, AAPL):
        for interval in ALL_INTERVALS:
            frame = store.read_bars(symbol, interval)
            assert len(frame) and bool(frame["partial"].iloc[-1]), (symbol, interval)
            assert frame["source"].iloc[-1] == "stream"
            assert frame.index.max() <= sim.sim_now(), (symbol, interval)  # no year-3000 bar
    store.close()


@pytest.mark.e2e
def test_pocketquant_stream_command_runs_the_same_service(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "TRADINGVIEW_", "REDIS_"))}
    env.update({"POCKETQUANT_DATA_DIR": str(tmp_path / "data"), "LOG_FORMAT": "json",
                "TRADINGVIEW_WS_URL": "ws://127.0.0.1:9/socket.io/websocket"})  # nothing streamed: never dialled
    proc = subprocess.Popen([sys.executable, "-m", "pocketquant_pipelines", "stream", "--health-port", str(port)],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_default_signals, start_new_session=True)
    try:
        status, body = wait_for(lambda: (r := http_get(f"http://127.0.0.1:{port}/health"))[0] == 200 and r,
                                30, "/health 200")
        assert json.loads(body)["connection"] == "idle"  # an empty registry is healthy, not an error
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "streamer_stopped" in proc.stdout.read()
