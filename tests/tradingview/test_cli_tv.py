"""`pocketquant fetch` / `pocketquant quotes` as real subprocesses against the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tradingview_simulator.server import run_simulator_in_thread

ROOT = Path(__file__).resolve().parents[2]
SIM_START = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def sim_url():
    with run_simulator_in_thread(seed=11, sim_start=SIM_START, speed=200, pump_interval_s=0.02) as server:
        yield server.url


def pocketquant(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADINGVIEW_")}
    env["POCKETQUANT_DATA_DIR"] = "/tmp/pocketquant-cli-test"
    return subprocess.run(
        [sys.executable, "-m", "pocketquant_pipelines", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def test_fetch_json_lines(sim_url):
    proc = pocketquant("fetch", "BINANCE:BTCUSDT", "--interval", "1h", "--bars", "50",
                       "--format", "json", "--ws-url", sim_url)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 50
    assert set(rows[0]) == {"time", "open", "high", "low", "close", "volume"}
    times = [datetime.fromisoformat(r["time"]) for r in rows]
    assert all(t.utcoffset().total_seconds() == 0 for t in times)
    assert times == sorted(set(times)) and all(t.minute == 0 for t in times)
    assert all(r["low"] <= min(r["open"], r["close"]) and r["high"] >= max(r["open"], r["close"]) for r in rows)
    assert all(isinstance(r["volume"], float) for r in rows)


def test_fetch_index_volume_is_null_and_csv_works(sim_url):
    proc = pocketquant("fetch", "SP:SPX", "--bars", "5", "--format", "json", "--ws-url", sim_url)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["volume"] for line in proc.stdout.splitlines()] == [None] * 5
    proc = pocketquant("fetch", "NASDAQ:AAPL", "--bars", "3", "--format", "csv", "--ws-url", sim_url)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "time,open,high,low,close,volume" and len(lines) == 4


def test_quotes_json_lines(sim_url):
    proc = pocketquant("quotes", "BINANCE:BTCUSDT", "CME_MINI:NQ1!", "--limit", "12", "--format", "json",
                       "--ws-url", sim_url)
    assert proc.returncode == 0, proc.stderr
    ticks = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(ticks) == 12
    assert {"symbol", "time", "price", "volume", "bid", "ask"} <= set(ticks[0])
    assert {t["symbol"] for t in ticks} <= {"BINANCE:BTCUSDT", "CME_MINI:NQ1!"}
    assert all(t["bid"] < t["ask"] and t["volume"] >= 0 for t in ticks)


def test_fetch_unknown_symbol_one_clear_line(sim_url):
    proc = pocketquant("fetch", "NASDAQ:NOPE", "--format", "json", "--ws-url", sim_url)
    assert proc.returncode != 0 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "NASDAQ:NOPE" in lines[0] and "invalid symbol" in lines[0]


def test_quotes_unknown_symbol_only_fails_clearly(sim_url):
    proc = pocketquant("quotes", "NASDAQ:NOPE", "--limit", "1", "--ws-url", sim_url)
    assert proc.returncode != 0
    assert "NASDAQ:NOPE" in proc.stderr and "no_such_symbol" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error:")


@pytest.mark.parametrize("args, words", [
    (["fetch", "AAPL"], "AAPL"),
    (["fetch", "NASDAQ:AAPL", "--interval", "7m"], "7m"),
])
def test_bad_input_names_the_value(args, words):
    proc = pocketquant(*args, "--ws-url", "ws://127.0.0.1:9/socket.io/websocket")
    assert proc.returncode == 2
    assert words in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [["fetch", "BINANCE:BTCUSDT"], ["quotes", "BINANCE:BTCUSDT"]])
def test_unreachable_server_fails_after_the_request_timeout(command):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADINGVIEW_")}
    env["TRADINGVIEW_REQUEST_TIMEOUT_S"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "pocketquant_pipelines", *command, "--ws-url", f"ws://127.0.0.1:{port}/"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error:") and "connect" in proc.stderr
