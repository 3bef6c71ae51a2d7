"""The real streamer process on a tiny tmpfs that the test fills up and frees again.

The tmpfs is mounted in a private mount namespace (``unshare -rm``), held by a ``sleep`` so it
outlives each streamer process; the streamer runs inside that namespace (``nsenter``) and the
test reaches the same files through ``/proc/<holder>/root``. The embedded bar store and the
embedded live cache share the tmpfs, as they share ``POCKETQUANT_DATA_DIR`` by default.

What a user depends on: a full disk is a log line, never a traceback; the bars completed
meanwhile are kept and written once space is back (the live cache does not take it first);
at shutdown on a full disk they go into the space reserved at start and are written to the
store by the next start; a streamer started on a full disk says so and exits 4.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.sessions import bar_end
from tradingview_simulator import run_simulator_in_thread
from streamer import exit_codes
from streamer_helpers import as_synced
from tests.support import free_port, wait_for

BTC = "BINANCE:BTCUSDT"
SIM_START = datetime(2026, 1, 30, 15, 0, 5, tzinfo=UTC)
MIB = 1 << 20


def _default_signals():
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _mount_unavailable() -> str | None:
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"mounting a tmpfs in a user namespace is not permitted here: {probe.stderr.strip()}"
    return None


pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(_mount_unavailable() is not None, reason=str(_mount_unavailable()))]


# Reads and writes the store from inside the namespace: SQLite resolves the symbolic links of
# a database path, and /proc/<pid>/root resolves to the test's own root, not the tmpfs.
STORE_PROBE = """
import json, sys
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.storage.sqlite_store import SQLiteBarStore
with SQLiteBarStore(sys.argv[1]) as store:
    if sys.argv[2] == "add":
        store.add_symbol(SymbolInfo(stream=True, **json.loads(sys.argv[3])))
    else:
        frame = store.read_stream_bars(sys.argv[3], Interval.M1)
        print(json.dumps([{"time": ts.isoformat(), "open": r["open"], "high": r["high"], "low": r["low"],
                           "close": r["close"], "partial": bool(r["partial"])} for ts, r in frame.iterrows()]))
