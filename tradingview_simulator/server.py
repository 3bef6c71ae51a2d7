"""A local WebSocket server speaking TradingView's data protocol from the SERVER side.

It behaves like data.tradingview.com as captured in shared/tradingview-protocol.md (§7 is the
checklist), not like our client expects: hello first, heartbeats every ``heartbeat_s`` that
must be echoed, several frames packed per WebSocket message, session ids chosen by the
client, errors exactly as observed (``protocol_error`` closes the socket, ``critical_error``
does not, an unknown symbol never gets ``series_completed``), non-ASCII text sent raw with
LEN counted in UTF-16 units.

Data comes from :class:`SyntheticMarket`; time is simulated
(``sim_now = sim_start + (wall_now - wall_start) * speed``); faults come from
:class:`FaultConfig`. docs/simulator.md describes the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.tradingview.codec import encode_frame
from tradingview_simulator.clock import SimClock
from tradingview_simulator.config import ANONYMOUS_DEPTH, PAID_DEPTH, SimulatorConfig
from tradingview_simulator.connection import Connection
from tradingview_simulator.faults import FaultConfig, ServerStats
from tradingview_simulator.market import SyntheticMarket
from tradingview_simulator.payloads import json_text
from tradingview_simulator.server_state import ServerState
from tradingview_simulator.symbol_model import SymbolModel

__all__ = ["ANONYMOUS_DEPTH", "PAID_DEPTH", "SimClock", "SimulatorServer", "run_simulator_in_thread"]

log = get_logger()

RELEASE = "release_209-23"


class SimulatorServer:
    """The simulator. ``await start()``, use ``url``, ``await stop()``.

    Started with a :class:`SimulatorConfig` (or its fields as keywords, ``symbols=None`` and
    ``delays`` as in :meth:`SimulatorConfig.of`). State: ``faults`` (live switches), ``stats``
    (counters), ``clock`` (simulated time), ``market`` (the oracle). Test hooks:
    ``drop_all_connections()``, ``go_silent()``, ``send_malformed()``, ``refuse_next()``.
    """

    def __init__(self, config: SimulatorConfig | None = None, *, faults: FaultConfig | None = None,
                 **settings: Any):
        if config is None:
            config = SimulatorConfig.of(**settings)
        elif settings:
            raise TypeError(f"pass either a SimulatorConfig or its fields, not both ({', '.join(settings)})")
        self.config = config
        self.host = config.host
        self.port = config.port
        self.market = SyntheticMarket(seed=config.seed, symbols=config.symbols)
        self.clock = SimClock(config.sim_start, config.speed)
        self.faults = faults if faults is not None else FaultConfig()
        self.stats = ServerStats()
        self._warm_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._server = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections: set[Connection] = set()
        self._count = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return f"ws://{self.host}:{self.port}/socket.io/websocket"

    def sim_now(self) -> datetime:
        return self.clock.now()

    async def start(self) -> "SimulatorServer":
        self._loop = asyncio.get_running_loop()
        self._server = await serve(
            self._handler, self.host, self.port,
            process_request=self._process_request,
            max_size=None, ping_interval=None,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        log.info("simulator_started", url=self.url, seed=self.market.seed, speed=self.clock.speed,
                 sim_now=self.sim_now().isoformat())
        if self.config.warm_up:
            self._warm_thread = threading.Thread(target=self._warm, name="simulator-warm-up", daemon=True)
            self._warm_thread.start()
        return self

    def _warm(self) -> None:
        """Precompute every symbol's daily summaries (what 1d/1w/1M history needs, the only
        request that touches years of ticks) so the first daily sync is served from cache."""
        for symbol in self.market.symbols:
            if self._stopping.is_set():
                return
            try:
                self.market.warm_up(symbol, self.sim_now())
            except Exception:  # warm-up is an optimisation; a failure shows up on request
                log.exception("simulator_warm_up_failed", symbol=symbol)
        log.info("simulator_warmed_up", symbols=len(self.market.symbols))

    async def stop(self) -> None:
        self._stopping.set()
        if self._server is None:
            return
        for conn in list(self._connections):
            conn.out.closing = True
            transport = getattr(conn.ws, "transport", None)
            if transport is not None:
                transport.abort()
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), timeout=5)
        self._server = None
        log.info("simulator_stopped", port=self.port)

    async def __aenter__(self) -> "SimulatorServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ------------------------------------------------------------------ lookups

    def lookup(self, text: str) -> SymbolModel | None:
        """A symbol string or ``={json}`` descriptor -> its model, or None if unknown."""
        if not isinstance(text, str):
            return None
        name: Any = text
        if text.startswith("="):
            try:
                desc = json.loads(text[1:])
            except ValueError:
                return None
            name = desc.get("symbol") if isinstance(desc, dict) else None
            if isinstance(name, dict):  # {"symbol": {...}, "type": "BarSetHeikenAshi@..."} wrappers
                name = name.get("symbol")
        if not isinstance(name, str):
            return None
        return self.market.find_model(name)

    # ------------------------------------------------------------------ test hooks

    def _in_loop(self, fn, *args) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def drop_all_connections(self) -> None:
        """Abort every open connection (TCP reset, no close frame)."""
        def go():
            for conn in list(self._connections):
                conn.abort("drop_all_connections")
        self._in_loop(go)

    def go_silent(self, silent: bool = True) -> None:
        self.faults.silent = bool(silent)

    def send_malformed(self) -> None:
        """Send one malformed frame (alternately wrong LEN / broken JSON) on every connection."""
        def go():
            for conn in list(self._connections):
                conn.out.send_malformed_now()
        self._in_loop(go)

    def refuse_next(self, k: int = 1) -> None:
        """Refuse the next ``k`` upgrade attempts with HTTP 429."""
        self.faults.refuse_connections = int(k)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    # ------------------------------------------------------------------ websockets plumbing

    def _process_request(self, connection, request):
        if self.faults.refuse_connections > 0:
            self.faults.refuse_connections -= 1
            self.stats.refused += 1
            log.info("simulator_upgrade_refused", status=429)
            return connection.respond(HTTPStatus.TOO_MANY_REQUESTS, "Too Many Requests\n")
        return None

    def _hello(self, conn: Connection) -> str:
        now = self.clock.now_epoch()
        digest = hashlib.sha1(f"{self.market.seed}".encode()).hexdigest()
        hello = {
            "session_id": f"<0.{4000 + conn.number}.{self.market.seed % 1000}>_sim1-charts-free-1-webchart-{conn.number}@sim1-compute-1_x",
            "timestamp": int(now),
            "timestampMs": int(now * 1000),
            "release": RELEASE,
            "studies_metadata_hash": digest,
            "auth_scheme_vsn": 2,
            "protocol": "json",
            "via": f"{self.host}:{self.port}",
            "javastudies": ["3.66"],
        }
        return encode_frame(json_text(hello))

    async def _handler(self, ws: ServerConnection) -> None:
        self._count += 1
        conn = Connection(ws, self._count, ServerState(self.config, self.clock, self.faults, self.stats), self.lookup)
        self._connections.add(conn)
        self.stats.connections += 1
        self.stats.active += 1
        log.info("simulator_connection_opened", connection=conn.number)
        try:
            await conn.serve(self._hello(conn))
        finally:
            self._connections.discard(conn)
            self.stats.active -= 1
            log.info("simulator_connection_closed", connection=conn.number)


@contextlib.contextmanager
def run_simulator_in_thread(**kwargs: Any) -> Iterator[SimulatorServer]:
    """Run a :class:`SimulatorServer` on its own event-loop thread (for sync code and tests).

    Yields the started server; stops it and joins the thread on exit."""
    server = SimulatorServer(**kwargs)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:  # report to the caller instead of dying silently
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="pocketquant-simulator", daemon=True)
    thread.start()
    started.wait(timeout=30)
    if failure:
        thread.join(timeout=5)
        loop.close()
        raise failure[0]
    try:
        yield server
    finally:
        future = asyncio.run_coroutine_threadsafe(server.stop(), loop)
        with contextlib.suppress(Exception):
            future.result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
