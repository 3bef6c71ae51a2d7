"""Dagster on PostgreSQL, as production runs it: docker/dagster.yaml unchanged (dagster-postgres,
queued run coordinator, every value from DAGSTER_PG_*), a gRPC code server, the webserver and
the daemon as real processes, on this machine's PostgreSQL in a database the test creates and
drops. Exercised: the registry sensor's first-sync runs, a backfill launched over GraphQL,
a schedule tick from the daemon's scheduler, and what all of it left in PostgreSQL."""

import os
import uuid

import pytest

from pocketquant_pipelines.demo import ProcessGroup, free_port, start_simulator
from pocketquant_pipelines.settings import load_settings
from pocketquant_pipelines.storage.factory import open_bar_store
from pocketquant_pipelines.topology import Postgres, prepare_production_home, start_dagster
from tests.support import backfill_status, cli, graphql, launch_backfill, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

SYMBOLS = ["BINANCE:BTCUSDT", "NASDAQ:AAPL"]


@pytest.fixture
def postgres():
    pg = Postgres.from_environment(f"pq_test_{uuid.uuid4().hex[:12]}", dict(os.environ))
    try:
        pg.create_database()
    except Exception as exc:  # the machine's server is part of the environment this test needs
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is required for this test: {exc}")
    yield pg
    pg.drop_database()


def runs(url: str, tags: dict[str, str], statuses: list[str] | None = None) -> list[dict]:
    flt = {"tags": [{"key": k, "value": v} for k, v in tags.items()]}
    if statuses:
        flt["statuses"] = statuses
    data = graphql(url, """query($f: RunsFilter) { runsOrError(filter: $f, limit: 100) {
        ... on Runs { results { runId status tags { key value } } } } }""", {"f": flt})
    return data["runsOrError"]["results"]


def test_postgres_instance_runs_sensors_backfills_and_schedules(tmp_path, postgres):
    data_dir, home, logs = tmp_path / "data", tmp_path / "dagster_home", tmp_path / "logs"
    data_dir.mkdir(exist_ok=True)
    prepare_production_home(home)
    env = {k: v for k, v in os.environ.items()
           if k not in ("MONGODB_URL", "REDIS_URL", "TRADINGVIEW_AUTH_TOKEN")}
    env.update({"POCKETQUANT_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(home),
                "SYNC_FIRST_BARS": "200", "PYTHONUNBUFFERED": "1",
                # the daily schedule ticks every 5 minutes so a tick falls inside the test
                # without a stream of runs competing with the backfills
                "SYNC_DAILY_DATA_CRON": "*/5 * * * *", **postgres.env()})

    procs = ProcessGroup()
    try:
        env["TRADINGVIEW_WS_URL"] = start_simulator(procs, env, free_port(), logs)
        for symbol in SYMBOLS:
            added = cli(env, "symbols", "add", symbol, "--offline")
            assert added.returncode == 0, added.stderr
        url = start_dagster(procs, env, home, logs)

        # the registry sensor (daemon) adds the partitions and backfills their first sync
        def first_syncs_done():
            node = graphql(url, """{ assetNodeOrError(assetKey: {path: ["historical_bars"]}) {
                ... on AssetNode { partitionStats { numMaterialized numFailed } } } }""")
            stats = node["assetNodeOrError"]["partitionStats"]
            assert stats is None or stats["numFailed"] == 0, stats
            return stats and stats["numMaterialized"] == 13 * len(SYMBOLS)

        wait_until("the first sync of every partition", first_syncs_done, 600, procs, logs)

        # a backfill from the UI's launch path: 2 keys, 50 bars each
        selection = [f"1h|{s}" for s in SYMBOLS]
        backfill_id = launch_backfill(url, "historical_bars", selection, {"pocketquant/bars": "50"})
        status = wait_until("the GraphQL backfill", lambda: backfill_status(url, backfill_id),
                            420, procs, logs)
        assert status in ("COMPLETED", "COMPLETED_SUCCESS")

        # a tick of the daemon's scheduler launches the daily sync, which succeeds
        scheduled = wait_until(
            "a sync_daily_data schedule run",
            lambda: runs(url, {"dagster/schedule_name": "sync_daily_data"}, ["SUCCESS"]),
            420, procs, logs)
        tags = {t["key"]: t["value"] for t in scheduled[0]["tags"]}
        assert tags["pocketquant/trigger"] == "sync_daily_data"

        # everything above lives in PostgreSQL: runs, their events, sensor and schedule ticks
        assert postgres.query("SELECT count(*) FROM runs")[0][0] >= 3
        assert postgres.query("SELECT count(*) FROM event_logs")[0][0] > 0
        ticks = dict(postgres.query("SELECT type, count(*) FROM job_ticks GROUP BY type"))
        assert ticks.get("SENSOR", 0) >= 1 and ticks.get("SCHEDULE", 0) >= 1, ticks

        with open_bar_store(load_settings(env)) as store:
            for symbol in SYMBOLS:
                frame = store.read_bars(symbol, "1d")
                assert len(frame) >= 10 and frame.index.is_unique
    finally:
        procs.stop()
