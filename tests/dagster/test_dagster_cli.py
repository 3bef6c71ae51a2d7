"""`pocketquant symbols / sync / bars / status` in-process, against the simulator and a real
temporary Dagster instance."""

import json

import dagster as dg
import pandas as pd
import pytest

from pocketquant_pipelines.cli import main
from pocketquant_pipelines.defs.history import historical_bars


@pytest.fixture(autouse=True)
def _logging_restored():
    # commands that talk to TradingView turn the client's logs down to ERROR for their one line
    # of output; in a process of its own that ends with the command, here it would outlive the
    # test and silence the warnings later tests read
    yield
    from pocketquant_pipelines.logging import configure_logging

    configure_logging("console", "INFO", force=True)


@pytest.fixture
def sim_env(monkeypatch, simulator):
    monkeypatch.setenv("TRADINGVIEW_WS_URL", simulator.url)


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_symbols_add_list_remove(capsys, sim_env, store):
    code, out, _ = run(capsys, "symbols", "add", "nasdaq:aapl", "--stream", "--name", "Apple")
    assert code == 0 and out.startswith("added NASDAQ:AAPL (streamed): ")
    code, out, _ = run(capsys, "symbols", "add", "SP:SPX")
    assert code == 0
    code, out, _ = run(capsys, "symbols", "add", "SP:SPX")
    assert "already registered" in out
    code, out, _ = run(capsys, "symbols", "list", "--format", "json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["symbol"]: r["stream"] for r in rows} == {"NASDAQ:AAPL": True, "SP:SPX": False}
    code, out, _ = run(capsys, "symbols", "list")
    assert "NASDAQ:AAPL" in out and "Apple" in out
    assert run(capsys, "symbols", "remove", "SP:SPX")[0] == 0
    code, _, err = run(capsys, "symbols", "remove", "SP:SPX")
    assert code == 1 and "not registered" in err


def test_symbols_add_rejects_bad_symbol_naming_it(capsys, store):
    code, _, err = run(capsys, "symbols", "add", "NASDAQ|AAPL")
    assert code == 2 and "'NASDAQ|AAPL'" in err
    # never rewritten into another symbol: Unicode upper-casing would register NASDAQ:STRASSE
    code, _, err = run(capsys, "symbols", "add", "nasdaq:straße", "--offline")
    assert code == 2 and err.strip().splitlines() == [
        "error: invalid symbol 'nasdaq:straße': 'ß' is not ASCII; TradingView symbols are EXCHANGE:CODE "
        "in A-Z 0-9 _ . ! & / ^ -"]
    assert store.list_symbols() == []


def _sensor_adds(store, instance, resources) -> list[str]:
    """The partitions the registry sensor would create from the registry as it is now."""
    from pocketquant_pipelines.defs.sensors import symbol_registry_sensor

    with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
        result = symbol_registry_sensor(ctx)
    requests = getattr(result, "dynamic_partitions_requests", None) or []
    return sorted(k for r in requests if isinstance(r, dg.AddDynamicPartitionsRequest) for k in r.partition_keys)


def test_symbols_add_resolves_the_symbol_first_and_records_symbol_resolved(capsys, sim_env, simulator, store,
                                                                        instance, resources):
    code, out, err = run(capsys, "symbols", "add", "NASDAQ:AAPL")
    assert code == 0, err
    spec = simulator.market.spec("NASDAQ:AAPL")
    info = store.get_symbol("NASDAQ:AAPL")
    # what symbol_resolved says, before any sync: the streamer and the aggregator need no guess
    assert (info.timezone, info.session, info.type) == (spec.timezone, spec.session, spec.type) == (
        "America/New_York", "0930-1600", "stock")
    assert info.description == spec.description and info.stream is False
    assert out == f"added NASDAQ:AAPL: {spec.description}, stock, America/New_York, session 0930-1600\n"
    assert store.count_bars("NASDAQ:AAPL", "1d") == 0  # a check, not a sync
    assert _sensor_adds(store, instance, resources) == ["NASDAQ:AAPL"]


def test_symbols_add_unknown_symbol_is_one_line_and_registers_nothing(capsys, sim_env, simulator, store,
                                                                   instance, resources):
    code, out, err = run(capsys, "symbols", "add", "NASDAQ:NOPE", "--stream")
    assert code != 0 and out == ""
    assert err.strip().splitlines() == [
        f"error: unknown symbol 'NASDAQ:NOPE': TradingView answered 'invalid symbol' ({simulator.url}); "
        "nothing registered"]
    assert store.list_symbols() == [] and store.get_symbol("NASDAQ:NOPE") is None
    assert _sensor_adds(store, instance, resources) == []  # so no partitions appear


def test_symbols_add_unknown_symbol_in_a_real_process(simulator, data_dir):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADINGVIEW_")}
    proc = subprocess.run([sys.executable, "-m", "pocketquant_pipelines", "symbols", "add", "NASDAQ:NOPE",
                           "--ws-url", simulator.url], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.strip().splitlines()
    assert "NASDAQ:NOPE" in line and "nothing registered" in line
    listed = subprocess.run([sys.executable, "-m", "pocketquant_pipelines", "symbols", "list", "--format", "json"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and listed.stdout == ""


def test_symbols_add_offline_needs_no_server_and_says_so(capsys, monkeypatch, store):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"ws://127.0.0.1:{s.getsockname()[1]}/socket.io/websocket"
    monkeypatch.setenv("TRADINGVIEW_WS_URL", dead)
    monkeypatch.setenv("TRADINGVIEW_REQUEST_TIMEOUT_S", "1.5")
    # without --offline: unreachable is a clear error that points at --offline
    code, out, err = run(capsys, "symbols", "add", "NASDAQ:AAPL")
    assert code == 1 and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith(f"error: cannot check NASDAQ:AAPL against TradingView at {dead}: ")
    assert line.endswith("nothing registered (use --offline to register it without the check)")
    assert store.list_symbols() == []
    # with it: registered at once, unchecked, and the output says so
    code, out, err = run(capsys, "symbols", "add", "NASDAQ:AAPL", "--offline", "--stream")
    assert code == 0 and out == "added NASDAQ:AAPL (streamed)\n"
    assert "--offline" in err and "not checked" in err
    info = store.get_symbol("NASDAQ:AAPL")
    assert info.stream and info.session is None and info.timezone is None


def test_sync_then_bars_in_every_format(capsys, sim_env, store, tmp_path):
    run(capsys, "symbols", "add", "BINANCE:BTCUSDT")
    code, out, err = run(capsys, "sync", "BINANCE:BTCUSDT", "-i", "1h", "-i", "1d", "--bars", "30")
    assert code == 0, err
    assert "BINANCE:BTCUSDT 1h [explicit, simulator]: fetched 30" in out
    assert "BINANCE:BTCUSDT 1d [explicit, simulator]: fetched 30" in out
    code, out, _ = run(capsys, "sync", "BINANCE:BTCUSDT", "-i", "1h", "--format", "json")
    outcome = json.loads(out)
    assert outcome["mode"] == "incremental" and outcome["inserted"] + outcome["updated"] + outcome["unchanged"] == outcome["fetched"]
    assert store.count_bars("BINANCE:BTCUSDT", "1h") >= 30

    code, out, _ = run(capsys, "bars", "BINANCE:BTCUSDT", "-i", "1d", "--limit", "5", "--format", "csv")
    lines = out.splitlines()
    assert lines[0] == "time,open,high,low,close,volume,source,partial" and len(lines) == 6
    code, out, _ = run(capsys, "bars", "BINANCE:BTCUSDT", "-i", "1d", "--limit", "3", "--format", "json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 3 and rows[0]["symbol"] == "BINANCE:BTCUSDT" and rows[0]["source"] == "history"
    frame = store.read_bars("BINANCE:BTCUSDT", "1d")
    assert rows[-1]["close"] == frame["close"].iloc[-1]
    code, out, _ = run(capsys, "bars", "BINANCE:BTCUSDT", "-i", "1d", "--limit", "2")
    assert "TIME (UTC)" in out and len(out.splitlines()) == 4
    start = frame.index[-10].strftime("%Y-%m-%d")
    code, out, _ = run(capsys, "bars", "BINANCE:BTCUSDT", "-i", "1d", "--start", start, "--format", "json")
    assert len(out.splitlines()) == 10
    target = tmp_path / "btc.parquet"
    code, _, err = run(capsys, "bars", "BINANCE:BTCUSDT", "-i", "1d", "--format", "parquet", "-o", str(target))
    assert code == 0 and "wrote 30 bars" in err
    assert len(pd.read_parquet(target)) == 30


def test_bars_errors_name_the_bad_value(capsys):
    assert run(capsys, "bars", "NASDAQ:AAPL", "-i", "2d")[0] == 2
    code, _, err = run(capsys, "bars", "NASDAQ:AAPL", "--start", "yesterday")
    assert code == 2 and "'yesterday'" in err
    code, _, err = run(capsys, "bars", "NASDAQ:AAPL", "--format", "parquet")
    assert code == 2 and "--output" in err


def test_sync_unknown_symbol_reports_the_reason(capsys, sim_env):
    code, _, err = run(capsys, "sync", "NASDAQ:NOSUCH", "--bars", "10")
    assert code == 1 and "NASDAQ:NOSUCH" in err


def test_status_reads_dagster_and_the_store(capsys, instance, resources, store):
    from dagster_helpers import register

    register(store, instance, "NASDAQ:AAPL", "NASDAQ:NOSUCH")
    dg.materialize([historical_bars], partition_key="1d|NASDAQ:AAPL", instance=instance,
                   resources=resources, run_config=dg.RunConfig(ops={"historical_bars": {"config": {"bars": 25}}}))
    dg.materialize([historical_bars], partition_key="1d|NASDAQ:NOSUCH", instance=instance,
                   resources=resources, raise_on_error=False)
    code, out, err = run(capsys, "status", "--format", "json")
    assert code == 0, err
    rows = {(r["symbol"], r["interval"]): r for r in map(json.loads, out.splitlines())}
    ok = rows[("NASDAQ:AAPL", "1d")]
    assert ok["status"] == "MATERIALIZED" and ok["bars_stored"] == 25 and ok["last_sync_at"]
    assert ok["last_outcome"].startswith("fetched 25, inserted 25")
    bad = rows[("NASDAQ:NOSUCH", "1d")]
    assert bad["status"] == "FAILED" and "NOSUCH" in bad["last_error"] and bad["bars_stored"] == 0
    code, out, _ = run(capsys, "status", "--symbol", "NASDAQ:AAPL")
    assert "MATERIALIZED" in out and "NOSUCH" not in out


def test_status_without_dagster_home_says_so(capsys, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    code, _, err = run(capsys, "status")
    assert code == 2 and "DAGSTER_HOME" in err
