"""The bad-input matrix: every bad flag, setting and Dagster run config gets one clear error.

For the command line: a non-zero exit, exactly one line on stderr that names the bad value (or
the setting or flag that holds it), no traceback, and no secret anywhere in the output. The
settings cases run the real `pocketquant` process (the environment is read at start, where a
traceback would show); flag cases run in-process through the same `main` the console script
calls. The Dagster cases launch the real `historical_bars` asset with bad run config or tags
and read the failure off the run.
"""

import os
import stat
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pocketquant_pipelines.cli import main
from pocketquant_pipelines.defs.history import BARS_TAG, historical_bars
from pocketquant_pipelines.defs.resources import BarStoreResource, LiveCacheResource, TradingViewResource

ROOT = Path(__file__).resolve().parents[1]
DEAD_WS = "ws://127.0.0.1:9/socket.io/websocket"  # nothing listens there
SECRET = "SECRETxyz"  # planted in credentials; must never appear in any output
LONG_CODE = "NASDAQ:" + "A" * 5000


def _clean_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TRADINGVIEW_", "STREAMER_", "REDIS_", "MONGODB_", "SYNC_", "POCKETQUANT_"))}
    env.update({"POCKETQUANT_DATA_DIR": str(tmp_path / "data"), "TRADINGVIEW_WS_URL": DEAD_WS})
    (tmp_path / "data").mkdir(exist_ok=True)
    return env


