"""The real process ends with a code a supervisor can act on: TradingView (the simulator)
rejecting the auth token is exit 3 with one log line naming the setting, not exit 0 and a
traceback."""

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from pocketquant_pipelines.settings import load_settings
from pocketquant_pipelines.storage.factory import open_bar_store
from tradingview_simulator import run_simulator_in_thread
from streamer import exit_codes
from streamer_helpers import as_synced

BTC = "BINANCE:BTCUSDT"


def _default_signals():
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def streamer_env(tmp_path, sim_url: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "TRADINGVIEW_", "REDIS_"))}
    env.update({"POCKETQUANT_DATA_DIR": str(tmp_path / "data"), "TRADINGVIEW_WS_URL": sim_url,
                "STREAMER_HEALTH_PORT": "0", "STREAMER_REGISTRY_POLL_S": "0.2", "LOG_FORMAT": "json"} | extra)
    return env


@pytest.mark.e2e
def test_a_rejected_token_exits_3_with_one_clear_line(tmp_path):
    start = datetime(2026, 1, 30, 15, 0, 5, tzinfo=UTC)
    with run_simulator_in_thread(seed=4, speed=60, sim_start=start, resolve_delay_s=0.0) as sim:
        env = streamer_env(tmp_path, sim.url, TRADINGVIEW_AUTH_TOKEN="expired-or-forged-token")
        settings = load_settings(env, dotenv_path=tmp_path / "none.env")
        with open_bar_store(settings) as store:
            store.add_symbol(as_synced(sim.market, BTC))
        proc = subprocess.run([sys.executable, "-m", "streamer"], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=60, preexec_fn=_default_signals)
    out = proc.stdout + proc.stderr
    assert proc.returncode == exit_codes.AUTH, out[-2000:]
    assert "Traceback" not in out
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    rejected = [e for e in events if e.get("event") == "tradingview_auth_rejected"]
    assert len(rejected) == 1 and "bad auth token" in rejected[0]["reason"]
    assert "TRADINGVIEW_AUTH_TOKEN" in rejected[0]["hint"]
    assert "expired-or-forged-token" not in out  # the secret itself never reaches the log
