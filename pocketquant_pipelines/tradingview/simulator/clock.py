"""Simulated time for the simulator: ``sim_now = sim_start + (wall_now - wall_start) * speed``."""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.market.timeutil import ensure_utc, from_epoch


class SimClock:
    """Simulated time: ``sim_start + (wall - wall_start) * speed``. Thread-safe reads."""

    def __init__(self, sim_start: datetime | None = None, speed: float = 1.0):
        if not isinstance(speed, (int, float)) or not speed > 0 or not math.isfinite(speed):
            raise InvalidInputError(f"speed {speed!r} must be a positive number")
        start = datetime.now(UTC) if sim_start is None else ensure_utc(sim_start, "sim_start")
        self._sim0 = start.timestamp()
        self._wall0 = time.monotonic()
        self._speed = float(speed)
        self._lock = threading.Lock()

    @property
    def speed(self) -> float:
        return self._speed

    def now_epoch(self) -> float:
        with self._lock:
            return self._sim0 + (time.monotonic() - self._wall0) * self._speed

    def now(self) -> datetime:
        return from_epoch(self.now_epoch())

    def set_speed(self, speed: float) -> None:
        if not isinstance(speed, (int, float)) or not speed > 0:
            raise InvalidInputError(f"speed {speed!r} must be a positive number")
        with self._lock:
            wall = time.monotonic()
            self._sim0 += (wall - self._wall0) * self._speed
            self._wall0 = wall
            self._speed = float(speed)

    def jump(self, seconds: float) -> None:
        """Move simulated time forward (never backward: history must stay consistent)."""
        if seconds < 0:
            raise InvalidInputError(f"cannot jump back in time ({seconds!r} s)")
        with self._lock:
            self._sim0 += seconds
