"""`pocketquant fetch` / `quotes` as real subprocesses against the hostile server (reached through
TRADINGVIEW_WS_URL): one `error:` line, a non-zero exit, no traceback; or data where the
hostile frames are only skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tradingview.hostile_server import HostileServer

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {
    "TRADINGVIEW_HISTORY_DEADLINE_S": "4",
    "TRADINGVIEW_QUOTE_SILENCE_S": "2",
    "TRADINGVIEW_REQUEST_TIMEOUT_S": "30",
    "TRADINGVIEW_HEARTBEAT_TIMEOUT_S": "30",
}


def pocketquant(url: str, *args: str, **env_overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADINGVIEW_")}
    env.update(SETTINGS, TRADINGVIEW_WS_URL=url, POCKETQUANT_DATA_DIR="/tmp/pocketquant-hostile-cli-test",
               **env_overrides)
    return subprocess.run([sys.executable, "-m", "pocketquant_pipelines", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def assert_one_error_line(proc: subprocess.CompletedProcess, *phrases: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


@pytest.mark.parametrize("behaviour, phrases", [
    ("endless_paging", ["more than 5100 bars for a request of 100"]),
    ("endless_same_page", ["not complete within 4 s (TRADINGVIEW_HISTORY_DEADLINE_S)"]),
    ("silent", ["not complete within 4 s (TRADINGVIEW_HISTORY_DEADLINE_S)"]),
    ("slow_drip", ["not complete within 4 s (TRADINGVIEW_HISTORY_DEADLINE_S)"]),
    ("huge_frame", ["over 8388608 bytes (TRADINGVIEW_MAX_MESSAGE_BYTES)"]),
    ("wrong_length", ["a lost page is not the end of history"]),
    ("lying_header", ["over the frame cap", "a lost page is not the end of history"]),
    ("garbage_page", ["undecodable frame(s)", "a lost page is not the end of history"]),
    ("close_mid_frame", ["without a close frame"]),
])
def test_fetch_against_a_hostile_server_is_one_error_line(behaviour, phrases):
    patience = {"TRADINGVIEW_HISTORY_DEADLINE_S": "30"} if behaviour == "huge_frame" else {}
    with HostileServer(behaviour) as server:
        proc = pocketquant(server.url, "fetch", "BINANCE:BTCUSDT", "--interval", "1m", "--bars", "100", **patience)
    assert_one_error_line(proc, "BINANCE:BTCUSDT", *phrases)
    assert proc.returncode == 1  # the server's fault, not bad input (2)


def test_fetch_skips_garbage_frames_and_prints_every_bar():
    with HostileServer("garbage_frames") as server:
        proc = pocketquant(server.url, "fetch", "BINANCE:BTCUSDT", "--interval", "1m", "--bars", "100",
                           "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert len([json.loads(line) for line in proc.stdout.splitlines()]) == 100
    assert "Traceback" not in proc.stderr and "exhausted" not in proc.stderr


@pytest.mark.parametrize("behaviour, phrases", [
    ("silent", ["TRADINGVIEW_QUOTE_SILENCE_S", "no reply yet for BINANCE:BTCUSDT"]),
    ("hello_then_silent", ["TRADINGVIEW_QUOTE_SILENCE_S"]),
    ("heartbeats_only", ["TRADINGVIEW_QUOTE_SILENCE_S", "no reply yet for BINANCE:BTCUSDT"]),
    ("huge_frame", ["over 8388608 bytes (TRADINGVIEW_MAX_MESSAGE_BYTES)"]),
])
def test_quotes_against_a_hostile_server_is_one_error_line(behaviour, phrases):
    # the huge message is ~1 s of work for both ends on a busy machine: silence must not win
    patience = {"TRADINGVIEW_QUOTE_SILENCE_S": "20"} if behaviour == "huge_frame" else {}
    with HostileServer(behaviour) as server:
        proc = pocketquant(server.url, "quotes", "BINANCE:BTCUSDT", **patience)  # no --limit, no --duration
    assert_one_error_line(proc, *phrases)


def test_quotes_under_a_flood_stop_at_the_limit_and_the_duration():
    with HostileServer("quote_flood") as server:
        limited = pocketquant(server.url, "quotes", "BINANCE:BTCUSDT", "--limit", "500", "--format", "csv")
        timed = pocketquant(server.url, "quotes", "BINANCE:BTCUSDT", "--duration", "1", "--format", "json")
    assert limited.returncode == 0, limited.stderr
    assert len(limited.stdout.splitlines()) == 501  # header + 500 ticks
    assert timed.returncode == 0, timed.stderr
    assert timed.stdout and all(json.loads(line)["symbol"] == "BINANCE:BTCUSDT" for line in timed.stdout.splitlines())


@pytest.mark.parametrize("var, raw, reason", [
    ("TRADINGVIEW_HISTORY_DEADLINE_S", "inf", "is not a finite number"),
    ("TRADINGVIEW_HISTORY_DEADLINE_S", "0", "must be a number of seconds in (0, 3600]"),
    ("TRADINGVIEW_QUOTE_SILENCE_S", "nan", "is not a finite number"),
    ("TRADINGVIEW_QUOTE_SILENCE_S", "7200", "must be a number of seconds in (0, 3600]"),
    ("TRADINGVIEW_MAX_MESSAGE_BYTES", "1000", "must be an integer in 65536..268435456"),
    ("TRADINGVIEW_MAX_MESSAGE_BYTES", "8MB", "is not an integer"),
])
def test_bad_deadline_and_cap_settings_are_one_line_naming_the_setting(var, raw, reason):
    proc = pocketquant("ws://127.0.0.1:9/", "fetch", "BINANCE:BTCUSDT", **{var: raw})
    assert_one_error_line(proc, f"{var}={raw!r}: {reason}")
    assert proc.returncode == 2
