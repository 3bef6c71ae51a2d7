"""Heartbeats and downtime holes (``pocketquant_pipelines.storage.downtime``) from the streamer.

Every ``HEARTBEAT_S`` the service's symbols' market clocks are handed to the store writer as
one side write that runs only once the bars pending at that moment are in the store: a
heartbeat never claims bars that a crash right after it would lose.

At start the last heartbeats are read once. When a symbol has ticked since the start, its
first tick time is compared with its heartbeat: a gap longer than ``HOLE_MIN_S`` is recorded
as a hole (symbol, heartbeat, first tick), which the Dagster sensor ``downtime_healing_sensor``
turns into a historical sync. A symbol never streamed before has no heartbeat and no hole
(its first sync fills it).
"""

import asyncio
import time

from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.timeutil import from_epoch
from pocketquant_pipelines.storage.downtime import HOLE_MIN_S, DowntimeLog

log = get_logger("streamer.downtime")

HEARTBEAT_S = 5.0


class DowntimeTracker:
    def __init__(self, downtime_log: DowntimeLog, *, heartbeat_s: float = HEARTBEAT_S,
                 hole_min_s: float = HOLE_MIN_S) -> None:
        self.log = downtime_log
        self.heartbeat_s = heartbeat_s
        self.hole_min_s = hole_min_s
        self.previous: dict | None = None   # heartbeats of the last run, read at start
        self._checked: set[str] = set()      # symbols whose first tick was compared already
        self.holes_recorded = 0

    async def run(self, service) -> None:
        try:
            self.previous = await asyncio.to_thread(self.log.last_beats)
        except Exception as exc:  # noqa: BLE001 - no hole detection this run; streaming goes on
            log.warning("heartbeats_unreadable", error=f"{type(exc).__name__}: {exc}")
            self.previous = {}
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self.tick(service)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried at the next beat
                log.warning("heartbeat_failed", error=f"{type(exc).__name__}: {exc}")

    async def tick(self, service) -> None:
        now_mono = time.monotonic()
        beats = {}
        for symbol, state in list(service.symbols.items()):
            if state.last_t is None:
                continue
            if symbol not in self._checked:
                first = state.anchor if state.anchor is not None else state.last_t
                await self._check_hole(symbol, first)
                self._checked.add(symbol)  # after the hole is recorded: a failure retries
            clock = state.clock(now_mono)
            if clock is not None:
                beats[symbol] = from_epoch(clock)
        if beats:
            service.store_writer.after_bars(lambda: self.log.beat(beats))

    async def _check_hole(self, symbol: str, first_tick: float) -> None:
        last = (self.previous or {}).get(symbol)
        if last is None or first_tick - last.timestamp() <= self.hole_min_s:
            return
        hole = await asyncio.to_thread(self.log.record_hole, symbol, last, from_epoch(first_tick))
        self.holes_recorded += 1
        log.warning("downtime_hole_recorded", symbol=symbol, start=hole.start.isoformat(), end=hole.end.isoformat(),
                    minutes=round((hole.end - hole.start).total_seconds() / 60, 1),
                    note="the downtime_healing_sensor requests a historical sync of it")
