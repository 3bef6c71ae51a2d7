"""Helpers shared by the end-to-end tests: the CLI in a subprocess, GraphQL against a running
webserver, and waiting on a condition while watching the processes that should make it true."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pocketquant_pipelines.demo import ProcessGroup
from pocketquant_pipelines.settings import PROJECT_ROOT


def free_port() -> int:
    """A free loopback TCP port (free now; the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, every: float = 0.1):
    """Poll ``predicate`` until it returns something truthy, which is returned; AssertionError
    naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    """POST one GraphQL query to the webserver at ``url``; its ``data``, failing on errors."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{url}/graphql", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        payload = json.loads(resp.read())
    assert "errors" not in payload, payload
    return payload["data"]


def cli(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``pocketquant ARGS`` in a subprocess with ``env``."""
    return subprocess.run([sys.executable, "-m", "pocketquant_pipelines", *args], env=env,
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)


def wait_until(what: str, predicate, timeout: float, procs: ProcessGroup, logs: Path,
               every: float = 2.0):
    """Poll ``predicate`` until it returns something truthy; fail with the logs' tails if a
    process died or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        dead = procs.dead()
        assert not dead, f"{[d.name for d in dead]} exited; logs in {logs}"
        time.sleep(every)
    tail = "".join(f"\n--- {p.name}\n" + p.read_text()[-3000:] for p in logs.glob("*.log"))
    pytest.fail(f"timed out waiting for {what}; log tails:{tail}")


def launch_backfill(url: str, asset: str, partitions: list[str], tags: dict[str, str]) -> str:
    """A partition backfill of ``asset`` over GraphQL, as the UI's launch dialog does; its id."""
    launched = graphql(url, """
        mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
          __typename ... on LaunchBackfillSuccess { backfillId }
          ... on PythonError { message } ... on InvalidSubsetError { message } } }""",
        {"p": {"assetSelection": [{"path": [asset]}], "partitionNames": partitions,
               "tags": [{"key": k, "value": v} for k, v in tags.items()]}})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


def backfill_status(url: str, backfill_id: str) -> str | None:
    """The backfill's final status, or None while it is still going."""
    data = graphql(url, """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
        ... on PartitionBackfill { status } } }""", {"id": backfill_id})
    status = data["partitionBackfillOrError"]["status"]
    return status if status not in ("REQUESTED", "CANCELING", "FAILING") else None