def assert_one_clean_line(code: int, out: str, err: str, *named: str) -> str:
    assert code != 0, (out, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert SECRET not in err and SECRET not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("error: "), line
    for word in named:
        assert word in line, (word, line)
    assert len(line) < 600, line  # one readable line, not a dump
    return line


# ------------------------------------------------------------------ settings, in a real process
# (variable, value, what the line must name, argv)
LIVE = ["live", "NASDAQ:AAPL"]
LIST = ["symbols", "list"]
ENV_CASES = [
    ("MONGODB_URL", "mongodb://127.0.0.1:1/", ["MONGODB_URL", "127.0.0.1:1"], LIST),
    ("MONGODB_URL", "mongodb://127.0.0.1:notaport/", ["MONGODB_URL", "'notaport'"], LIST),
    ("MONGODB_URL", "mongodb://local host:27017/", ["MONGODB_URL", "whitespace"], LIST),
    ("MONGODB_URL", f"u:{SECRET}@host:27017", ["MONGODB_URL", "scheme"], LIST),
    ("MONGODB_URL", f"mongodb://u:{SECRET}@127.0.0.1:notaport/", ["MONGODB_URL", "'notaport'"], LIST),
    ("MONGODB_URL", f"mongodb://u:{SECRET}/x", ["MONGODB_URL", "port"], LIST),  # forgot the @
    ("MONGODB_URL", f"mongodb://u:{SECRET}@127.0.0.1:1/?authSource=admin", ["MONGODB_URL", "127.0.0.1:1"], LIST),
    ("MONGODB_URL", "mongodb+srv://cluster.example:27017/", ["MONGODB_URL", "mongodb+srv"], LIST),
    ("MONGODB_URL", "mongodb://127.0.0.1:99999/", ["MONGODB_URL", "'99999'"], LIST),
    ("MONGODB_URL", "http://127.0.0.1:27017/", ["MONGODB_URL", "'http'"], LIST),
    ("MONGODB_TIMEOUT_S", "inf", ["MONGODB_TIMEOUT_S", "'inf'"], LIST),
    ("MONGODB_DATABASE", "a/b", ["MONGODB_DATABASE"], LIST),
    ("REDIS_URL", "redis://127.0.0.1:1", ["REDIS_URL", "127.0.0.1:1"], LIVE),
    ("REDIS_URL", "redis://127.0.0.1:notaport", ["REDIS_URL", "'notaport'"], LIVE),
    ("REDIS_URL", "redis://127.0.0.1:6379/notadb", ["REDIS_URL", "'notadb'"], LIVE),
    ("REDIS_URL", "redis://127.0.0.1:6379?db=x", ["REDIS_URL", "'x'"], LIVE),
    ("REDIS_URL", f"redis://:{SECRET}@127.0.0.1:1/0", ["REDIS_URL", "127.0.0.1:1"], LIVE),
    ("REDIS_URL", f"redis://u:{SECRET}@local host:6379", ["REDIS_URL", "whitespace"], LIVE),
    ("REDIS_URL", "localhost:6379", ["REDIS_URL", "scheme"], LIVE),
    ("TRADINGVIEW_REQUEST_TIMEOUT_S", "inf", ["TRADINGVIEW_REQUEST_TIMEOUT_S", "'inf'"], LIVE),
    ("TRADINGVIEW_REQUEST_TIMEOUT_S", "nan", ["TRADINGVIEW_REQUEST_TIMEOUT_S", "'nan'"], LIVE),
    ("TRADINGVIEW_REQUEST_TIMEOUT_S", "0", ["TRADINGVIEW_REQUEST_TIMEOUT_S", "'0'"], LIVE),
    ("TRADINGVIEW_HEARTBEAT_TIMEOUT_S", "-3", ["TRADINGVIEW_HEARTBEAT_TIMEOUT_S", "'-3'"], LIVE),
    ("STREAMER_REGISTRY_POLL_S", "inf", ["STREAMER_REGISTRY_POLL_S", "'inf'"], LIVE),
    ("STREAMER_HEARTBEAT_TIMEOUT_S", "inf", ["STREAMER_HEARTBEAT_TIMEOUT_S"], LIVE),
    ("STREAMER_STORE_BATCH_MS", "999999999", ["STREAMER_STORE_BATCH_MS", "'999999999'"], LIVE),
    ("STREAMER_CACHE_FLUSH_MS", "soon", ["STREAMER_CACHE_FLUSH_MS", "'soon'"], LIVE),
    ("STREAMER_HEALTH_PORT", "99999", ["STREAMER_HEALTH_PORT", "'99999'"], LIVE),
    ("SYNC_FIRST_BARS", "0", ["SYNC_FIRST_BARS", "'0'"], LIVE),
    ("SYNC_DEFAULT_BARS", "lots", ["SYNC_DEFAULT_BARS", "'lots'"], LIVE),
    ("SYNC_OVERLAP_BARS", "1e9", ["SYNC_OVERLAP_BARS", "'1e9'"], LIVE),
    ("POCKETQUANT_CLOCK_SKEW_S", "inf", ["POCKETQUANT_CLOCK_SKEW_S", "'inf'"], LIVE),
    ("TRADINGVIEW_MAX_CONNECTIONS", "1000", ["TRADINGVIEW_MAX_CONNECTIONS", "'1000'"], LIVE),
    ("TRADINGVIEW_WS_URL", "http://example", ["TRADINGVIEW_WS_URL", "'http://example'"], LIVE),
    ("TRADINGVIEW_PASSWORD", "", [], None),  # placeholder replaced below (username without password)
    ("LOG_LEVEL", "LOUD", ["LOG_LEVEL", "'LOUD'"], LIVE),
    ("LOG_FORMAT", "xml", ["LOG_FORMAT", "'xml'"], LIVE),
    ("TRADINGVIEW_REQEST_TIMEOUT_S", "5", ["TRADINGVIEW_REQEST_TIMEOUT_S", "TRADINGVIEW_REQUEST_TIMEOUT_S"], LIVE),
]
ENV_CASES[ENV_CASES.index(("TRADINGVIEW_PASSWORD", "", [], None))] = (
    "TRADINGVIEW_USERNAME", "trader", ["TRADINGVIEW_USERNAME", "TRADINGVIEW_PASSWORD"], LIVE)


def pocketquant(argv, env, timeout=60):
    return subprocess.run([sys.executable, "-m", "pocketquant_pipelines", *argv], env=env, cwd=env.get("_CWD", ROOT),
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(("var", "value", "named", "argv"), ENV_CASES,
                         ids=[f"{v}={x[:30]}" for v, x, _, _ in ENV_CASES])
def test_a_bad_setting_is_one_line_in_a_real_process(tmp_path, var, value, named, argv):
    env = _clean_env(tmp_path)
    env[var] = value
    proc = pocketquant(argv, env)
    assert_one_clean_line(proc.returncode, proc.stdout, proc.stderr, *named)


def test_the_data_dir_as_a_regular_file_is_one_line(tmp_path):
    env = _clean_env(tmp_path)
    (tmp_path / "afile").write_text("x")
    env["POCKETQUANT_DATA_DIR"] = str(tmp_path / "afile")
    for argv in (LIST, ["symbols", "add", "--offline", "NASDAQ:AAPL"], ["bars", "NASDAQ:AAPL"]):
        proc = pocketquant(argv, env)
        assert_one_clean_line(proc.returncode, proc.stdout, proc.stderr, "POCKETQUANT_DATA_DIR", "afile")


def test_a_missing_data_dir_is_named_by_reads_and_created_by_writes(tmp_path):
    env = _clean_env(tmp_path)
    missing = tmp_path / "typo"
    env["POCKETQUANT_DATA_DIR"] = str(missing)
    for argv in (LIST, ["bars", "NASDAQ:AAPL"], ["live", "NASDAQ:AAPL"]):
        proc = pocketquant(argv, env)
        assert_one_clean_line(proc.returncode, proc.stdout, proc.stderr, "POCKETQUANT_DATA_DIR", "does not exist")
        assert not missing.exists()  # a read never creates it
    proc = pocketquant(["symbols", "add", "--offline", "NASDAQ:AAPL"], env)
    assert proc.returncode == 0, proc.stderr
    assert (missing / "bars.sqlite3").is_file()


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory on a read-only file system (root ignores permission bits, so chmod is not
    enough): a read-only bind mount; skipped, with the reason, where mounting is not allowed."""
    target = tmp_path / "ro"
    target.mkdir()
    (target / "bars.sqlite3").write_bytes(b"")
    proc = subprocess.run(["mount", "--bind", str(target), str(target)], capture_output=True, text=True)
    if proc.returncode != 0:
        if os.geteuid() != 0:
            target.chmod(stat.S_IRUSR | stat.S_IXUSR)
            yield target
            target.chmod(stat.S_IRWXU)
            return
        pytest.skip(f"cannot bind-mount here ({proc.stderr.strip()}); root ignores chmod")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True, capture_output=True)
        yield target
    finally:
        subprocess.run(["umount", str(target)], capture_output=True)


def test_a_read_only_data_dir_is_one_line(tmp_path, read_only_dir):
    env = _clean_env(tmp_path)
    env["POCKETQUANT_DATA_DIR"] = str(read_only_dir)
    for argv in (LIST, ["symbols", "add", "--offline", "NASDAQ:AAPL"]):
        proc = pocketquant(argv, env)
        assert_one_clean_line(proc.returncode, proc.stdout, proc.stderr, "POCKETQUANT_DATA_DIR", "not writable")


# ------------------------------------------------------------------ flags, in-process
FLAG_CASES = [
    (["bars", "NASDAQ:AAPL", "-o", "/nonexistent/x.csv"], ["--output", "/nonexistent"]),
    (["bars", "NASDAQ:AAPL", "-f", "parquet", "-o", "/nonexistent/x.parquet"], ["--output", "/nonexistent"]),
    (["bars", "NASDAQ:AAPL", "-o", "."], ["--output", "'.'"]),
    (["stream", "--health-port", "99999"], ["--health-port", "'99999'"]),
    (["quotes", "NASDAQ:AAPL", "--duration", "nan"], ["--duration", "'nan'"]),
    (["live", "--follow", "--count", "0", "--timeout", "-1"], ["--count", "'0'"]),
    (["live", "--follow", "--timeout", "inf"], ["--timeout", "'inf'"]),
    (["symbols", "add", "--offline", LONG_CODE], ["5007 characters", "NASDAQ:AAAA"]),
    (["bars", LONG_CODE], ["5007 characters"]),
    (["sync", LONG_CODE], ["5007 characters"]),
    (["live", LONG_CODE], ["5007 characters"]),
    (["symbols", "add", "--offline", "NASDAQ:AA PL"], ["'NASDAQ:AA PL'", "whitespace"]),
    (["symbols", "add", "--offline", "AAPL"], ["'AAPL'"]),
    (["symbols", "add", "--offline", "NASDAQ:AAPL|X"], ["'NASDAQ:AAPL|X'"]),
    (["symbols", "remove", "nasdaq:stra\u00dfe"], ["'nasdaq:stra\u00dfe'"]),
    (["bars", "NASDAQ:AAPL", "--start", "2024-02-30"], ["--start", "'2024-02-30'"]),
    (["bars", "NASDAQ:AAPL", "-n", "-5"], ["--limit", "'-5'"]),
    (["fetch", "NASDAQ:AAPL", "--bars", "1e3"], ["--bars", "'1e3'"]),
    (["sync", "NASDAQ:AAPL", "--bars", "-1"], ["--bars", "'-1'"]),
    (["doctor", "-f", "xml"], ["--format", "'xml'"]),
]


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    for var in list(os.environ):
        if var.startswith(("TRADINGVIEW_", "MONGODB_", "REDIS_", "STREAMER_", "SYNC_", "POCKETQUANT_")):
            monkeypatch.delenv(var)
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("POCKETQUANT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRADINGVIEW_WS_URL", DEAD_WS)
    monkeypatch.chdir(tmp_path)  # no .env
    return tmp_path


@pytest.mark.parametrize(("argv", "named"), FLAG_CASES, ids=[" ".join(a)[:60] for a, _ in FLAG_CASES])
def test_a_bad_flag_is_one_line(capsys, isolated, argv, named):
    code = main(list(argv))
    captured = capsys.readouterr()
    assert_one_clean_line(code, captured.out, captured.err, *named)


# ------------------------------------------------------------------ Dagster run config
DAGSTER_CASES = [
    ({"bars": 0}, {}, "0"),
    ({"bars": -5}, {}, "-5"),
    ({"bars": 1_000_001}, {}, "1000001"),
    ({"bars": "many"}, {}, "many"),
    ({"bars": 2.5}, {}, "2.5"),
    ({}, {BARS_TAG: "lots"}, "lots"),
    ({}, {BARS_TAG: "0"}, "0"),
    ({}, {BARS_TAG: "99999999"}, "99999999"),
]


@pytest.mark.parametrize(("config", "tags", "named"), DAGSTER_CASES,
                         ids=[f"{c or t}" for c, t, _ in DAGSTER_CASES])
def test_bad_run_config_fails_the_run_naming_the_value(tmp_path, monkeypatch, config, tags, named):
    monkeypatch.chdir(tmp_path)
    data = str(tmp_path / "data")
    resources = {"bar_store": BarStoreResource(data_dir=data), "live_cache": LiveCacheResource(data_dir=data),
                 "tradingview": TradingViewResource(data_dir=data, tradingview_ws_url=DEAD_WS)}
    run_config = dg.RunConfig(ops={"historical_bars": {"config": config}}) if config else None
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        instance.add_dynamic_partitions("symbols", ["NASDAQ:AAPL"])  # what the registry sensor does
        try:
            result = dg.materialize([historical_bars], partition_key="1d|NASDAQ:AAPL", instance=instance,
                                    resources=resources, run_config=run_config, tags=tags, raise_on_error=False)
        except dg.DagsterInvalidConfigError as exc:  # refused by the config schema before the run
            message = str(exc)
        else:
            assert not result.success
            [failure] = [e for e in result.all_events if e.is_step_failure]
            message = failure.step_failure_data.error.message
    assert named in message, message
    assert "Traceback" not in message
