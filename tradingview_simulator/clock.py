"""Simulated time for the simulator: ``sim_now = sim_start + (wall_now - wall_start) * speed``,
never past the wall clock.

TradingView never sends a tick from the future, and the streamer rejects ticks dated beyond
wall-clock now plus a small skew (``POCKETQUANT_CLOCK_SKEW_S``). So simulated time may run
faster than real time only while it is behind it: once an accelerated clock catches up with
the wall clock it follows it at real-time speed. For the same reason a start in the future is
refused, and an accelerated run without an explicit start begins in the past, early enough
to run accelerated for its first ``ACCELERATED_RUN_S`` wall seconds.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.market.timeutil import ensure_utc, from_epoch

# An accelerated clock started without sim_start meets real time after this many wall seconds.
ACCELERATED_RUN_S = 3600.0
# A sim_start this little ahead of the wall clock is "now" (a caller's datetime.now() taken a
# moment before the clock reads its own).
_START_TOLERANCE_S = 1.0


def _check_speed(speed: object) -> float:
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not speed > 0 or not math.isfinite(speed):
        raise InvalidInputError(f"speed {speed!r} must be a positive number")
    return float(speed)


def default_start(speed: float, wall_now: float) -> float:
    """Where a clock started without ``sim_start`` begins: now at real-time speed (or slower);
    for an accelerated clock, ``(speed - 1) * ACCELERATED_RUN_S`` seconds ago, so that it runs
    accelerated for ``ACCELERATED_RUN_S`` wall seconds before it reaches real time."""
    return wall_now - max(0.0, speed - 1.0) * ACCELERATED_RUN_S


class SimClock:
    """Simulated time: ``sim_start + (wall - wall_start) * speed``, capped at the wall clock
    (``time.time()``) and never going backwards. Thread-safe."""

    def __init__(self, sim_start: datetime | None = None, speed: float = 1.0, *, wall=time.time):
        self._speed = _check_speed(speed)
        self._wall = wall
        now = wall()
        if sim_start is None:
            start = default_start(self._speed, now)
        else:
            start = ensure_utc(sim_start, "sim_start").timestamp()
            if start > now + _START_TOLERANCE_S:
                raise InvalidInputError(
                    f"sim_start {from_epoch(start).isoformat()} is in the future: simulated time never runs "
                    "ahead of the wall clock (TradingView sends no ticks from the future)")
        self._sim0 = start
        self._mono0 = time.monotonic()
        self._last = min(start, now)
        self._lock = threading.Lock()

    @property
    def speed(self) -> float:
        return self._speed

    def _now_locked(self) -> float:
        t = self._sim0 + (time.monotonic() - self._mono0) * self._speed
        wall = self._wall()
        if t > wall:
            t = wall  # caught up: real-time speed from here on
        if t < self._last:
            t = self._last  # the wall clock stepped back (NTP): hold rather than rewind history
        self._last = t
        return t

    def now_epoch(self) -> float:
        with self._lock:
            return self._now_locked()

    def now(self) -> datetime:
        return from_epoch(self.now_epoch())

    def set_speed(self, speed: float) -> None:
        speed = _check_speed(speed)
        with self._lock:
            # re-based on the capped time: a clock held at the wall clock resumes from there
            self._sim0 = self._now_locked()
            self._mono0 = time.monotonic()
            self._speed = speed

    def jump(self, seconds: float) -> None:
        """Move simulated time forward (never backward: history must stay consistent; never
        past the wall clock: no ticks from the future)."""
        if not seconds >= 0:
            raise InvalidInputError(f"cannot jump back in time ({seconds!r} s)")
        with self._lock:
            base = self._now_locked()
            target = base + seconds
            wall = self._wall()
            if target > wall + _START_TOLERANCE_S:
                raise InvalidInputError(
                    f"cannot jump {seconds!r} s: simulated time would pass the wall clock by "
                    f"{target - wall:.0f} s (start the simulator further in the past)")
            self._sim0 = min(target, wall)
            self._mono0 = time.monotonic()
