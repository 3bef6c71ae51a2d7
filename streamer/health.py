"""A minimal HTTP/1.1 server for ``/health`` and ``/metrics`` on asyncio streams.

aiohttp is not a dependency and the endpoints are two GETs, so a small handler on
``asyncio.start_server`` is enough: it runs on the service's own loop and reads live state
without locks. One request per connection (``Connection: close``), which is what Prometheus
scrapers and load-balancer probes do anyway.
"""

import asyncio
import json
from collections.abc import Callable

from pocketquant_pipelines.logging import get_logger

log = get_logger("streamer.health")

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 400: "Bad Request", 503: "Service Unavailable"}
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HealthServer:
    def __init__(self, health_fn: Callable[[], tuple[bool, dict]], metrics_fn: Callable[[], str],
                 host: str = "127.0.0.1", port: int = 8765) -> None:
        self.health_fn = health_fn
        self.metrics_fn = metrics_fn
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]  # port 0 -> the one we got
        log.info("health_listening", host=self.host, port=self.port)
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            while True:  # skip headers; we need none of them
                line = await asyncio.wait_for(reader.readline(), timeout=5)
                if line in (b"\r\n", b"\n", b""):
                    break
            status, ctype, body = self._route(request_line.decode("latin-1").split())
        except (TimeoutError, ConnectionError):
            writer.close()
            return
        except Exception as exc:  # noqa: BLE001 - a probe must never take the service down
            log.exception("health_handler_failed", error=str(exc))
            status, ctype, body = 503, "application/json", json.dumps({"error": str(exc)}).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            writer.write(head.encode("latin-1") + body)
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
            return 405, "text/plain", b"only GET\n"
        if target in ("/health", "/healthz", "/"):
            healthy, body = self.health_fn()
            return (200 if healthy else 503), "application/json", (json.dumps(body, default=str) + "\n").encode()
        if target == "/metrics":
            return 200, PROMETHEUS_CONTENT_TYPE, self.metrics_fn().encode()
        return 404, "text/plain", b"not found; try /health or /metrics\n"
