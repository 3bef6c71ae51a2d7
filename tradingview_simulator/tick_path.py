"""One symbol's tick path: a pure function of (seed, symbol, trading day).

A day's path is a Brownian bridge (rounded to price units) from its anchor to the next day's
anchor, drawn from a counter-seeded generator ``default_rng([seed, symbol, 1, day])``, so any day
is computable on its own; anchors come from a cheap daily mean-reverting walk.

Every tick is visible to a quote client: consecutive prices always differ (zero steps are
replaced by +-1 unit; a day's first tick is even and its last tick odd), and every tick of a
volume symbol has volume > 0, so each tick changes ``lp`` or ``volume`` in a ``qsd``.
"""

from __future__ import annotations

import hashlib
import math
from typing import NamedTuple

import numpy as np

from tradingview_simulator.symbol_specs import SymbolSpec

__all__ = ["DayTicks", "TickArrays", "TickPath"]

_MEAN_REVERSION = 0.004  # per day, towards the start price (keeps 8-year paths plausible)
_ANCHOR_BLOCK = 256      # anchor normals are drawn per block of days, seeded by block number
_LOW48 = np.uint64((1 << 48) - 1)


class DayTicks(NamedTuple):
    times: np.ndarray   # int64 epoch seconds, ascending
    units: np.ndarray   # int64 price in 1/pricescale units
    vol: np.ndarray     # int64 volume units (zeros for no-volume symbols)
    cumvol: np.ndarray  # int64 cumulative session volume units
    spread: np.ndarray  # int64 half-spread in price units (bid = price - spread)


class TickArrays(NamedTuple):
    """Ticks as parallel arrays (integer units) plus the trading-day index of each tick."""

    times: np.ndarray
    units: np.ndarray
    vol: np.ndarray
    cumvol: np.ndarray
    spread: np.ndarray
    day: np.ndarray

    def __len__(self) -> int:  # type: ignore[override]
        return int(self.times.shape[0])

    @staticmethod
    def empty() -> TickArrays:
        z = np.empty(0, dtype=np.int64)
        return TickArrays(z, z, z, z, z, z)


class TickPath:
    """Anchors (one opening price per trading day) and the ticks between them."""

    def __init__(self, spec: SymbolSpec, seed: int):
        self.spec = spec
        self.seed = int(seed)
        self.key = int.from_bytes(hashlib.blake2b(spec.symbol.encode(), digest_size=8).digest(), "big")
        self._anchor_y = np.empty(0)  # log-deviation walk, one value per day

    def ensure_anchors(self, n: int) -> None:
        have = self._anchor_y.shape[0]
        if have >= n:
            return
        sigma = self.spec.daily_volatility
        ys = list(self._anchor_y)
        y = ys[-1] if ys else 0.0
        block_cache: dict[int, np.ndarray] = {}
        for d in range(have, n):
            if d == 0:
                ys.append(0.0)
                continue
            block, offset = divmod(d - 1, _ANCHOR_BLOCK)
            z = block_cache.get(block)
            if z is None:
                z = np.random.default_rng([self.seed, self.key, 0, block]).standard_normal(_ANCHOR_BLOCK)
                block_cache[block] = z
            y = (1.0 - _MEAN_REVERSION) * y + sigma * float(z[offset])
            ys.append(y)
        self._anchor_y = np.asarray(ys)

    def anchor(self, d: int) -> int:
        """Opening price of day ``d`` in units; always even (a day's last tick is odd)."""
        self.ensure_anchors(d + 1)
        price = self.spec.start_price * math.exp(float(self._anchor_y[d])) * self.spec.pricescale
        return max(2, 2 * round(price / 2))

    def day(self, d: int, o: int, c: int) -> DayTicks:
        """The ticks of trading day ``d`` (open ``o``, close ``c``, epoch seconds): one 64-bit
        counter-seeded draw per tick feeds the step (a centred popcount of 48 bits: binomial,
        variance 12), the sign of a zero step, the volume and the spread. Cheap enough to
        regenerate 8 years in well under a second."""
        spec = self.spec
        ts = spec.tick_seconds
        n = max(1, -(-(c - o) // ts))
        times = o + ts * np.arange(n, dtype=np.int64)
        a, b = self.anchor(d), self.anchor(d + 1)
        raw = np.random.PCG64(np.random.SeedSequence([self.seed, self.key, 1, d])).random_raw(n)
        units = np.full(n, a, dtype=np.int64)
        if n > 1:
            z = np.bitwise_count(raw & _LOW48).astype(np.int64) - 24
            z[0] = 0
            w = np.cumsum(z) * (spec.daily_volatility * a / math.sqrt(12 * n))
            # Brownian bridge from this day's anchor towards the next day's.
            x = a + w - (np.arange(n) / (n - 1)) * (w[-1] - (b - a))
            steps = np.diff(np.rint(x).astype(np.int64))
            zero = steps == 0
            steps[zero] = ((raw[1:][zero] >> np.uint64(48)) & np.uint64(1)).astype(np.int64) * 2 - 1
            np.cumsum(steps, out=units[1:])
            units[1:] += a
            if units[-1] % 2 == 0:  # odd close, even next open: consecutive ticks always differ
                units[-1] += 1 if steps[-1] > 0 else -1
            np.maximum(units, 1, out=units)
        high = (raw >> np.uint64(49)).astype(np.int64)  # 15 bits
        if spec.has_volume:
            span = max(1, round(2 * spec.mean_tick_volume) - 1)
            vol = 1 + (((high & 0x7FFF) * span) >> 15)  # uniform, mean ~ mean_tick_volume
        else:
            vol = np.zeros(n, dtype=np.int64)
        spread = 1 + (high >> 12) % 3
        return DayTicks(times, units, vol, np.cumsum(vol), spread)
