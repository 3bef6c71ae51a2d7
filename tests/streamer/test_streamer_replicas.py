"""Scale-out: two real `python -m streamer` processes (STREAMER_REPLICA_INDEX 0 and 1 of 2)
against the simulator, a real redis-server and one shared bar store. Each symbol is streamed
by exactly one replica, no completed bar is published twice, a registry change reaches the
owning replica only, and a replica stopped and started again loses no bar it accepted."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pocketquant_pipelines.market.replicas import ReplicaShare
from pocketquant_pipelines.settings import load_settings
from pocketquant_pipelines.storage.live import BARS_PATTERN
from pocketquant_pipelines.storage.factory import open_bar_store
from pocketquant_pipelines.storage.redis_cache import RedisLiveCache
from tradingview_simulator import DEFAULT_SYMBOLS, run_simulator_in_thread
from streamer_helpers import as_synced
from tests.support import free_port, wait_for

SIM_START = datetime(2026, 1, 30, 15, 0, 5, tzinfo=UTC)
# 24x7 coins: they trade whenever the test runs, so every replica has ticks from the start
COINS = [dataclasses.replace(DEFAULT_SYMBOLS[0], symbol=f"BINANCE:C{i}USDT", description=f"Coin {i}")
         for i in range(8)]
STREAMED = [c.symbol for c in COINS[:6]]   # in the registry from the start
LATE = COINS[6].symbol                     # added while the replicas run
COUNT = 2


def _default_signals():
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())
    except OSError:
        return None


def metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return -1.0
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return -1.0


def subscribed(port: int) -> list[str] | None:
    body = health(port)
    return None if body is None else body["subscribed"]


class Replica:
    def __init__(self, index: int, env: dict, workdir):
        self.index = index
        self.port = free_port()
        self.env = {**env, "STREAMER_REPLICA_INDEX": str(index), "STREAMER_REPLICA_COUNT": str(COUNT),
                    "STREAMER_HEALTH_PORT": str(self.port)}
        self.workdir = workdir
        self.runs = 0
        self.proc: subprocess.Popen | None = None
        self.share = ReplicaShare(index, COUNT)

    @property
    def log_path(self):
        return self.workdir / f"replica-{self.index}-{self.runs}.log"

    def start(self) -> None:
        self.runs += 1
        with open(self.log_path, "w") as log_file:
            self.proc = subprocess.Popen([sys.executable, "-m", "streamer"], env=self.env, cwd=self.workdir,
                                         stdout=log_file, stderr=subprocess.STDOUT,
                                         preexec_fn=_default_signals, start_new_session=True)

    def stop(self) -> dict:
        """SIGTERM; the run's ``streamer_stopped`` event."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0, self.log_path.read_text()[-3000:]
        events = [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]
        [stopped] = [e for e in events if e.get("event") == "streamer_stopped"]
        return stopped

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class BarListener:
    """Every message on pq:bars:* while the replicas run (Redis pub/sub, a real subscriber)."""

    def __init__(self, url: str):
        self.cache = RedisLiveCache(url=url)
        self.sub = self.cache.subscribe(BARS_PATTERN)
        self.messages: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self.sub.get(timeout=0.2)
            if msg is not None:
                self.messages.append(msg.data)

    def close(self) -> list[dict]:
        if self._stop.is_set():
            return self.messages
        time.sleep(0.5)  # the last round published by a stopping replica is on its way
        self._stop.set()
        self._thread.join(5)
        self.sub.close()
        self.cache.close()
        return self.messages


@pytest.fixture
def cluster(tmp_path, redis_server):
    with run_simulator_in_thread(seed=11, speed=60, sim_start=SIM_START, symbols=COINS,
                                 resolve_delay_s=0.0) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "TRADINGVIEW_", "REDIS_",
                                                                        "STREAMER_"))}
        env.update({
            "POCKETQUANT_DATA_DIR": str(tmp_path / "data"), "TRADINGVIEW_WS_URL": sim.url, "REDIS_URL": redis_server,
            "STREAMER_REGISTRY_POLL_S": "0.2", "STREAMER_STORE_BATCH_MS": "100", "STREAMER_CACHE_FLUSH_MS": "50",
            "LOG_FORMAT": "json",
        })
        store = open_bar_store(load_settings(env, dotenv_path=tmp_path / "none.env"))
        for symbol in STREAMED:
            store.add_symbol(as_synced(sim.market, symbol))
        replicas = [Replica(i, env, tmp_path) for i in range(COUNT)]
        for replica in replicas:
            # the assignment splits these symbols over both replicas (else the test proves little)
            assert any(replica.share.owns(s) for s in STREAMED)
        listener = BarListener(redis_server)
        try:
            for replica in replicas:
                replica.start()
            yield sim, store, replicas, listener
        finally:
            for replica in replicas:
                replica.kill()
            listener.close()
            store.close()


def own(replica: Replica, symbols) -> list[str]:
    return sorted(s for s in symbols if replica.share.owns(s))


def bar_key(data: dict) -> tuple[str, str, str]:
    return data["symbol"], data["interval"], data["time"]


