"""The CLI's conventions: every command rejects bad numbers and flags while parsing, with one
`error:` line that names the flag and the value, exit code 2, never a traceback; settings
errors read the same; `--health-port 0` and `STREAMER_HEALTH_PORT=0` both mean any free port;
the help is for users."""

import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pocketquant_pipelines.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEAD_WS = "ws://127.0.0.1:9/socket.io/websocket"  # nothing listens: a parse error must come first

# (argv, the flag the error names, the value it names)
BAD = [
    (["fetch", "NASDAQ:AAPL", "--bars", "0"], "--bars", "'0'"),
    (["fetch", "NASDAQ:AAPL", "--bars", "many"], "--bars", "'many'"),
    (["fetch", "NASDAQ:AAPL", "--bars", "1000001"], "--bars", "'1000001'"),
    (["fetch", "NASDAQ:AAPL", "-i", "7m"], "--interval", "'7m'"),
    (["fetch", "NASDAQ:AAPL", "-f", "xml"], "--format", "'xml'"),
    (["fetch", "NASDAQ:AAPL", "--session", "night"], "--session", "'night'"),
    (["fetch", "NASDAQ:AAPL", "--ws-url", "http://example"], "--ws-url", "'http://example'"),
    (["quotes", "NASDAQ:AAPL", "--duration", "nan"], "--duration", "'nan'"),
    (["quotes", "NASDAQ:AAPL", "--duration", "inf"], "--duration", "'inf'"),
    (["quotes", "NASDAQ:AAPL", "--duration", "-1"], "--duration", "'-1'"),
    (["quotes", "NASDAQ:AAPL", "--duration", "0"], "--duration", "'0'"),
    (["quotes", "NASDAQ:AAPL", "--duration", "1e12"], "--duration", "'1e12'"),
    (["quotes", "NASDAQ:AAPL", "-n", "0"], "--limit", "'0'"),
    (["quotes", "NASDAQ:AAPL", "--limit", "2.5"], "--limit", "'2.5'"),
    (["quotes", "NASDAQ:AAPL", "-f", "yaml"], "--format", "'yaml'"),
    (["live", "--follow", "--count", "0", "--timeout", "-1"], "--count", "'0'"),
    (["live", "--follow", "--limit", "0"], "--limit", "'0'"),
    (["live", "--follow", "--timeout", "-1"], "--timeout", "'-1'"),
    (["live", "--follow", "--timeout", "nan"], "--timeout", "'nan'"),
    (["live", "NASDAQ:AAPL", "-f", "xml"], "--format", "'xml'"),
    (["stream", "--health-port", "70000"], "--health-port", "'70000'"),
    (["stream", "--health-port", "-1"], "--health-port", "'-1'"),
    (["stream", "--health-port", "http"], "--health-port", "'http'"),
    (["sync", "NASDAQ:AAPL", "--bars", "0"], "--bars", "'0'"),
    (["sync", "NASDAQ:AAPL", "-i", "1d", "-i", "2d"], "--interval", "'2d'"),
    (["sync", "NASDAQ:AAPL", "-f", "text"], "--format", "'text'"),
    (["bars", "NASDAQ:AAPL", "-n", "0"], "--limit", "'0'"),
    (["bars", "NASDAQ:AAPL", "-i", "2d"], "--interval", "'2d'"),
    (["bars", "NASDAQ:AAPL", "--start", "yesterday"], "--start", "'yesterday'"),
    (["bars", "NASDAQ:AAPL", "--end", "2024-13-01"], "--end", "'2024-13-01'"),
    (["bars", "NASDAQ:AAPL", "-f", "xlsx"], "--format", "'xlsx'"),
    (["symbols", "list", "-f", "yaml"], "--format", "'yaml'"),
    (["symbols", "add", "NASDAQ:AAPL", "--ws-url", "http://example"], "--ws-url", "'http://example'"),
    (["status", "-f", "yaml"], "--format", "'yaml'"),
    (["simulate", "--port", "70000"], "--port", "'70000'"),
    (["simulate", "--sim-start", "yesterday"], "--sim-start", "'yesterday'"),
]

# (argv, what the line names): usage errors click itself finds
USAGE = [
    (["fetch", "NASDAQ:AAPL", "--bogus"], "--bogus"),
    (["quotes", "NASDAQ:AAPL", "--duration"], "--duration"),
    (["live", "--json", "NASDAQ:AAPL"], "--json"),
    (["fetch"], "SYMBOL"),
    (["quotes"], "SYMBOL"),
    (["nosuch"], "nosuch"),
    (["symbols", "nosuch"], "nosuch"),
    (["simulate", "--bogus"], "--bogus"),
]

