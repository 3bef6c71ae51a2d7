"""End to end: simulator + dagster-webserver + dagster-daemon as real processes.

The CLI registers symbols, the registry sensor (running in the daemon) turns them into
partitions and backfills their first sync, a backfill launched over GraphQL re-syncs a
selection with an explicit bar count, and the results are read back from the store, from
GraphQL and from `pocketquant status`.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pocketquant_pipelines.demo import ProcessGroup, free_port, start_simulator, wait_for_http
from pocketquant_pipelines.settings import PROJECT_ROOT, load_settings
from pocketquant_pipelines.storage.factory import open_bar_store
from tests.support import cli, graphql, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

SYMBOLS = ["NASDAQ:AAPL", "BINANCE:BTCUSDT", "SP:SPX"]
BIN = Path(sys.executable).parent


def test_backfill_over_graphql_with_webserver_and_daemon(tmp_path):
    data_dir, home, logs = tmp_path / "data", tmp_path / "dagster_home", tmp_path / "logs"
    data_dir.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items()
           if k not in ("MONGODB_URL", "REDIS_URL", "TRADINGVIEW_AUTH_TOKEN")}
    env.update({"POCKETQUANT_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(home),
                "SYNC_FIRST_BARS": "200", "PYTHONUNBUFFERED": "1"})

    procs = ProcessGroup()
    try:
        env["TRADINGVIEW_WS_URL"] = start_simulator(procs, env, free_port(), logs)
        for symbol in SYMBOLS:
            added = cli(env, "symbols", "add", symbol)
            assert added.returncode == 0 and f"added {symbol}" in added.stdout, added.stderr

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        procs.start("webserver", [str(BIN / "dagster-webserver"), "-w", "workspace.yaml",
                                  "-h", "127.0.0.1", "-p", str(port)],
                    env, PROJECT_ROOT, logs / "webserver.log")
        procs.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                    env, PROJECT_ROOT, logs / "daemon.log")
        assert wait_for_http(f"{url}/server_info", timeout=180, procs=procs), f"see {logs}"

        # the registry sensor (RUNNING by default) adds the symbol partitions
        keys_query = """{ assetNodeOrError(assetKey: {path: ["historical_bars"]}) {
                           ... on AssetNode { partitionKeys } } }"""

        def partitions():
            keys = graphql(url, keys_query)["assetNodeOrError"]["partitionKeys"]
            return keys if {f"1d|{s}" for s in SYMBOLS} <= set(keys) else None

        keys = wait_until("symbol partitions", partitions, 120, procs, logs)
        assert len(keys) == 13 * len(SYMBOLS)

        # a backfill over GraphQL: 3 symbols x 2 intervals, 50 bars each (tag, as sensors use)
        selection = [f"{i}|{s}" for s in SYMBOLS for i in ("1h", "1d")]
        launched = graphql(url, """
            mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
              __typename ... on LaunchBackfillSuccess { backfillId }
              ... on PythonError { message } ... on InvalidSubsetError { message } } }""",
            {"p": {"assetSelection": [{"path": ["historical_bars"]}], "partitionNames": selection,
                   "tags": [{"key": "pocketquant/bars", "value": "50"}]}})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]

        def finished():
            data = graphql(url, """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
                ... on PartitionBackfill { status numPartitions } } }""", {"id": backfill_id})
            status = data["partitionBackfillOrError"]["status"]
            return status if status not in ("REQUESTED", "CANCELING", "FAILING") else None

        assert wait_until("the GraphQL backfill", finished, 240, procs, logs) in (
            "COMPLETED", "COMPLETED_SUCCESS")

        # every selected partition carries its own metadata from the explicit 50-bar sync
        mats = graphql(url, """query($parts: [String!]) {
            assetNodeOrError(assetKey: {path: ["historical_bars"]}) { ... on AssetNode {
              assetMaterializations(partitions: $parts, limit: 200) { partition runId
                metadataEntries { label ... on IntMetadataEntry { intValue }
                                        ... on TextMetadataEntry { text } } } } } }""",
            {"parts": selection})["assetNodeOrError"]["assetMaterializations"]
        explicit = {}
        for m in mats:
            entries = {e["label"]: e.get("intValue", e.get("text")) for e in m["metadataEntries"]}
            if entries.get("mode") == "explicit":
                explicit[m["partition"]] = entries
        assert set(explicit) == set(selection)
        for key, entries in explicit.items():
            assert entries["requested_bars"] == 50 and entries["bars_fetched"] == 50
            assert entries["symbol"] == key.split("|", 1)[1] and entries["source"] == "simulator"

        # the store has the bars, without duplicates
        with open_bar_store(load_settings(env)) as store:
            for symbol in SYMBOLS:
                frame = store.read_bars(symbol, "1d")
                assert len(frame) >= 50 and frame.index.is_unique
                info = store.get_symbol(symbol)
                assert info.timezone  # symbol_resolved metadata reached the registry

        status = cli(env, "status", "--format", "json")
        assert status.returncode == 0, status.stderr
        rows = {(r["symbol"], r["interval"]): r for r in map(json.loads, status.stdout.splitlines())}
        for symbol in SYMBOLS:
            row = rows[(symbol, "1d")]
            assert row["status"] == "MATERIALIZED" and row["bars_stored"] >= 50
            assert row["last_sync_at"] and row["last_error"] is None
        table = cli(env, "status", "--symbol", "SP:SPX")
        assert table.returncode == 0 and "SP:SPX" in table.stdout and "MATERIALIZED" in table.stdout
    finally:
        procs.stop()
