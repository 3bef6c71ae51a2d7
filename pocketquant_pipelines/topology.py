"""The production topology as local processes on one machine.

``docker/compose.yml`` runs MongoDB, Redis, PostgreSQL, the Dagster code server, webserver and
daemon, and the streamer in containers. The same processes, with the same settings but the
host names replaced by 127.0.0.1 and free ports, start here: for an end-to-end test and for an
operator who wants to try the production configuration without Docker.

Dagster's instance is ``docker/dagster.yaml`` itself (PostgreSQL storage, queued run
coordinator, every value from ``DAGSTER_PG_*``), copied into a fresh ``DAGSTER_HOME``; the
webserver and daemon load the code location from a gRPC code server, as in production.
"""

import os
import re
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from pocketquant_pipelines.demo import ProcessGroup, free_port, wait_for_http
from pocketquant_pipelines.errors import ConfigError
from pocketquant_pipelines.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent
LOCATION = "pocketquant"


@dataclass(frozen=True)
class Postgres:
    """A PostgreSQL server and the database Dagster keeps its runs, events and ticks in."""

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""
    db: str = "dagster"

    @classmethod
    def from_environment(cls, db: str, environ: dict[str, str]) -> "Postgres":
        """The server named by DAGSTER_PG_HOST/PORT/USER/PASSWORD (defaults: this machine's
        trust-auth server), with the database ``db``."""
        port = environ.get("DAGSTER_PG_PORT", "5432")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"DAGSTER_PG_PORT={port!r}: expected a port number 1-65535")
        return cls(host=environ.get("DAGSTER_PG_HOST", "127.0.0.1"), port=int(port),
                   user=environ.get("DAGSTER_PG_USER", "postgres"),
                   password=environ.get("DAGSTER_PG_PASSWORD", ""), db=db)

    def env(self) -> dict[str, str]:
        # dagster.yaml reads every value with {env: ...}, which refuses an unset variable; under
        # trust authentication any password is accepted, so an empty one is sent as "trust"
        return {"DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port),
                "DAGSTER_PG_USER": self.user, "DAGSTER_PG_PASSWORD": self.password or "trust",
                "DAGSTER_PG_DB": self.db}

    def _connect(self, db: str):
        import psycopg2

        try:
            conn = psycopg2.connect(host=self.host, port=self.port, user=self.user,
                                    password=self.password or None, dbname=db, connect_timeout=5)
        except psycopg2.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"PostgreSQL at {self.host}:{self.port} (user {self.user!r}): {first}") from None
        conn.autocommit = True
        return conn

    def create_database(self) -> None:
        conn = self._connect("postgres")
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{self.db}"')
        finally:
            conn.close()

    def drop_database(self) -> None:
        conn = self._connect("postgres")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (self.db,))
                cur.execute(f'DROP DATABASE IF EXISTS "{self.db}"')
        finally:
            conn.close()

    def query(self, sql: str) -> list[tuple]:
        conn = self._connect(self.db)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            conn.close()


def prepare_production_home(home: Path) -> None:
    """DAGSTER_HOME holding docker/dagster.yaml unchanged: the instance production runs."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_bytes((PROJECT_ROOT / "docker" / "dagster.yaml").read_bytes())


def write_grpc_workspace(path: Path, port: int) -> Path:
    """docker/workspace_prod.yaml with the code server's host name replaced by 127.0.0.1."""
    text = (PROJECT_ROOT / "docker" / "workspace_prod.yaml").read_text()
    text = text.replace("host: dagster-code", "host: 127.0.0.1").replace("port: 4266", f"port: {port}")
    path.write_text(text)
    return path


def _wait_for_port(port: int, timeout: float, procs: ProcessGroup) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            if procs.dead():
                return False
            time.sleep(0.3)
    return False