# (argv, what the line names): bad combinations the command finds before any I/O
COMBINATIONS = [
    (["live"], "--follow"),
    (["live", "--follow", "--bars-only", "--quotes-only"], "--quotes-only"),
    (["live", "NASDAQ:AAPL", "--timeout", "3"], "--timeout"),
    (["live", "--follow", "--limit", "3", "--count", "3"], "--count"),
    (["bars", "NASDAQ:AAPL", "-f", "parquet"], "--output"),
    (["bars", "NASDAQ:AAPL", "--start", "2024-02-01", "--end", "2024-01-01"], "--end"),
]


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    for var in list(os.environ):
        if var.startswith(("TRADINGVIEW_", "MONGODB_", "REDIS_", "STREAMER_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("POCKETQUANT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRADINGVIEW_WS_URL", DEAD_WS)
    monkeypatch.chdir(tmp_path)  # no .env
    return tmp_path


def run(capsys, argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(("argv", "flag", "value"), BAD, ids=[" ".join(a) for a, _, _ in BAD])
def test_bad_numbers_and_choices_are_one_line_naming_flag_and_value(capsys, isolated, argv, flag, value):
    code, out, err = run(capsys, argv)
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert flag in line and value in line


@pytest.mark.parametrize(("argv", "named"), USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_usage_errors_are_one_line(capsys, isolated, argv, named):
    code, out, err = run(capsys, argv)
    line = one_error_line(err)
    assert code == 2 and out == "" and named in line


@pytest.mark.parametrize(("argv", "named"), COMBINATIONS, ids=[" ".join(a) for a, _ in COMBINATIONS])
def test_bad_combinations_are_one_line(capsys, isolated, argv, named):
    code, out, err = run(capsys, argv)
    line = one_error_line(err)
    assert code == 2 and out == "" and named in line
    assert not (isolated / "data").exists()  # refused before any store or cache was opened


def pocketquant(*args, env=None, timeout=60):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGVIEW_", "STREAMER_", "REDIS_"))}
    return subprocess.run([sys.executable, "-m", "pocketquant_pipelines", *args], env={**base, **(env or {})},
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(("argv", "flag", "value"), [
    (["quotes", "NASDAQ:AAPL", "--duration", "nan"], "--duration", "'nan'"),
    (["live", "--count", "0", "--timeout", "-1"], "--count", "'0'"),
    (["live", "--follow", "--timeout", "-1"], "--timeout", "'-1'"),
    (["stream", "--health-port", "70000"], "--health-port", "'70000'"),
])
def test_a_real_process_prints_one_line_and_exits_2(argv, flag, value):
    proc = pocketquant(*argv)
    line = one_error_line(proc.stderr)
    assert proc.returncode == 2 and proc.stdout == ""
    assert flag in line and value in line


@pytest.mark.parametrize(("var", "raw"), [("STREAMER_HEALTH_PORT", "http"), ("TRADINGVIEW_REQUEST_TIMEOUT_S", "inf"),
                                          ("STREAMER_REGISTRY_POLL_S", "inf")])
def test_a_bad_setting_is_one_line_naming_it(tmp_path, var, raw):
    proc = pocketquant("live", "NASDAQ:AAPL", env={var: raw, "POCKETQUANT_DATA_DIR": str(tmp_path)})
    line = one_error_line(proc.stderr)
    assert proc.returncode == 2 and var in line and repr(raw) in line


def test_help_is_for_users():
    proc = pocketquant("--help")
    assert proc.returncode == 0
    first = proc.stdout.split("\n\n")[1].strip()
    assert first.startswith("PocketQuant: market data from TradingView")
    assert "commands/" not in proc.stdout and "click group" not in proc.stdout
    for command in ("fetch", "quotes", "simulate", "symbols", "sync", "bars", "status", "stream", "live"):
        assert f"\n  {command} " in proc.stdout
    bare = pocketquant()
    assert bare.returncode == 2 and "Commands:" in bare.stderr and "Traceback" not in bare.stderr


def test_every_data_command_takes_the_same_format_choices():
    for argv in (["fetch"], ["quotes"], ["symbols", "list"], ["sync"], ["bars"], ["status"], ["live"]):
        shown = pocketquant(*argv, "--help").stdout
        assert "-f, --format [table|csv|json" in shown, argv


def _stream_until_listening(env: dict, *args: str):
    proc = subprocess.Popen([sys.executable, "-m", "pocketquant_pipelines", "stream", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("{") and json.loads(line).get("event") == "health_listening":
                return proc, json.loads(line)["port"]
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"the streamer never listened: {proc.stdout.read()}")


@pytest.mark.e2e
@pytest.mark.parametrize("how", ["flag", "setting"])
def test_health_port_zero_means_any_free_port(tmp_path, how):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "TRADINGVIEW_", "REDIS_", "STREAMER_"))}
    env.update({"POCKETQUANT_DATA_DIR": str(tmp_path / "data"), "LOG_FORMAT": "json",
                "TRADINGVIEW_WS_URL": DEAD_WS})  # nothing streamed: never dialled
    if how == "setting":
        env["STREAMER_HEALTH_PORT"] = "0"
    proc, port = _stream_until_listening(env, *(["--health-port", "0"] if how == "flag" else []))
    try:
        assert port not in (0, 8765)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            assert resp.status == 200 and json.loads(resp.read())["connection"] == "idle"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_closed_pipe_is_not_an_error(tmp_path):
    env = {"POCKETQUANT_DATA_DIR": str(tmp_path / "data")}
    assert pocketquant("symbols", "add", "NASDAQ:AAPL", "--offline", env=env).returncode == 0
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGVIEW_", "STREAMER_", "REDIS_"))}
    proc = subprocess.Popen([sys.executable, "-m", "pocketquant_pipelines", "symbols", "list", "-f", "json"],
                            env={**base, **env}, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # `pocketquant symbols list | head -0`
    code, err = proc.wait(timeout=60), proc.stderr.read()
    assert (code, err) == (0, "")
