"""The production topology as local processes, a quant's day on it: the MongoDB wire server as
the bar store, Redis as the live cache, Dagster (code server, webserver, daemon) on
PostgreSQL with docker/dagster.yaml, two streamer replicas, the simulator as TradingView —
with the settings docker/compose.yml gives its containers, host names replaced.

Add symbols, let the registry sensor sync them, stream them (each symbol by exactly one
replica), let the stream sensor rebuild the datasets, and read it all back."""

import json
import os
import urllib.request

import pytest

from pocketquant_pipelines.api import PocketQuant
from pocketquant_pipelines.settings import load_settings
from pocketquant_pipelines.topology import compose_app_environment, start_topology
from tests.support import cli, graphql, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

STREAMED = ["BINANCE:BTCUSDT", "CME_MINI:NQ1!", "NASDAQ:AAPL"]
SYNCED_ONLY = ["SP:SPX"]


def health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
        return json.loads(resp.read())


def test_compose_settings_are_what_the_local_topology_starts_from():
    app = compose_app_environment({"DAGSTER_PG_USER": "ops"})
    assert app["MONGODB_URL"].startswith("mongodb://mongodb:27017/")
    assert app["REDIS_URL"] == "redis://redis:6379/0" and app["DAGSTER_PG_USER"] == "ops"
    assert app["DAGSTER_PG_DB"] == "dagster"  # ${DAGSTER_PG_DB:-dagster}: the default


def test_a_quants_day_on_the_production_topology(tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "REDIS_", "TRADINGVIEW_"))}
    environ.update({"SYNC_FIRST_BARS": "200", "STREAMER_REGISTRY_POLL_S": "1",
                    "POCKETQUANT_DATASET_REBUILD_S": "30",  # one folded refresh soon after streaming starts
                    "STREAMER_STORE_BATCH_MS": "200", "PYTHONUNBUFFERED": "1"})
    topology = start_topology(tmp_path, replicas=2, environ=environ,
                              pg_db=f"pq_topology_{os.getpid()}")
    procs, env, url, logs = topology.procs, topology.env, topology.dagster_url, tmp_path / "logs"
    try:
        assert env["MONGODB_URL"].startswith("mongodb://127.0.0.1:")
        assert env["REDIS_URL"].startswith("redis://127.0.0.1:") and env["LOG_FORMAT"] == "console"
        for symbol in STREAMED + SYNCED_ONLY:
            added = cli(env, "symbols", "add", symbol, *(["--stream"] if symbol in STREAMED else []))
            assert added.returncode == 0, added.stderr

        # the registry sensor requests every partition's first sync
        n = 13 * len(STREAMED + SYNCED_ONLY)

        def first_syncs():
            stats = graphql(url, """{ assetNodeOrError(assetKey: {path: ["historical_bars"]}) {
                ... on AssetNode { partitionStats { numMaterialized numFailed } } } }""")[
                "assetNodeOrError"]["partitionStats"]
            assert stats is None or stats["numFailed"] == 0, stats
            return stats and stats["numMaterialized"] == n

        wait_until("the first sync of every partition", first_syncs, 900, procs, logs, every=5)

        # each streamed symbol is streamed by exactly one replica
        def shares():
            bodies = [health(port) for port in topology.streamer_health_ports]
            subscribed = [set(b["subscribed"]) for b in bodies]
            return subscribed if sum(map(len, subscribed)) == len(STREAMED) else None

        subscribed = wait_until("both replicas subscribed", shares, 180, procs, logs)
        assert not (subscribed[0] & subscribed[1]) and subscribed[0] | subscribed[1] == set(STREAMED)

        # streamed bars reach the store, the stream sensor rebuilds the datasets
        def stream_runs():
            runs = graphql(url, """{ runsOrError(filter: {tags: [{key: "pocketquant/trigger", value: "streamer"}],
                statuses: [SUCCESS]}, limit: 5) { ... on Runs { results { runId } } } }""")
            return runs["runsOrError"]["results"]

        wait_until("a stream-triggered dataset run", stream_runs, 300, procs, logs, every=5)

        with PocketQuant(load_settings(env)) as pq:
            for symbol in ("BINANCE:BTCUSDT", "CME_MINI:NQ1!"):  # trading now (AAPL may be closed)
                quote = pq.latest_quote(symbol)
                assert quote is not None and quote.price > 0, symbol
            for symbol in STREAMED + SYNCED_ONLY:
                frame = pq.bars(symbol, "1h")
                assert len(frame) >= 150 and frame.index.is_unique, symbol

            # the first sync's history replaces what the stream wrote before it (history is
            # the authority), so the stream's own bars are the ones after the last sync
            def streamed_minute():
                btc = pq.bars("BINANCE:BTCUSDT", "1m")
                assert btc.index.is_unique
                return (btc["source"] == "stream").any()

            wait_until("a streamed BTCUSDT 1m bar in the store", streamed_minute, 180, procs, logs)

        status = cli(env, "status", "--format", "json")
        assert status.returncode == 0, status.stderr
        rows = [json.loads(line) for line in status.stdout.splitlines()]
        assert len(rows) == n and all(r["status"] == "MATERIALIZED" for r in rows)
    finally:
        topology.stop()