def start_dagster(procs: ProcessGroup, env: dict, home: Path, logs: Path, timeout: float = 240) -> str:
    """Code server, webserver and daemon on the instance in ``home``; the webserver's URL.

    ``env`` must carry DAGSTER_HOME=home and the DAGSTER_PG_* variables."""
    code_port, web_port = free_port(), free_port()
    # launching a run is a gRPC call that waits for the run's process to start; on a busy
    # machine that takes longer than Dagster's default 60 s and the launch would fail
    env = {"DAGSTER_GRPC_TIMEOUT_SECONDS": "180", **env}
    workspace = write_grpc_workspace(home / "workspace.yaml", code_port)
    procs.start("dagster-code", [str(BIN / "dagster"), "code-server", "start", "-m",
                                 "pocketquant_pipelines.definitions", "-h", "127.0.0.1",
                                 "-p", str(code_port), "--location-name", LOCATION],
                env, PROJECT_ROOT, logs / "dagster-code.log")
    if not _wait_for_port(code_port, timeout, procs):
        raise RuntimeError(f"the Dagster code server did not start; see {logs / 'dagster-code.log'}")
    procs.start("dagster-webserver", [str(BIN / "dagster-webserver"), "-w", str(workspace),
                                      "-h", "127.0.0.1", "-p", str(web_port)],
                env, PROJECT_ROOT, logs / "dagster-webserver.log")
    procs.start("dagster-daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
                env, PROJECT_ROOT, logs / "dagster-daemon.log")
    url = f"http://127.0.0.1:{web_port}"
    if not wait_for_http(f"{url}/server_info", timeout=timeout, procs=procs):
        raise RuntimeError(f"the Dagster webserver did not start; see {logs}")
    return url


# ---- the rest of the production stack --------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


def compose_app_environment(environ: dict[str, str]) -> dict[str, str]:
    """The environment docker/compose.yml gives every application container (``x-app``), with
    ``${VAR:-default}`` resolved against ``environ`` as compose resolves it."""
    compose = yaml.safe_load((PROJECT_ROOT / "docker" / "compose.yml").read_text())
    raw = compose["x-app"]["environment"]
    return {key: _INTERPOLATION.sub(lambda m: environ.get(m.group(1)) or (m.group(2) or ""), str(value))
            for key, value in raw.items()}


def localise(app_env: dict[str, str], *, mongo_port: int, redis_port: int, pg: Postgres,
             data_dir: Path, dagster_home: Path, tradingview_ws_url: str) -> dict[str, str]:
    """compose's settings with its service host names replaced by this machine's processes.

    The wire-compatible MongoDB server runs standalone, so the compose URL's ``replicaSet``
    option (a single-node replica set there, for change streams and transactions) is dropped."""
    env = dict(app_env)
    env["MONGODB_URL"] = f"mongodb://127.0.0.1:{mongo_port}/"
    env["REDIS_URL"] = app_env["REDIS_URL"].replace("redis:6379", f"127.0.0.1:{redis_port}")
    env.update(pg.env())
    env.update({"POCKETQUANT_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(dagster_home),
                "TRADINGVIEW_WS_URL": tradingview_ws_url, "LOG_FORMAT": "console"})
    return env


