"""The Dagster UI as a sync console, end to end: simulator, dagster-webserver, dagster-daemon and
the streamer as real processes on a demo-like set of symbols (one TradingView does not have).

What the UI shows is read the way the UI reads it, over the webserver's GraphQL endpoint, and
then in headless Chromium (Debian's ``chromium`` over the DevTools protocol, no browser
download), which saves the screenshots docs/dagster.md shows."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pocketquant_pipelines.demo import ProcessGroup, free_port, start_simulator, wait_for_http
from pocketquant_pipelines.settings import PROJECT_ROOT

from headless_chromium import CHROMIUM, Chromium
from test_dagster_e2e import cli, graphql, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

HEALTHY = ["BINANCE:BTCUSDT", "NASDAQ:AAPL", "SP:SPX"]
BAD = "NASDAQ:NOPE"                 # registered --offline; the simulator does not have it
REBUILD_PERIOD_S = 60               # POCKETQUANT_DATASET_REBUILD_S for this stack
STREAM_MINUTES = 3
BIN = Path(sys.executable).parent
SHOTS = PROJECT_ROOT / "docs" / "img"
LOCATION = {"repositoryLocationName": "pocketquant", "repositoryName": "__repository__"}

RUNS = """query($filter: RunsFilter) { runsOrError(filter: $filter, limit: 500) {
  ... on Runs { results { runId jobName status tags { key value } } } } }"""


def _tags(run) -> dict:
    return {t["key"]: t["value"] for t in run["tags"]}


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    root = tmp_path_factory.mktemp("console")
    data_dir, home, logs = root / "data", root / "dagster_home", root / "logs"
    data_dir.mkdir()
    home.mkdir()
    # the demo's instance config; a shared machine can take minutes to load a code location
    config = (PROJECT_ROOT / "dagster_home" / "dagster.yaml").read_text()
    # (and a run whose launch timed out is retried rather than failed)
    (home / "dagster.yaml").write_text(config + (
        "\ncode_servers:\n  local_startup_timeout: 600\n"
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: QueuedRunCoordinator\n"
        "  config:\n    max_user_code_failure_retries: 5\n    user_code_failure_retry_delay: 15\n"))
    env = {k: v for k, v in os.environ.items()
           if k not in ("MONGODB_URL", "REDIS_URL", "TRADINGVIEW_AUTH_TOKEN")}
    env.update({"POCKETQUANT_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(home),
                "SYNC_FIRST_BARS": "200", "PYTHONUNBUFFERED": "1", "STREAMER_HEALTH_PORT": "0",
                "POCKETQUANT_DATASET_REBUILD_S": str(REBUILD_PERIOD_S),
                "DAGSTER_GRPC_TIMEOUT_SECONDS": "300"})
    procs = ProcessGroup()
    try:
        env["TRADINGVIEW_WS_URL"] = start_simulator(procs, env, free_port(), logs)
        added = cli(env, "symbols", "add", HEALTHY[0], "--stream")
        assert added.returncode == 0, added.stderr
        for symbol in HEALTHY[1:]:
            assert cli(env, "symbols", "add", symbol).returncode == 0
        assert cli(env, "symbols", "add", BAD, "--offline").returncode == 0

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        # as the demo runs it: `dagster dev` (webserver + daemon sharing one code server)
        procs.start("dagster", [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml",
                                "-h", "127.0.0.1", "-p", str(port)], env, PROJECT_ROOT,
                    logs / "dagster.log")
        procs.start("streamer", [sys.executable, "-m", "streamer"], env, PROJECT_ROOT,
                    logs / "streamer.log")
        streaming_since = time.monotonic()
        assert wait_for_http(f"{url}/server_info", timeout=600, procs=procs), f"see {logs}"

        def first_syncs_done():
            stats = graphql(url, """{ assetNodeOrError(assetKey: {path: ["historical_bars"]}) {
                ... on AssetNode { partitionStats { numMaterialized numFailed numPartitions } } } }""")
            s = stats["assetNodeOrError"]["partitionStats"]
            return s if s and s["numMaterialized"] + s["numFailed"] == 52 else None

        stats = wait_until("the first syncs", first_syncs_done, 900, procs, logs)
        yield {"url": url, "env": env, "procs": procs, "logs": logs, "stats": stats,
               "streaming_since": streaming_since}
    finally:
        procs.stop()


def test_lineage_starts_at_tradingview(console):
    data = graphql(console["url"], """{
      tv: assetNodeOrError(assetKey: {path: ["tradingview"]}) { ... on AssetNode {
        isExecutable isMaterializable groupName dependedByKeys { path } } }
      hist: assetNodeOrError(assetKey: {path: ["historical_bars"]}) { ... on AssetNode {
        dependencyKeys { path } } }
      ds: assetNodeOrError(assetKey: {path: ["ohlcv_dataset"]}) { ... on AssetNode {
        dependencyKeys { path } } } }""")
    tv = data["tv"]
    assert not tv["isExecutable"] and not tv["isMaterializable"]  # an external source
    assert {k["path"][0] for k in tv["dependedByKeys"]} >= {"historical_bars", "streamed_bars"}
    assert {k["path"][0] for k in data["hist"]["dependencyKeys"]} == {"tradingview"}
    assert {k["path"][0] for k in data["ds"]["dependencyKeys"]} == {"historical_bars", "streamed_bars"}


def test_a_failed_symbol_leaves_healthy_partitions_and_checks_healthy(console):
    url = console["url"]
    assert console["stats"]["numFailed"] == 13 and console["stats"]["numMaterialized"] == 39
    status = [json.loads(line) for line in cli(console["env"], "status", "-f", "json").stdout.splitlines()]
    by_key = {(r["symbol"], r["interval"]): r for r in status}
    for interval in ("1m", "1d", "1M"):
        bad = by_key[(BAD, interval)]
        assert bad["status"] == "FAILED" and bad["last_error_at"] and "NASDAQ:NOPE" in bad["last_error"]
        for symbol in HEALTHY:
            assert by_key[(symbol, interval)]["status"] == "MATERIALIZED"

    # per partition, the latest evaluation of every check: healthy keys have passing blocking
    # checks; the failed symbol's keys have none (nothing was synced to check)
    checks = graphql(url, """{ assetNodeOrError(assetKey: {path: ["historical_bars"]}) {
        ... on AssetNode { assetChecksOrError { ... on AssetChecks { checks { name } } } } } }"""
                     )["assetNodeOrError"]["assetChecksOrError"]["checks"]
    names = {c["name"] for c in checks}
    assert {"ohlc_sanity", "no_duplicate_bars", "streamed_vs_history"} <= names
    for name in ("ohlc_sanity", "no_duplicate_bars", "plausible_bar_times", "streamed_vs_history"):
        latest = _latest_check_per_partition(url, name)
        healthy_keys = {f"{i}|{s}" for s in HEALTHY for i in ("1m", "1h", "1d", "1M")}
        assert healthy_keys <= set(latest), (name, sorted(set(healthy_keys) - set(latest)))
        assert all(latest[k]["status"] == "SUCCEEDED" for k in healthy_keys), (name, latest)
        assert not [k for k in latest if k.endswith(BAD)], name


def _latest_check_per_partition(url: str, name: str) -> dict:
    executions = graphql(url, """query($name: String!) { assetCheckExecutions(
        assetKey: {path: ["historical_bars"]}, checkName: $name, limit: 1000) {
        runId partition status timestamp evaluation { success description } } }""",
        {"name": name})["assetCheckExecutions"]
    latest: dict = {}
    for e in sorted(executions, key=lambda e: e["timestamp"]):
        latest[e["partition"]] = e
    return latest


def test_a_range_run_reports_check_evaluations_per_key(console):
    url = console["url"]
    runs = graphql(url, RUNS, {"filter": {"pipelineName": "historical_sync",
                                          "tags": [{"key": "pocketquant/interval", "value": "1d"},
                                                   {"key": "pocketquant/trigger", "value": "first_sync"}]}})
    [run] = runs["runsOrError"]["results"]
    tags = _tags(run)
    assert tags["pocketquant/trigger"] == "first_sync"
    assert set(tags["pocketquant/symbols"].split(", ")) == {*HEALTHY, BAD}
    assert "1d × 4 symbols" in tags["pocketquant/range"]
    assert run["status"] == "FAILURE"  # NASDAQ:NOPE failed; the other three keys synced
    for name in ("ohlc_sanity", "no_gaps", "history_depth", "streamed_vs_history"):
        in_run = {e["partition"]: e for e in _latest_check_per_partition(url, name).values()
                  if e["runId"] == run["runId"]}
        assert set(in_run) == {f"1d|{s}" for s in HEALTHY}, name
        assert all(e["evaluation"]["description"] for e in in_run.values())
    logs = graphql(url, """query($id: ID!) { logsForRun(runId: $id, limit: 5000) {
        ... on EventConnection { events { __typename ... on MessageEvent { message } } } } }""",
        {"id": run["runId"]})["logsForRun"]["events"]
    messages = [e.get("message", "") for e in logs]
    assert not any("Skipping step" in m for m in messages)
    assert any(m.startswith("1d|NASDAQ:NOPE: FAILED") for m in messages)
    [summary] = [m for m in messages if m.startswith("sync summary")]
    assert summary.splitlines()[-1].startswith("3 synced, 1 failed")


def test_runs_after_minutes_of_streaming_stay_readable(console):
    url = console["url"]
    deadline = console["streaming_since"] + STREAM_MINUTES * 60
    while time.monotonic() < deadline:
        assert not console["procs"].dead(), f"see {console['logs']}"
        time.sleep(5)
    elapsed = time.monotonic() - console["streaming_since"]
    runs = graphql(url, RUNS)["runsOrError"]["results"]
    # first syncs only: sync_daily_data may add a 1d run when the test spans a weekday hour
    syncs = [r for r in runs if r["jobName"] == "historical_sync"
             and _tags(r).get("pocketquant/trigger") == "first_sync"]
    rebuilds = [r for r in runs if _tags(r).get("pocketquant/trigger") == "streamer"]
    streamed = graphql(url, """{ assetNodeOrError(assetKey: {path: ["streamed_bars"]}) {
        ... on AssetNode { partitionStats { numMaterialized } } } }""")
    streamed_keys = streamed["assetNodeOrError"]["partitionStats"]["numMaterialized"]
    bound = int(elapsed // REBUILD_PERIOD_S) + 1
    print(f"after {elapsed:.0f} s: {len(runs)} runs, {len(syncs)} sync runs, "
          f"{len(rebuilds)} stream-triggered rebuilds (bound {bound}), "
          f"{streamed_keys} streamed partitions")
    assert len(syncs) == 13  # first syncs: one range run per interval, all four symbols
    assert all(_tags(r)["pocketquant/symbol"] == "4 symbols" for r in syncs)
    assert streamed_keys >= 1  # the streamer wrote BINANCE:BTCUSDT bars
    assert 1 <= len(rebuilds) <= bound
    # each rebuild folds every partition the streamer changed, and says which
    for run in rebuilds:
        assert _tags(run)["pocketquant/symbol"] == "BINANCE:BTCUSDT"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make test-deps installs it)")
def test_headless_chromium_finds_the_synced_symbols(console, tmp_path):
    url = console["url"]
    launched = graphql(url, """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
        __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
        {"p": {"selector": {**LOCATION, "jobName": "sync_overview_job"}, "mode": "default"}})
    assert launched["launchRun"]["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["launchRun"]["run"]["runId"]

    def overview_done():
        data = graphql(url, """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }""",
                       {"id": run_id})
        return data["runOrError"]["status"] in ("SUCCESS", "FAILURE") and data["runOrError"]["status"]

    assert wait_until("sync_overview", overview_done, 120, console["procs"], console["logs"]) == "SUCCESS"

    capture_console(url, tmp_path / "profile", SHOTS)


def capture_console(url: str, profile: Path, shots: Path) -> None:
    """Open the pages a quant reads, wait until each shows what it should, save a screenshot."""
    browser = Chromium(free_port(), profile)
    try:
        browser.open(f"{url}/assets/historical_bars")
        browser.wait_for_text("historical_bars", "Re-sync N bars", "Columns", timeout=120)
        browser.screenshot(shots / "asset.png")

        # a healthy partition selected: its sync metadata and the latest bars
        browser.open(f"{url}/assets/historical_bars?view=partitions&partition=1d%7CNASDAQ%3AAAPL")
        browser.wait_for_text(*HEALTHY, BAD, "latest_bars", "bars_inserted", timeout=120)
        browser.screenshot(shots / "partitions.png")

        browser.open(f"{url}/runs")
        browser.wait_for_text("pocketquant/symbol", "pocketquant/range", "4 symbols", timeout=120)
        browser.screenshot(shots / "runs.png")

        browser.open(f"{url}/assets/sync_overview")
        browser.wait_for_text("sync_overview", "series", BAD, *HEALTHY, timeout=120)
        assert browser.scroll_to_text("Metadata")  # the table itself, below the column schema
        browser.screenshot(shots / "overview.png")

        browser.open(f"{url}/assets/historical_bars?view=lineage")
        browser.wait_for_text("tradingview", "historical_bars", "ohlcv_dataset", timeout=120)
        browser.screenshot(shots / "lineage.png")
    finally:
        browser.close()
