"""Shared fixtures: free ports, a private redis-server process, isolated settings."""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from pocketquant_pipelines.settings import load_settings
from tests.support import free_port


class RedisServer:
    """A real redis-server on a free loopback port, owned by the test session.

    ``stop()`` / ``start()`` let fault tests take Redis away mid-stream and bring it back on
    the same port.
    """

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed; `make test` installs it (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


@pytest.fixture(scope="session")
def redis_server_proc(tmp_path_factory) -> RedisServer:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(redis_server_proc) -> str:
    """URL of the session's private redis-server, flushed before each test (it is ours alone)."""
    import redis

    if redis_server_proc.proc is None:
        redis_server_proc.start()
    client = redis.Redis.from_url(redis_server_proc.url)
    client.flushdb()
    client.close()
    return redis_server_proc.url


@pytest.fixture
def settings(tmp_path):
    """Settings on embedded backends in a private data dir, ignoring any .env/os.environ."""
    return load_settings(env={"POCKETQUANT_DATA_DIR": str(tmp_path / "data")},
                         dotenv_path=tmp_path / "no.env")
