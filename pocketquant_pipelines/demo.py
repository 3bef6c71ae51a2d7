"""``make demo``: the whole system on one laptop, on SIMULATED data (no account, no network).

1. starts the TradingView protocol simulator (``python -m tradingview_simulator``, its own process),
2. registers a few symbols in the embedded bar store under ``data/demo/``,
3. starts Dagster (``dagster dev -w workspace.yaml``: webserver + daemon) with
   DAGSTER_HOME=.dagster_home/ inside the project and TRADINGVIEW_WS_URL pointed at the
   simulator, plus any ``EXTRA_PROCESSES`` (the streamer),
4. writes the settings it runs with to ``data/demo/env`` (``source`` it in another shell and
   every ``pocketquant`` command works against the demo), prints the UI address, then waits.
   Ctrl-C stops everything.

The registry sensor (RUNNING by default) turns the symbols into partitions and requests
their first sync; the schedules keep them fresh. Without TRADINGVIEW_WS_URL the platform would
talk to TradingView itself; the demo always uses the simulator and says so.

Child processes run in their own process groups with default SIGINT/SIGTERM dispositions
(some launchers start us with those signals ignored, and children inherit that), so one
SIGTERM per group stops them cleanly.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from pocketquant_pipelines.settings import PROJECT_ROOT

DEMO_SYMBOLS = [  # (symbol, stream)
    ("BINANCE:BTCUSDT", True),
    ("NASDAQ:AAPL", True),
    ("SP:SPX", False),
    ("CME_MINI:NQ1!", False),
]

# Long-running processes started after Dagster, with the same environment: (name, argv).
EXTRA_PROCESSES: list[tuple[str, list[str]]] = [
    ("streamer", [sys.executable, "-m", "streamer"]),  # live side; /health on STREAMER_HEALTH_PORT
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _default_signals() -> None:
    # runs in the child before exec: undo inherited "ignore" dispositions
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@dataclass
class Managed:
    name: str
    proc: subprocess.Popen
    log_path: Path | None = None


@dataclass
class ProcessGroup:
    """Child processes, each in its own session/process group; stop() ends them all."""

    children: list[Managed] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict, cwd: Path, log_path: Path | None = None,
              stdout=None) -> Managed:
        out = stdout
        if out is None and log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            out = open(log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        proc = subprocess.Popen(
            argv, env=env, cwd=str(cwd), stdout=out, stderr=subprocess.STDOUT if out else None,
            preexec_fn=_default_signals, start_new_session=True,
        )
        managed = Managed(name, proc, log_path)
        self.children.append(managed)
        return managed

    def stop(self, timeout: float = 20.0) -> None:
        for child in reversed(self.children):
            _signal_group(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in reversed(self.children):
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child.proc, signal.SIGKILL)
                child.proc.wait(timeout=5)
        self.children.clear()

    def dead(self) -> list[Managed]:
        return [c for c in self.children if c.proc.poll() is not None]


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)  # the child leads its own group (start_new_session)
    except ProcessLookupError:
        pass


def wait_for_http(url: str, timeout: float, procs: ProcessGroup | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if procs is not None and procs.dead():
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def start_simulator(procs: ProcessGroup, env: dict, port: int, log_dir: Path,
                    timeout: float = 30.0) -> str:
    """Start the simulator (``python -m tradingview_simulator``) on ``port``; return its WebSocket
    URL once it listens."""
    procs.start("simulator", [sys.executable, "-m", "tradingview_simulator",
                              "--port", str(port)], env, PROJECT_ROOT, log_dir / "simulator.log")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return f"ws://127.0.0.1:{port}/socket.io/websocket"
        except OSError:
            if procs.dead():
                break
            time.sleep(0.2)
    raise RuntimeError(f"the simulator did not start on port {port}; see {log_dir / 'simulator.log'}")


def prepare_dagster_home(home: Path) -> None:
    """DAGSTER_HOME with the local-dev dagster.yaml template (kept if already customised)."""
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        shutil.copyfile(PROJECT_ROOT / "dagster_home" / "dagster.yaml", target)


def seed_symbols(settings) -> list[str]:
    from pocketquant_pipelines.market.timeutil import utcnow
    from pocketquant_pipelines.storage.registry import SymbolInfo
    from pocketquant_pipelines.storage.factory import open_bar_store

    added = []
    with open_bar_store(settings) as store:
        for symbol, stream in DEMO_SYMBOLS:
            now = utcnow()
            if store.add_symbol(SymbolInfo(symbol=symbol, stream=stream, added_at=now, updated_at=now)):
                added.append(symbol)
    return added


ENV_FILE_NAME = "env"
EXPORTED = ("POCKETQUANT_DATA_DIR", "DAGSTER_HOME", "TRADINGVIEW_WS_URL")


def write_env_file(data_dir: Path, env: dict) -> Path:
    """``<data dir>/env``: the settings the demo runs with, as ``export`` lines, so another shell
    can ``source data/demo/env`` and every ``pocketquant`` command reads and writes the demo's
    store, instance and simulator. Rewritten at every start (the simulator port changes)."""
    import shlex

    path = data_dir / ENV_FILE_NAME
    lines = ["# written by `make demo`; `source` this file to point pocketquant at the running demo"]
    lines += [f"export {name}={shlex.quote(env[name])}" for name in EXPORTED if env.get(name)]
    path.write_text("\n".join(lines) + "\n")
    return path


def banner(ui: str, sim_url: str, data_dir: Path, home: Path, env_file: Path, added: list[str]) -> str:
    """What the demo prints once Dagster is up: where to look, in Dagster 1.13's own words."""
    symbols = ", ".join(s for s, _ in DEMO_SYMBOLS)
    try:
        shown = env_file.relative_to(PROJECT_ROOT)
    except ValueError:
        shown = env_file
    rule = "=" * 78
    return "\n".join([
        "", rule,
        "  PocketQuant demo is running on SIMULATED data (no TradingView account, no network).",
        f"  Dagster UI:   {ui}",
        f"  Simulator:    {sim_url}",
        f"  Symbols:      {symbols}" + (f"  (newly registered: {len(added)})" if added else ""),
        f"  Data dir:     {data_dir}",
        f"  DAGSTER_HOME: {home}",
        "  Within a minute the symbol_registry_sensor adds the partitions and launches the first",
        "  syncs: watch Runs (tags pocketquant/symbol, pocketquant/interval), then",
        "  Catalog > historical_bars > Partitions, and sync_overview for every series at a glance.",
        "  In another shell:",
        f"    source {shown}",
        "    .venv/bin/pocketquant status",
        "  Ctrl-C stops everything.",
        rule, "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pocketquant_pipelines.demo",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3000, help="Dagster UI port (default 3000)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--sim-port", type=int, default=None, help="simulator port (default: free)")
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT / "data" / "demo")
    parser.add_argument("--dagster-home", type=Path, default=PROJECT_ROOT / ".dagster_home")
    args = parser.parse_args(argv)

    from pocketquant_pipelines.logging import configure_logging
    from pocketquant_pipelines.settings import load_settings

    configure_logging()
    data_dir = args.data_dir.resolve()
    home = args.dagster_home.resolve()
    log_dir = data_dir / "logs"
    data_dir.mkdir(parents=True, exist_ok=True)
    prepare_dagster_home(home)

    env = dict(os.environ)
    env.pop("MONGODB_URL", None)  # the demo is embedded-only: no servers
    env.pop("REDIS_URL", None)
    env.update({"POCKETQUANT_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(home),
                "PYTHONUNBUFFERED": "1"})

    procs = ProcessGroup()

    def on_signal(signum, frame):  # Ctrl-C / SIGTERM: stop the children, then exit
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sim_url = start_simulator(procs, env, args.sim_port or free_port(), log_dir)
        env["TRADINGVIEW_WS_URL"] = sim_url
        settings = load_settings(env)
        env_file = write_env_file(data_dir, env)
        added = seed_symbols(settings)
        procs.start("dagster", [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml",
                                "-h", args.host, "-p", str(args.port)],
                    env, PROJECT_ROOT, log_dir / "dagster.log")
        for name, cmd in EXTRA_PROCESSES:
            procs.start(name, cmd, env, PROJECT_ROOT, log_dir / f"{name}.log")
        ui = f"http://{args.host}:{args.port}"
        print(f"starting Dagster (logs: {log_dir}) ...", flush=True)
        if not wait_for_http(f"{ui}/server_info", timeout=180, procs=procs):
            dead = ", ".join(c.name for c in procs.dead()) or "none"
            print(f"error: Dagster did not come up at {ui} (exited: {dead}); see {log_dir}",
                  file=sys.stderr)
            return 1
        print(banner(ui, sim_url, data_dir, home, env_file, added), flush=True)
        while True:
            dead = procs.dead()
            if dead:
                names = ", ".join(f"{c.name} (exit {c.proc.returncode})" for c in dead)
                print(f"error: {names} stopped; see {log_dir}", file=sys.stderr)
                return 1
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        procs.stop()


if __name__ == "__main__":
    sys.exit(main())
