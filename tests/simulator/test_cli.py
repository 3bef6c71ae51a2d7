"""`pocketquant simulate` as a real process: prints its URL, serves, stops cleanly on signals."""

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.simulator.rawclient import RawClient, method_is

ROOT = Path(__file__).resolve().parents[2]


def start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "pocketquant_pipelines", "simulate", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


async def fetch_quote(url: str) -> dict:
    async with RawClient(url) as c:
        hello = await c.recv()
        assert hello[0].kind == "hello"
        await c.send("quote_create_session", "qs_cli")
        await c.send("quote_add_symbols", "qs_cli", "BINANCE:BTCUSDT")
        frames = await c.until(method_is("quote_completed"))
        return next(f for f in frames if f.method == "qsd").params[1]["v"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_simulate_prints_url_serves_and_stops_on_signal(sig):
    proc = start("--port", "0", "--speed", "60", "--seed", "7", "--sim-start", "2026-03-10T15:00:00Z",
                 "--heartbeat-s", "0.5")
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/socket.io/websocket")
        assert "simulated data" in proc.stdout.readline()
        quote = asyncio.run(fetch_quote(url))
        # --sim-start 2026-03-10T15:00Z (epoch 1773154800) was applied: the last tick is just before it.
        assert 1773154800 - 10 <= quote["lp_time"] < 1773154800 + 3600
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_simulate_rejects_bad_arguments_with_a_clear_message():
    proc = start("--sim-start", "yesterday")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "invalid value for --sim-start: 'yesterday'" in err


def test_simulate_reports_a_busy_port():
    first = start("--port", "0")
    try:
        url = first.stdout.readline().strip()
        port = url.split(":")[2].split("/")[0]
        second = start("--port", port)
        out, err = second.communicate(timeout=30)
        assert second.returncode != 0
        assert f"cannot listen on 127.0.0.1:{port}" in err
        assert "Traceback" not in err
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=15)



@pytest.mark.parametrize("argv, flag, value", [
    (["--delay", "NASDAQ:MSFT=5"], "--delay", "'NASDAQ:MSFT'"),
    (["--delay", "AAPL"], "--delay", "'AAPL'"),
    (["--sim-start", "2099-01-01"], "--sim-start", "2099-01-01"),
    (["--seed", "-1"], "--seed", "'-1'"),
    (["--speed", "0"], "--speed", "'0'"),
    (["--malformed-every", "0"], "--malformed-every", "'0'"),
])
def test_a_bad_value_is_one_line_naming_the_flag(capsys, argv, flag, value):
    from pocketquant_pipelines.cli import main

    code = main(["simulate", *argv])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith(f"error: invalid value for {flag}: ") and value in line