@pytest.mark.e2e
def test_replicas_stream_each_symbol_once_and_registry_changes_reach_the_owner(cluster):
    sim, store, replicas, listener = cluster
    for replica in replicas:
        wait_for(lambda r=replica: subscribed(r.port) == own(r, STREAMED), 60,
                 f"replica {replica.index} subscribed to its share")
    lists = [set(subscribed(r.port)) for r in replicas]
    assert lists[0].isdisjoint(lists[1]) and lists[0] | lists[1] == set(STREAMED)

    # a symbol added to the registry is picked up by its owner only
    store.add_symbol(as_synced(sim.market, LATE))
    [late_owner] = [r for r in replicas if r.share.owns(LATE)]
    wait_for(lambda: LATE in (subscribed(late_owner.port) or []), 30, "the owner subscribing the new symbol")
    # a symbol taken off streaming is dropped by its owner
    dropped = STREAMED[0]
    store.update_symbol(dropped, stream=False)
    [drop_owner] = [r for r in replicas if r.share.owns(dropped)]
    wait_for(lambda: dropped not in (subscribed(drop_owner.port) or [dropped]), 30, "the owner dropping the symbol")
    wanted = set(STREAMED[1:]) | {LATE}
    lists = [set(subscribed(r.port)) for r in replicas]
    assert lists[0].isdisjoint(lists[1]) and lists[0] | lists[1] == wanted
    for replica in replicas:
        assert health(replica.port)["replica"] == {"index": replica.index, "count": COUNT}

    # a few simulated minutes of bars from both replicas
    for replica in replicas:
        wait_for(lambda r=replica: metric(r.port, "pocketquant_streamer_bars_published_total") >= 30, 60,
                 f"replica {replica.index} publishing bars")
    stops = [r.stop() for r in replicas]
    messages = listener.close()
    assert all(s["unwritten"] == 0 for s in stops)

    counts = Counter(bar_key(m) for m in messages)
    assert counts and max(counts.values()) == 1, [k for k, n in counts.items() if n > 1][:5]
    # every symbol's bars came from its owner alone: the symbols seen are the wanted ones (plus
    # the dropped one, streamed until it was dropped), and each replica's count adds up
    assert {m["symbol"] for m in messages} <= wanted | {dropped}
    assert {m["symbol"] for m in messages} >= wanted


@pytest.mark.e2e
def test_a_restarted_replica_loses_no_accepted_bar(cluster):
    sim, store, replicas, listener = cluster
    first, other = replicas
    for replica in replicas:
        wait_for(lambda r=replica: metric(r.port, "pocketquant_streamer_bars_written_total") >= 20, 90,
                 f"replica {replica.index} writing bars")
    stopped = first.stop()
    assert stopped["unwritten"] == 0 and stopped["partial_bars"] == 13 * len(own(first, STREAMED))
    first.start()
    wait_for(lambda: subscribed(first.port) == own(first, STREAMED), 60, "the restarted replica resubscribing")
    wait_for(lambda: metric(first.port, "pocketquant_streamer_bars_written_total") >= 20, 90,
             "the restarted replica writing bars")
    stops = [first.stop(), other.stop()]
    messages = listener.close()
    assert all(s["unwritten"] == 0 for s in stops)

    # every bar a replica accepted and published as completed is in the store under its key:
    # complete ones with the published values, partial ones flagged partial
    published = {bar_key(m): m for m in messages}
    assert len(published) == len(messages)  # none twice, the restart included
    by_series: dict[tuple[str, str], set] = {}
    stored = {}
    for symbol, interval, _ in published:
        if (symbol, interval) not in by_series:
            frame = store.read_stream_bars(symbol, interval)
            by_series[(symbol, interval)] = set()
            for ts, row in frame.iterrows():
                key = (symbol, interval, ts.isoformat())
                by_series[(symbol, interval)].add(key)
                stored[key] = row
    missing = [k for k in published if k not in stored]
    assert not missing, missing[:5]
    for key, m in published.items():
        row = stored[key]
        if m["partial"]:
            assert bool(row["partial"]), key
        else:
            assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == (
                m["open"], m["high"], m["low"], m["close"], m["volume"]), key
    restarted = {m["symbol"] for m in messages if first.share.owns(m["symbol"])}
    assert restarted == set(own(first, STREAMED))


def test_a_replica_index_outside_the_count_is_a_one_line_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMER_")}
    env.update({"POCKETQUANT_DATA_DIR": str(tmp_path), "STREAMER_REPLICA_INDEX": "2", "STREAMER_REPLICA_COUNT": "2"})
    done = subprocess.run([sys.executable, "-m", "streamer"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: STREAMER_REPLICA_INDEX=2 must be below STREAMER_REPLICA_COUNT=2 (replicas are numbered 0..1)"]


def test_compose_runs_replicas_with_every_index_once():
    import yaml

    from pocketquant_pipelines.settings import load_settings as load

    compose = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker/compose.yml").read_text())
    streamers = [svc for svc in compose["services"].values() if svc.get("command") == ["python", "-m", "streamer"]]
    shares = {(int(svc["environment"]["STREAMER_REPLICA_INDEX"]), int(svc["environment"]["STREAMER_REPLICA_COUNT"]))
              for svc in streamers}
    count = len(streamers)
    assert count >= 2 and shares == {(i, count) for i in range(count)}
    for svc in streamers:  # each replica's environment is valid settings
        env = {k: str(v) for k, v in svc["environment"].items() if k.startswith("STREAMER_")}
        load(env, dotenv_path=Path("/nonexistent"))
