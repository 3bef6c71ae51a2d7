"""A minimal HTTP/1.1 server for ``/health`` and ``/metrics`` on asyncio streams.

aiohttp is not a dependency and the endpoints are two GETs, so a small handler on
``asyncio.start_server`` is enough: it runs on the service's own loop and reads live state
without locks. One request per connection (``Connection: close``), which is what Prometheus
scrapers and load-balancer probes do anyway.

Limits, because the port may be reachable by more than the probe:

* ``header_timeout_s``: the request line *and* all headers must arrive within this one
  deadline (not per line: a client trickling one header every few seconds would otherwise
  hold its connection forever). A late client is closed without an answer.
* ``max_header_bytes``: a request head larger than this is answered 431 and closed.
* ``max_connections``: connections open at once. One past the cap is answered
  ``503 busy`` at once and closed, so idle sockets cannot pile up (each costs a file
  descriptor and a task).
* HEAD gets the headers GET would get (same status, type and Content-Length), no body.
"""

import asyncio
import json
from collections.abc import Callable

from pocketquant_pipelines.logging import get_logger

log = get_logger("streamer.health")

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 400: "Bad Request",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HEADER_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 64
MAX_HEADER_BYTES = 8192


class _HeadTooLarge(Exception):
    pass


class HealthServer:
    def __init__(self, health_fn: Callable[[], tuple[bool, dict]], metrics_fn: Callable[[], str],
                 host: str = "127.0.0.1", port: int = 8765, *, header_timeout_s: float = HEADER_TIMEOUT_S,
                 max_connections: int = MAX_CONNECTIONS, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self.health_fn = health_fn
        self.metrics_fn = metrics_fn
        self.host = host
        self.port = port
        self.header_timeout_s = header_timeout_s
        self.max_connections = max_connections
        self.max_header_bytes = max_header_bytes
        self.open_connections = 0
        self.rejected_busy = 0       # connections answered 503 because the cap was reached
        self.timed_out = 0           # connections closed because the head came too slowly
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                  limit=self.max_header_bytes)
        self.port = self._server.sockets[0].getsockname()[1]  # port 0 -> the one we got
        log.info("health_listening", host=self.host, port=self.port,
                 max_connections=self.max_connections, header_timeout_s=self.header_timeout_s)
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes:
        """The request line; the headers are read and discarded (we need none of them)."""
        request_line = await reader.readline()
        size = len(request_line)
        while True:
            line = await reader.readline()
            size += len(line)
            if size > self.max_header_bytes:
                raise _HeadTooLarge
            if line in (b"\r\n", b"\n", b""):
                return request_line

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open_connections >= self.max_connections:
            self.rejected_busy += 1
            await self._reply(writer, 503, "text/plain", b"busy\n", head_only=False)
            return
        self.open_connections += 1
        try:
            await self._serve(reader, writer)
        finally:
            self.open_connections -= 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head_only = False
        try:
            request_line = await asyncio.wait_for(self._read_head(reader), timeout=self.header_timeout_s)
            parts = request_line.decode("latin-1").split()
            head_only = bool(parts) and parts[0] == "HEAD"
            status, ctype, body = self._route(parts)
        except TimeoutError:
            self.timed_out += 1
            writer.close()
            return
        except (_HeadTooLarge, ValueError, asyncio.LimitOverrunError):
            status, ctype, body = 431, "text/plain", b"request head too large\n"
        except ConnectionError:
            writer.close()
            return
        except Exception as exc:  # noqa: BLE001 - a probe must never take the service down
            log.warning("health_handler_failed", error=f"{type(exc).__name__}: {exc}")
            status, ctype, body = 503, "application/json", json.dumps({"error": str(exc)}).encode()
        await self._reply(writer, status, ctype, body, head_only=head_only)

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, ctype: str, body: bytes, *,
                     head_only: bool) -> None:
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            writer.write(head.encode("latin-1") + (b"" if head_only else body))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _route(self, parts: list[str]) -> tuple[int, str, bytes]:
        if len(parts) < 2:
            return 400, "text/plain", b"bad request\n"
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"only GET and HEAD\n"
        if target in ("/health", "/healthz", "/"):
            healthy, body = self.health_fn()
            return (200 if healthy else 503), "application/json", (json.dumps(body, default=str) + "\n").encode()
        if target == "/metrics":
            return 200, PROMETHEUS_CONTENT_TYPE, self.metrics_fn().encode()
        return 404, "text/plain", b"not found; try /health or /metrics\n"
