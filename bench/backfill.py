"""Backfill benchmark: 100 symbols x 13 intervals through a real Dagster webserver + daemon.

    .venv/bin/python bench/backfill.py                      # 100 symbols, 500 bars/partition
    .venv/bin/python bench/backfill.py --symbols 20 --bars 200 --sample 6   # quicker
    .venv/bin/python bench/backfill.py --instances sqlite,postgres --sample 0

Each instance in ``--instances`` runs in turn in this process: ``sqlite`` is the embedded
instance (dagster_home/dagster.yaml, webserver + daemon from workspace.yaml), ``postgres`` is
the production one (docker/dagster.yaml on the machine's PostgreSQL at DAGSTER_PG_* or
127.0.0.1:5432, a database created for the run and dropped after; code server + webserver +
daemon as in production). "Dagster's own cost" is measured on each instance directly: the
event-log writes of one synced partition (6 events), timed in this process.

What it measures (docs/benchmarks.md, "## Backfill"):

* fast path — what a fresh install does when symbols are registered: ``symbol_registry_sensor``
  requests the first sync of every (symbol, interval) as range runs, one per interval and block
  of up to 100 consecutive symbols (13 runs for 100 symbols), each fetching its keys
  concurrently on one TradingView client (a UI backfill of the same keys takes the same path:
  ``BackfillPolicy.single_run()``). Wall time = first run requested -> last run finished (and
  from registration).
* per-partition path — one run per (symbol, interval), what a backfill without the policy (or
  a job backfill, which ignores policies) does. Measured on a SAMPLE of partitions launched
  as single-partition runs over GraphQL and extrapolated linearly to 1300 (stated as such).

Both paths fetch the same number of bars per partition from the simulator (SYNC_FIRST_BARS
for the fast path's first sync; explicit ``bars`` for the sample), through the same daemon,
run queue (max_concurrent_runs 4) and pool limit (3) as ``dagster_home/dagster.yaml``.

The simulator runs in its own process with generated symbols SIM:S001..SIM:Snnn (24x7, like
crypto, so every interval has full history).
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pocketquant_pipelines.demo import ProcessGroup, free_port, wait_for_http  # noqa: E402


def sim_specs(n: int):
    from tradingview_simulator import SymbolSpec

    return [
        SymbolSpec(f"SIM:S{i:03d}", f"Synthetic {i:03d}", "spot", "USD", "24x7", "Etc/UTC",
                   pricescale=100, start_price=50.0 + i, daily_volatility=0.02,
                   mean_tick_volume=100.0, exchange_name="SIM")
        for i in range(1, n + 1)
    ]


def serve_simulator(port: int, n: int, warm: bool = False) -> None:
    """Internal mode: run the simulator with n generated symbols until SIGTERM."""
    import asyncio
    import signal

    from tradingview_simulator.server import SimulatorServer

    async def main():
        server = SimulatorServer(port=port, symbols=sim_specs(n), seed=11)
        if warm:
            # the simulator's own first-touch cost (daily summaries of ~8 years per symbol)
            # is not the platform's: pay it before serving when --warm-simulator is given
            now = server.sim_now()
            for spec in sim_specs(n):
                server.market.history(spec.symbol, "1d", now, 1)
        await server.start()
        print(server.url, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop()

    asyncio.run(main())


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{url}/graphql", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        payload = json.loads(resp.read())
    if "errors" in payload:
        raise RuntimeError(payload["errors"])
    return payload["data"]


def wait(what, predicate, timeout, procs, poll=2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        dead = procs.dead()
        if dead:
            raise RuntimeError(f"{[d.name for d in dead]} exited while waiting for {what}")
        time.sleep(poll)
    raise TimeoutError(f"timed out waiting for {what}")


def run_stats(instance, run_ids):
    """(first start, last end, count) of finished runs."""
    import dagster as dg

    records = instance.get_run_records(filters=dg.RunsFilter(run_ids=list(run_ids)))
    starts = [r.start_time for r in records if r.start_time]
    ends = [r.end_time for r in records if r.end_time]
    statuses = [r.dagster_run.status.value for r in records]
    return min(starts) if starts else None, max(ends) if ends else None, statuses


def event_write_cost(instance, n_partitions: int = 200, events_per_partition: int = 6) -> float:
    """Dagster's own cost per partition: the event-log writes a synced partition makes
    (planned, materialization, 4 check evaluations), timed on the instance itself, in ms."""
    import dagster as dg

    t0 = time.perf_counter()
    for k in range(n_partitions):
        for e in range(events_per_partition):
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key=dg.AssetKey(["bench_event_cost"]), partition=f"p{k}",
                metadata={"event": e, "bars": 500}))
    return (time.perf_counter() - t0) * 1000 / n_partitions


def run_on_instance(kind: str, args) -> dict:
    """The fast path (and the per-partition sample when --sample > 0) on a fresh instance:
    ``sqlite`` = dagster_home/dagster.yaml, ``postgres`` = docker/dagster.yaml on a database
    created for the run and dropped after it."""
    import dagster as dg

    from pocketquant_pipelines.market.timeutil import utcnow
    from pocketquant_pipelines.settings import load_settings
    from pocketquant_pipelines.storage.registry import SymbolInfo
    from pocketquant_pipelines.storage.factory import open_bar_store
    from pocketquant_pipelines.topology import Postgres, prepare_production_home, start_dagster

    work = Path(tempfile.mkdtemp(prefix=f"pq-bench-backfill-{kind}-"))
    data_dir, home, logs = work / "data", work / "dagster_home", work / "logs"
    data_dir.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URL", "REDIS_URL")}
    pg = None
    if kind == "postgres":
        pg = Postgres.from_environment(f"pq_bench_{os.getpid()}", dict(os.environ))
        pg.drop_database()
        pg.create_database()
        prepare_production_home(home)
        env.update(pg.env())
    else:
        shutil.copyfile(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    sim_port = free_port()
    env.update({"POCKETQUANT_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(home),
                "SYNC_FIRST_BARS": str(args.bars), "PYTHONUNBUFFERED": "1",
                "TRADINGVIEW_WS_URL": f"ws://127.0.0.1:{sim_port}/socket.io/websocket",
                "LOG_LEVEL": "WARNING"})
    bin_dir = Path(sys.executable).parent
    symbols = [s.symbol for s in sim_specs(args.symbols)]
    n_parts = 13 * len(symbols)
    procs = ProcessGroup()
    print(f"[{kind}] work dir {work}; {len(symbols)} symbols x 13 intervals = {n_parts} "
          f"partitions, {args.bars} bars each", flush=True)
    saved_home = os.environ.get("DAGSTER_HOME")
    try:
        procs.start("simulator", [sys.executable, __file__, "--serve-sim", str(sim_port),
                                  "--symbols", str(args.symbols)]
                    + (["--warm-simulator"] if args.warm_simulator else []),
                    env, ROOT, logs / "simulator.log")
        wait("the simulator", lambda: _listening(sim_port), 600, procs, poll=1)
        if kind == "postgres":
            os.environ.update(pg.env())
        os.environ["DAGSTER_HOME"] = str(home)
        instance = dg.DagsterInstance.from_config(str(home))
        event_ms = event_write_cost(instance)

        # ---- fast path: register symbols; the sensor creates one backfill ------------------
        with open_bar_store(load_settings(env)) as store:
            now = utcnow()
            for s in symbols:
                store.add_symbol(SymbolInfo(symbol=s, added_at=now))
        t_registered = time.time()
        if kind == "postgres":
            url = start_dagster(procs, env, home, logs)  # code server, webserver, daemon
        else:
            ui_port = free_port()
            url = f"http://127.0.0.1:{ui_port}"
            procs.start("webserver", [str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml",
                                      "-h", "127.0.0.1", "-p", str(ui_port)], env, ROOT,
                        logs / "webserver.log")
            procs.start("daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                        env, ROOT, logs / "daemon.log")
            if not wait_for_http(f"{url}/server_info", 240, procs):
                raise RuntimeError(f"webserver did not start; see {logs}")

        first_sync = dg.RunsFilter(tags={"pocketquant/trigger": "first_sync"})

        def first_sync_runs():
            return instance.get_run_records(filters=first_sync) or None

        records = wait("the registry sensor's first-sync runs", first_sync_runs, 300, procs)
        t_requested = min(r.create_timestamp.timestamp() for r in records)
        print(f"[{kind}] first-sync runs requested {t_requested - t_registered:.1f}s after "
              "registration (daemon start + first sensor tick)", flush=True)

        keys = [f"{i}|{s}" for i in ["1m", "3m", "5m", "15m", "30m", "45m", "1h", "2h", "3h", "4h",
                                     "1d", "1w", "1M"] for s in symbols]

        def partition_states() -> list[str]:
            status = instance.get_status_by_partition(dg.AssetKey("historical_bars"), keys,
                                                      _partitions_def())
            # None until the asset has its first materialization
            return [v.value for v in (status or {}).values() if v is not None]

        def first_syncs_done():
            # done when every requested run has ended and every key has an outcome (a key the
            # sensor requests on a later tick is in a run that has not ended yet)
            ids = instance.get_run_ids(filters=first_sync)
            _, _, sts = run_stats(instance, ids)
            ended = sts and all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in sts)
            settled = [v for v in partition_states() if v in ("MATERIALIZED", "FAILED")]
            return ids if ended and (len(settled) == n_parts or "SUCCESS" not in sts) else None

        fast_runs = wait("the first-sync runs to finish", first_syncs_done, 3600, procs, poll=3)
        _, last_end, statuses = run_stats(instance, fast_runs)
        fast_wall = last_end - t_requested
        with open_bar_store(load_settings(env)) as store:
            stats = store.bar_stats()
        bars_written = sum(s["count"] for s in stats)
        materialized = partition_states().count("MATERIALIZED")
        print(f"[{kind}] fast path: {len(fast_runs)} runs, {materialized}/{n_parts} partitions "
              f"materialized, {bars_written} bars, {fast_wall:.1f}s",
              flush=True)
        result = {
            "instance": kind, "symbols": len(symbols), "partitions": n_parts,
            "bars_per_partition": args.bars, "event_log_ms_per_partition": round(event_ms, 1),
            "fast_runs": len(fast_runs), "fast_wall_s": round(fast_wall, 1),
            "fast_from_registration_s": round(last_end - t_registered, 1),
            "fast_partitions_materialized": materialized, "bars_written": bars_written,
            "fast_run_statuses": {s: statuses.count(s) for s in set(statuses)},
        }
        if args.sample > 0:
            result.update(per_partition_sample(url, instance, symbols, args, n_parts, fast_wall))
        instance.dispose()
        return result
    finally:
        procs.stop()
        if saved_home is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = saved_home
        if pg is not None:
            pg.drop_database()
        shutil.rmtree(work, ignore_errors=True)


def per_partition_sample(url, instance, symbols, args, n_parts, fast_wall) -> dict:
    """A sample of single-partition runs launched over GraphQL, extrapolated to every key."""
    import dagster as dg

    mix = ["1m", "1h", "1d", "5m", "4h", "1w", "15m", "2h", "1M", "30m", "3m", "45m", "3h"]
    sample = [f"{mix[k % 13]}|{symbols[k % len(symbols)]}" for k in range(args.sample)]
    launch = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
        __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
    t0 = time.time()
    sample_ids = []
    for key in sample:
        interval, symbol = key.split("|", 1)
        res = graphql(url, launch, {"p": {
            "selector": {"repositoryLocationName": "pocketquant", "repositoryName": "__repository__",
                         "jobName": "historical_sync"},
            "runConfigData": {"ops": {"historical_bars": {"config": {"bars": args.bars}}}},
            "executionMetadata": {"tags": [
                {"key": "dagster/partition", "value": key},
                {"key": "dagster/partition/interval", "value": interval},
                {"key": "dagster/partition/symbol", "value": symbol},
                {"key": "pocketquant/trigger", "value": "bench_per_partition"}]}}})["launchRun"]
        if res["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(res)
        sample_ids.append(res["run"]["runId"])

    def sample_done():
        _, _, sts = run_stats(instance, sample_ids)
        return all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in sts) and len(sts) == len(sample_ids)

    wait("the per-partition sample", sample_done, 3600, ProcessGroup(), poll=2)
    _, sample_end, sample_statuses = run_stats(instance, sample_ids)
    sample_wall = sample_end - t0
    extrapolated = sample_wall / len(sample) * n_parts
    records = instance.get_run_records(filters=dg.RunsFilter(run_ids=sample_ids))
    run_secs = [r.end_time - r.start_time for r in records if r.end_time and r.start_time]
    return {
        "sample_partitions": len(sample), "sample_wall_s": round(sample_wall, 1),
        "sample_run_statuses": {s: sample_statuses.count(s) for s in set(sample_statuses)},
        "sample_median_run_s": round(statistics.median(run_secs), 1) if run_secs else None,
        "per_partition_extrapolated_s": round(extrapolated, 1),
        "speedup": round(extrapolated / fast_wall, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars", type=int, default=500, help="bars per partition")
    parser.add_argument("--sample", type=int, default=10,
                        help="partitions run one-per-run for the per-partition estimate (0: none)")
    parser.add_argument("--instances", default="sqlite,postgres",
                        help="comma-separated Dagster instances to run on, in this order")
    parser.add_argument("--warm-simulator", action="store_true",
                        help="let the simulator compute its synthetic history before the clock "
                        "starts (its own ~1 s/symbol first-touch cost is not the platform's)")
    parser.add_argument("--serve-sim", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_sim is not None:
        serve_simulator(args.serve_sim, args.symbols, args.warm_simulator)
        return 0
    kinds = [k.strip() for k in args.instances.split(",") if k.strip()]
    if not kinds or any(k not in ("sqlite", "postgres") for k in kinds):
        parser.error(f"--instances {args.instances!r}: expected sqlite and/or postgres")

    results = [run_on_instance(kind, args) for kind in kinds]
    base = results[0]
    print()
    print("| instance | runs | partitions | fast path wall | vs first | event-log writes per partition |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['instance']} | {r['fast_runs']} | {r['fast_partitions_materialized']}/{r['partitions']} "
              f"| {r['fast_wall_s']:.0f} s | {r['fast_wall_s'] / base['fast_wall_s']:.2f}x "
              f"| {r['event_log_ms_per_partition']:.1f} ms |")
    for r in results:
        if "per_partition_extrapolated_s" in r:
            print(f"[{r['instance']}] per-partition: ~{r['per_partition_extrapolated_s']:.0f} s "
                  f"extrapolated from {r['sample_partitions']} runs in {r['sample_wall_s']:.0f} s "
                  f"(speed-up ~{r['speedup']}x)")
    summary = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "cpu_count": os.cpu_count(),
               "warm_simulator": args.warm_simulator,
               "load_avg_at_end": round(os.getloadavg()[0], 1), "results": results}
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "backfill.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _partitions_def():
    from pocketquant_pipelines.defs.partitions import bars_partitions

    return bars_partitions


if __name__ == "__main__":
    sys.exit(main())
