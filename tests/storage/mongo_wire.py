"""The MongoDB server the storage tests run against, over a real socket.

By default: SecantusDB (a MongoDB-wire-compatible server with WiredTiger inside; *not* mongod),
started as its own process (``secantusd-py``) on a free loopback port from the test-tool
virtual environment ``make test`` installs under ``.tools/secantus``. It is GPL-2.0-only beta
software, so it is a test tool, never a dependency of the project. With
``POCKETQUANT_TEST_MONGODB_URL`` set, that server is used instead (id ``mongo-real``).
"""

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

MONGO_URL_ENV = "POCKETQUANT_TEST_MONGODB_URL"
SECANTUS_VERSION = "0.7.0b3"
SECANTUSD = Path(__file__).resolve().parents[2] / ".tools" / "secantus" / "bin" / "secantusd-py"

# The test id says which server the MongoDB cases ran against.
MONGO_BACKEND_ID = "mongo-real" if os.environ.get(MONGO_URL_ENV) else "mongo-wire-secantusdb"


class WireServer:
    """``secantusd-py --standalone`` on a free port with in-memory storage, owned by the tests."""

    def __init__(self, workdir: Path, port: int):
        self.workdir = workdir
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "secantusd.log"

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, timeout: float = 30.0) -> None:
        import pymongo

        if not SECANTUSD.is_file():
            pytest.fail(f"{SECANTUSD} is missing: the MongoDB cases run against SecantusDB "
                        f"{SECANTUS_VERSION}, which `make test` installs (`make test-tools`)")
        log = self.log_path.open("wb")
        # cwd = a private directory: the launcher reads ./secantusd.toml when there is one
        self.proc = subprocess.Popen(
            [str(SECANTUSD), "--standalone", "--host", "127.0.0.1", "--port", str(self.port),
             "--storage-path", ":memory:", "--cache-size", "256M", "--log-level", "WARNING"],
            cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"secantusd-py exited with {self.proc.returncode} on port {self.port}: "
                            f"{self.log_path.read_text(errors='replace')[-2000:]}")
            client = pymongo.MongoClient(self.url, serverSelectionTimeoutMS=200)
            try:
                client.admin.command("ping")
                return
            except pymongo.errors.PyMongoError:
                time.sleep(0.05)
            finally:
                client.close()
        self.stop()
        pytest.fail(f"secantusd-py did not accept connections on port {self.port} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def throwaway_database() -> str:
    return f"pq_test_{uuid.uuid4().hex[:12]}"