def start_redis(procs: ProcessGroup, port: int, workdir: Path, logs: Path) -> str:
    exe = shutil.which("redis-server")
    if exe is None:
        raise ConfigError("redis-server is not installed (make install installs it)")
    procs.start("redis", [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", str(workdir)],
                {}, workdir, logs / "redis.log")
    if not _wait_for_port(port, 15, procs):
        raise RuntimeError(f"redis-server did not start; see {logs / 'redis.log'}")
    return f"redis://127.0.0.1:{port}/0"


MONGO_WIRE_SERVER = PROJECT_ROOT / ".tools" / "secantus" / "bin" / "secantusd-py"


def start_mongo_wire(procs: ProcessGroup, port: int, workdir: Path, logs: Path) -> str:
    """SecantusDB, a MongoDB-wire-compatible server (WiredTiger inside; not mongod), installed
    as a tool by the Makefile; its data lives in ``workdir``."""
    if not MONGO_WIRE_SERVER.exists():
        raise ConfigError(f"{MONGO_WIRE_SERVER} is missing (`make test-tools` installs it)")
    workdir.mkdir(parents=True, exist_ok=True)
    procs.start("mongodb-wire", [str(MONGO_WIRE_SERVER), "--standalone", "--host", "127.0.0.1",
                                 "--port", str(port), "--storage-path", str(workdir)],
                {}, workdir, logs / "mongodb-wire.log")
    if not _wait_for_port(port, 30, procs):
        raise RuntimeError(f"the MongoDB wire server did not start; see {logs / 'mongodb-wire.log'}")
    return f"mongodb://127.0.0.1:{port}/"


def start_streamers(procs: ProcessGroup, env: dict, replicas: int, logs: Path) -> list[int]:
    """``replicas`` streamer processes, replica i of N from the environment as a StatefulSet
    ordinal would set it; each its own /health port. The health ports, in replica order."""
    ports = []
    for index in range(replicas):
        port = free_port()
        replica_env = {**env, "STREAMER_REPLICA_INDEX": str(index),
                       "STREAMER_REPLICA_COUNT": str(replicas), "STREAMER_HEALTH_PORT": str(port)}
        procs.start(f"streamer-{index}", [sys.executable, "-m", "streamer"], replica_env,
                    PROJECT_ROOT, logs / f"streamer-{index}.log")
        ports.append(port)
    return ports


@dataclass
class Topology:
    """Every process of the production stack on this machine, and where to reach it."""

    procs: ProcessGroup
    env: dict[str, str]
    dagster_url: str
    streamer_health_ports: list[int]
    postgres: Postgres
    workdir: Path

    def stop(self, drop_database: bool = True) -> None:
        # the streamers first: they flush their bars to MongoDB, which must still be up
        streamers = [c for c in self.procs.children if c.name.startswith("streamer-")]
        rest = ProcessGroup([c for c in self.procs.children if c not in streamers])
        ProcessGroup(streamers).stop()
        rest.stop()
        self.procs.children.clear()
        if drop_database:
            self.postgres.drop_database()


def start_topology(workdir: Path, replicas: int = 2, environ: dict[str, str] | None = None,
                   pg_db: str | None = None) -> Topology:
    """The simulator as TradingView, the MongoDB wire server, Redis, Dagster (code server,
    webserver, daemon) on a new PostgreSQL database, and ``replicas`` streamers."""
    from pocketquant_pipelines.demo import start_simulator

    environ = dict(os.environ if environ is None else environ)
    logs = workdir / "logs"
    pg = Postgres.from_environment(pg_db or f"pocketquant_local_{os.getpid()}", environ)
    procs = ProcessGroup()
    pg.create_database()
    try:
        base = {k: v for k, v in environ.items() if k not in ("MONGODB_URL", "REDIS_URL")}
        sim_url = start_simulator(procs, base, free_port(), logs)
        mongo_port, redis_port = free_port(), free_port()
        start_mongo_wire(procs, mongo_port, workdir / "mongodb", logs)
        start_redis(procs, redis_port, workdir, logs)
        env = {**base, **localise(compose_app_environment(environ), mongo_port=mongo_port,
                                  redis_port=redis_port, pg=pg, data_dir=workdir / "data",
                                  dagster_home=workdir / "dagster_home",
                                  tradingview_ws_url=sim_url)}
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        prepare_production_home(workdir / "dagster_home")
        url = start_dagster(procs, env, workdir / "dagster_home", logs)
        ports = start_streamers(procs, env, replicas, logs)
    except BaseException:
        procs.stop()
        pg.drop_database()
        raise
    return Topology(procs, env, url, ports, pg, workdir)


def main(argv: list[str] | None = None) -> int:
    """``make production-local``: the production stack on this machine until Ctrl-C."""
    import click

    @click.command(help="Start the production topology (MongoDB wire server, Redis, Dagster on "
                   "PostgreSQL, N streamers, the simulator as TradingView) as local processes.")
    @click.option("--replicas", type=click.IntRange(1, 16), default=2, show_default=True,
                  help="streamer replicas")
    @click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
                  default=PROJECT_ROOT / "data" / "production-local", show_default=True)
    def run(replicas: int, workdir: Path) -> int:
        workdir = workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        topology = start_topology(workdir, replicas=replicas)
        env_file = workdir / "env"
        keys = ("MONGODB_URL", "REDIS_URL", "POCKETQUANT_DATA_DIR", "DAGSTER_HOME",
                "TRADINGVIEW_WS_URL", "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER",
                "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")
        env_file.write_text("".join(f"export {k}={topology.env[k]}\n" for k in keys))
        print(f"Dagster UI: {topology.dagster_url}   (PostgreSQL database {topology.postgres.db})")
        print(f"streamers: {replicas}, /health on ports {topology.streamer_health_ports}")
        print(f"logs: {workdir / 'logs'};  the CLI on this stack: source {env_file}")
        print("Ctrl-C stops everything and drops the database.", flush=True)
        try:
            while not topology.procs.dead():
                time.sleep(1)
            dead = ", ".join(c.name for c in topology.procs.dead())
            print(f"error: {dead} stopped; see {workdir / 'logs'}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            topology.stop()

    return run.main(args=argv, standalone_mode=False) or 0


if __name__ == "__main__":
    sys.exit(main())