"""


class TinyDisk:
    """A tmpfs of ``size`` bytes at ``mountpoint`` inside a mount namespace held open."""

    def __init__(self, tmp_path: Path, size: int):
        self.mountpoint = tmp_path / "tiny"
        self.mountpoint.mkdir()
        self.holder = subprocess.Popen(
            ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size={size} tmpfs "$0" && echo ready && exec sleep 3600',
             str(self.mountpoint)], stdout=subprocess.PIPE, text=True)
        assert self.holder.stdout.readline().strip() == "ready"
        self.view = Path(f"/proc/{self.holder.pid}/root") / str(self.mountpoint).lstrip("/")
        self.filler = self.view / "filler"

    def run(self, cmd: list[str], **kwargs) -> subprocess.Popen:
        """Start ``cmd`` inside the namespace (it sees the tmpfs at ``mountpoint``)."""
        return subprocess.Popen(["nsenter", "-t", str(self.holder.pid), "-U", "-m", "--preserve-credentials",
                                 "--", *cmd], **kwargs)

    def store(self, command: str, arg: str) -> str:
        proc = self.run([sys.executable, "-c", STORE_PROBE, str(self.mountpoint / "data" / "bars.sqlite3"),
                         command, arg], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        return out

    def fill(self) -> int:
        """Write the filler until the disk is full; returns the bytes written."""
        written = 0
        block = b"\xff" * 65536
        with open(self.filler, "ab", buffering=0) as fh:
            while True:
                try:
                    n = fh.write(block)
                except OSError:
                    break
                written += n
                if n < len(block):
                    block = block[:max(1, len(block) // 2)]
        return written

    def free(self, nbytes: int | None = None) -> None:
        if nbytes is None:
            self.filler.unlink()
        else:
            os.truncate(self.filler, max(0, self.filler.stat().st_size - nbytes))

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()


def _get(url: str):
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except OSError:
        return None, {}


def _metric(port: int, name: str) -> float:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def events(log_path: Path) -> list[dict]:
    out = []
    for line in log_path.read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


@pytest.fixture
def sim():
    with run_simulator_in_thread(seed=4, speed=60, sim_start=SIM_START, resolve_delay_s=0.0) as server:
        yield server


@pytest.fixture
def disk(tmp_path):
    disk = TinyDisk(tmp_path, 40 * MIB)
    yield disk
    disk.close()


def _env(disk: TinyDisk, sim_url: str, port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "TRADINGVIEW_", "REDIS_"))}
    env.update({"POCKETQUANT_DATA_DIR": str(disk.mountpoint / "data"), "TRADINGVIEW_WS_URL": sim_url,
                "STREAMER_HEALTH_PORT": str(port), "STREAMER_REGISTRY_POLL_S": "0.2",
                "STREAMER_STORE_BATCH_MS": "200", "STREAMER_CACHE_FLUSH_MS": "50", "LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1"})
    return env


def test_full_disk_mid_stream_keeps_retries_spills_and_loses_nothing(tmp_path, sim, disk):
    port = free_port()
    env = _env(disk, sim.url, port)
    info = as_synced(sim.market, BTC)
    disk.store("add", json.dumps({"symbol": info.symbol, "timezone": info.timezone, "session": info.session,
                                  "calendar": dict(info.calendar)}))
    health = f"http://127.0.0.1:{port}/health"
    log1 = tmp_path / "streamer-1.log"

    def start(log_path: Path) -> subprocess.Popen:
        with open(log_path, "w") as fh:
            return disk.run([sys.executable, "-m", "streamer"], env=env, cwd=tmp_path, stdout=fh,
                            stderr=subprocess.STDOUT, preexec_fn=_default_signals, start_new_session=True)

    def written() -> float:
        return _metric(port, "pocketquant_streamer_bars_written_total")

    proc = start(log1)
    try:
        wait_for(lambda: _get(health)[0] == 200, 30, "/health 200")
        wait_for(lambda: written() >= 3 * 13, 30, "bars stored")

        # 1) the disk fills up: one log line, the bars wait in memory
        disk.fill()
        wait_for(lambda: not _get(health)[1].get("store", {}).get("reachable", True), 30, "the store failing")
        wait_for(lambda: _get(health)[1]["store"]["pending_bars"] >= 3, 30, "bars pending in memory")
        assert [e["event"] for e in events(log1)].count("store_disk_full") == 1
        assert "live_cache_held" in [e["event"] for e in events(log1)]
        before = written()

        # 2) an operator frees 1 MiB: the store writes everything it kept, the cache resumes
        disk.free(MIB)
        wait_for(lambda: (h := _get(health)[1]).get("store", {}).get("reachable") and
                 h["store"]["pending_bars"] == 0, 60, "the store recovered and drained")
        assert written() > before
        names = [e["event"] for e in events(log1)]
        assert "store_write_recovered" in names
        wait_for(lambda: "live_cache_resumed" in [e["event"] for e in events(log1)], 10, "the cache resumed")

        # 3) full again, then SIGTERM: the unwritten bars go into the reserved space
        disk.fill()
        wait_for(lambda: _get(health)[1].get("store", {}).get("pending_bars", 0) >= 3, 60, "bars pending again")
        market_at_stop = datetime.fromisoformat(_get(health)[1]["market_time"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log1.read_text()
    assert "Traceback" not in text, text[-3000:]
    [unwritten] = [e for e in events(log1) if e["event"] == "store_unwritten_at_shutdown"]
    assert unwritten["count"] >= 3 and unwritten["spilled"] == unwritten["count"] and unwritten["lost"] == 0
    [spill] = list((disk.view / "data").glob("streamer-unwritten-*.jsonl"))
    rows = [json.loads(line) for line in spill.read_text().splitlines()]
    assert len(rows) == unwritten["count"] and all(r["symbol"] == BTC for r in rows)
    assert not (disk.view / "data" / "streamer-spill.reserve").exists()  # the spill took its place

    # 4) space back, next start: the spilled bars reach the store and the file goes
    disk.free()
    log2 = tmp_path / "streamer-2.log"
    proc = start(log2)
    try:
        wait_for(lambda: not spill.exists(), 60, "the spill file written and removed")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in log2.read_text()
    assert [e for e in events(log2) if e["event"] == "spilled_bars_loaded"][0]["count"] == len(rows)

    # nothing accepted was lost: every 1m bar completed before the stop is stored, as history has it
    stored = {datetime.fromisoformat(r["time"]): r for r in json.loads(disk.store("bars", BTC))}
    first = min(stored)
    cutoff = market_at_stop - timedelta(seconds=5)
    session = sim.market.session(BTC)
    history = [b for b in sim.market.bars_between(BTC, Interval.M1, first.timestamp(), cutoff.timestamp())
               if bar_end(b.time, Interval.M1, session) <= cutoff]
    assert len(history) >= 10
    missing = [b.time for b in history if b.time not in stored]
    assert not missing, f"bars lost: {missing[:5]}"
    for b in history:
        row = stored[b.time]
        if not row["partial"]:
            assert (row["open"], row["high"], row["low"], row["close"]) == (b.open, b.high, b.low, b.close)


@pytest.mark.parametrize("command", [["-m", "streamer"], ["-m", "pocketquant_pipelines", "stream"]],
                         ids=["python-m-streamer", "pocketquant-stream"])
def test_started_on_a_full_disk_exits_4_with_one_line(tmp_path, sim, disk, command):
    env = _env(disk, sim.url, free_port())
    disk.fill()
    log_path = tmp_path / "streamer.log"
    with open(log_path, "w") as fh:
        proc = disk.run([sys.executable, *command], env=env, cwd=tmp_path, stdout=fh,
                        stderr=subprocess.STDOUT, preexec_fn=_default_signals)
    assert proc.wait(60) == exit_codes.DISK_FULL
    text = log_path.read_text()
    assert "Traceback" not in text, text[-3000:]
    full = [e for e in events(log_path) if e["event"] == "streamer_disk_full"]
    assert len(full) == 1 and "POCKETQUANT_DATA_DIR" in full[0]["hint"]
    assert [e for e in events(log_path) if e.get("level") == "error"] == full
