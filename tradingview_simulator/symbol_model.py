"""One symbol's market: trading days, its tick path, and bars aggregated from those ticks.

Alignment comes from the market core: trading days are the 1d bar starts of
:mod:`pocketquant_pipelines.market.sessions`; intraday buckets of a day are its
``bar_starts_between``; 1d/1w/1M buckets come from ``bar_start`` of each day's open. Nothing here
re-implements session rules.

Daily OHLCV summaries for the whole history are computed once per symbol (vectorised, well
under a second for 8 years of 10-second ticks) together with each day's 15-minute blocks, so
15m..1M history is served without regenerating ticks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, datetime

import numpy as np

from pocketquant_pipelines.market.bar_columns import BarColumns
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.sessions import Session, bar_end, bar_start, bar_starts_between, bar_starts_between_epoch
from pocketquant_pipelines.market.timeutil import from_epoch
from tradingview_simulator.symbol_specs import SymbolSpec, market_calendar
from tradingview_simulator.tick_path import DayTicks, TickArrays, TickPath
from tradingview_simulator.unit_bars import C, H, L, O, T, V, columns_of, concat_rows, empty_rows, group_rows

__all__ = ["SymbolModel"]

_DAILY_OR_LONGER = (Interval.D1, Interval.W1, Interval.MN1)
_BLOCK_SECONDS = 900  # every intraday interval >= 15m is a multiple of 15 minutes
_SUMMARY_CHUNK = 256  # days summarised per lock acquisition


class _LRU(OrderedDict):
    def __init__(self, maxsize: int):
        super().__init__()
        self.maxsize = maxsize

    def get_or(self, key, make):
        try:
            self.move_to_end(key)
            return self[key]
        except KeyError:
            value = make()
            self[key] = value
            if len(self) > self.maxsize:
                self.popitem(last=False)
            return value


class SymbolModel:
    """Trading days, tick generation and bar aggregation for one symbol. Thread-safe."""

    def __init__(self, spec: SymbolSpec, seed: int):
        self.spec = spec
        self.path = TickPath(spec, seed)
        self.session = Session.parse(spec.session, spec.timezone, market_calendar(spec))
        self.lock = threading.RLock()
        self.history_start = int(datetime.combine(spec.history_start, datetime.min.time(), UTC).timestamp())
        self._opens = np.empty(0, dtype=np.int64)
        self._closes = np.empty(0, dtype=np.int64)
        self._horizon = self.history_start  # days with open < horizon are enumerated
        self._summary = np.empty((0, 5), dtype=np.int64)  # o, h, l, c, v per complete day
        self._blocks = empty_rows()                        # 15-minute blocks of complete days
        self._block_offsets = np.zeros(1, dtype=np.int64)  # day d's blocks: [off[d], off[d+1])
        self._period_keys: dict[Interval, np.ndarray] = {}
        self._days = _LRU(48)
        self._day_bars = _LRU(8192)
        self._starts = _LRU(256)

    # ------------------------------------------------------------------ trading days

    def ensure_days(self, until: int) -> None:
        """Enumerate trading days (the market core's 1d bars) at least up to ``until``."""
        with self.lock:
            while self._horizon <= until:
                lo = self._horizon
                hi = lo + 400 * 86_400
                starts = bar_starts_between(from_epoch(lo), from_epoch(hi), Interval.D1, self.session)
                opens = [int(s.timestamp()) for s in starts]
                closes = [int(bar_end(s, Interval.D1, self.session).timestamp()) for s in starts]
                self._opens = np.concatenate((self._opens, np.asarray(opens, dtype=np.int64)))
                self._closes = np.concatenate((self._closes, np.asarray(closes, dtype=np.int64)))
                self._horizon = hi
            self.path.ensure_anchors(self._opens.shape[0] + 1)

    @property
    def opens(self) -> np.ndarray:
        return self._opens

    @property
    def closes(self) -> np.ndarray:
        return self._closes

    def last_day_opened_before(self, t: int) -> int:
        """Index of the last trading day whose first tick (at its open) is < t; -1 if none."""
        self.ensure_days(t)
        return int(np.searchsorted(self._opens, t, side="left")) - 1

    def _generate_day(self, d: int) -> DayTicks:
        return self.path.day(d, int(self._opens[d]), int(self._closes[d]))

    def day(self, d: int) -> DayTicks:
        with self.lock:
            if not 0 <= d < self._opens.shape[0]:
                raise IndexError(f"{self.spec.symbol}: trading day {d} is not enumerated yet")
            return self._days.get_or(d, lambda: self._generate_day(d))

    # ------------------------------------------------------------------ daily summaries

    def ensure_summary(self, n: int) -> None:
        """OHLCV of days [0, n) (complete days only), computed once, and in the same pass the
        day's 15-minute blocks anchored at its open: every intraday bucket of 15 minutes or
        more is a union of those blocks, so 15m..4h history is served without ticks.

        Works in chunks, taking the lock per chunk, so a background warm-up never holds the
        symbol for long."""
        while True:
            with self.lock:
                have = self._summary.shape[0]
                if have >= n:
                    return
                self._summarise(have, min(n, have + _SUMMARY_CHUNK))

    def _summarise(self, have: int, n: int) -> None:
        rows = np.empty((n - have, 5), dtype=np.int64)
        blocks: list[np.ndarray] = []
        counts = np.empty(n - have, dtype=np.int64)
        for i, d in enumerate(range(have, n)):
            cached = self._days.get(d)
            t = cached if cached is not None else self._generate_day(d)
            u = t.units
            rows[i] = (u[0], u.max(), u.min(), u[-1], t.cumvol[-1])
            # a block's start is a tick time: tick_seconds divides 60, so it divides 900
            block_start = t.times[0] + (t.times - t.times[0]) // _BLOCK_SECONDS * _BLOCK_SECONDS
            day_blocks = group_rows(t.times, u, u, u, u, t.vol, block_start)
            blocks.append(day_blocks)
            counts[i] = day_blocks.shape[0]
        self._summary = np.concatenate((self._summary, rows))
        self._blocks = concat_rows([self._blocks, *blocks])
        self._block_offsets = np.concatenate((self._block_offsets, self._block_offsets[-1] + np.cumsum(counts)))

    def _blocks_of_day(self, d: int) -> np.ndarray | None:
        if d >= self._summary.shape[0]:
            return None
        return self._blocks[int(self._block_offsets[d]):int(self._block_offsets[d + 1])]

    def _period_key(self, interval: Interval, n: int) -> np.ndarray:
        """Bucket start (epoch) of days [0, n) for 1d/1w/1M, from the market core's bar_start."""
        with self.lock:
            keys = self._period_keys.get(interval, np.empty(0, dtype=np.int64))
            have = keys.shape[0]
            if have < n:
                new = []
                for d in range(have, n):
                    first = bar_start(from_epoch(int(self._opens[d])), interval, self.session)
                    last_tick = self._opens[d] + ((self._closes[d] - self._opens[d] - 1) // self.spec.tick_seconds) * self.spec.tick_seconds
                    last = bar_start(from_epoch(int(last_tick)), interval, self.session)
                    if first is None or first != last:
                        raise RuntimeError(
                            f"{self.spec.symbol}: trading day {d} does not sit in one {interval} bar "
                            f"({first} vs {last}); the session {self.session} is not supported"
                        )
                    new.append(int(first.timestamp()))
                keys = np.concatenate((keys, np.asarray(new, dtype=np.int64)))
                self._period_keys[interval] = keys
            return keys[:n]

    # ------------------------------------------------------------------ bars

    def _bucket_starts(self, interval: Interval, d: int) -> np.ndarray:
        def make() -> np.ndarray:
            o, c = int(self._opens[d]), int(self._closes[d])
            return np.asarray(bar_starts_between_epoch(o, c, interval, self.session), dtype=np.float64).astype(np.int64)

        return self._starts.get_or((interval, d), make)

    def _intraday_day_rows(self, interval: Interval, d: int, end: int | None) -> np.ndarray:
        starts = self._bucket_starts(interval, d)
        if end is None and interval.minutes % (_BLOCK_SECONDS // 60) == 0:
            blocks = self._blocks_of_day(d)
            # Only when every bucket start is a block start (true for buckets anchored at the
            # open, which is how the market core aligns them); otherwise fall back to ticks.
            if blocks is not None and blocks.shape[0] and np.isin(starts, blocks[:, T]).all():
                idx = np.searchsorted(starts, blocks[:, T], side="right") - 1
                if idx[0] >= 0:
                    return group_rows(blocks[:, T], blocks[:, O], blocks[:, H], blocks[:, L], blocks[:, C],
                                      blocks[:, V], starts[idx])
        ticks = self.day(d)
        k = ticks.times.shape[0] if end is None else int(np.searchsorted(ticks.times, end, side="left"))
        if k == 0:
            return empty_rows()
        idx = np.searchsorted(starts, ticks.times[:k], side="right") - 1
        if idx[0] < 0:
            raise RuntimeError(
                f"{self.spec.symbol}: tick at {ticks.times[0]} precedes every {interval} bar start "
                f"of its trading day; the session {self.session} is not supported"
            )
        u = ticks.units[:k]
        return group_rows(ticks.times[:k], u, u, u, u, ticks.vol[:k], starts[idx])

    def _cached_day_rows(self, interval: Interval, d: int) -> np.ndarray:
        return self._day_bars.get_or((interval, d), lambda: self._intraday_day_rows(interval, d, None))

    def bars(self, interval: Interval, end: int, count: int | None = None, start: int | None = None) -> BarColumns:
        """Bars whose start is in [start, end) and that hold ticks < end; the last one may be
        in progress. With ``count``, only the latest ``count`` of them."""
        with self.lock:
            dl = self.last_day_opened_before(end)
            if dl < 0 or (count is not None and count <= 0):
                return columns_of(self.spec, interval, empty_rows())
            partial = int(self._closes[dl]) > end  # ticks of day dl at or after `end` are hidden
            if interval in _DAILY_OR_LONGER:
                rows = self._period_rows(interval, dl, end if partial else None)
            else:
                rows = self._intraday_rows(interval, dl, end if partial else None, count, start)
            if start is not None:
                rows = rows[int(np.searchsorted(rows[:, T], start, side="left")):]
            if count is not None and rows.shape[0] > count:
                rows = rows[rows.shape[0] - count:]
            return columns_of(self.spec, interval, rows)

    def _intraday_rows(self, interval, dl, partial_end, count, start) -> np.ndarray:
        parts: list[np.ndarray] = []
        total = 0
        d = dl
        while d >= 0:
            if start is not None and self._closes[d] <= start:
                break
            part = (
                self._intraday_day_rows(interval, d, partial_end)
                if d == dl and partial_end is not None
                else self._cached_day_rows(interval, d)
            )
            parts.append(part)
            total += part.shape[0]
            if count is not None and start is None and total >= count:
                break
            d -= 1
        parts.reverse()
        return concat_rows(parts)

    def _period_rows(self, interval: Interval, dl: int, partial_end: int | None) -> np.ndarray:
        complete = dl if partial_end is not None else dl + 1
        self.ensure_summary(complete)
        rows = self._summary[:complete]
        if partial_end is not None:
            t = self.day(dl)
            k = int(np.searchsorted(t.times, partial_end, side="left"))
            u = t.units[:k]
            rows = np.concatenate((rows, np.asarray([[u[0], u.max(), u.min(), u[-1], t.cumvol[k - 1]]], dtype=np.int64)))
        keys = self._period_key(interval, dl + 1)
        return group_rows(keys, rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4], keys)

    # ------------------------------------------------------------------ ticks

    def tick_arrays(self, start: int, end: int) -> TickArrays:
        """Ticks with start <= time < end, across trading days."""
        with self.lock:
            self.ensure_days(end)
            first = max(0, int(np.searchsorted(self._closes, start, side="right")))
            last = int(np.searchsorted(self._opens, end, side="left")) - 1
            cols: list[list[np.ndarray]] = [[] for _ in range(6)]
            for d in range(first, last + 1):
                t = self.day(d)
                lo = int(np.searchsorted(t.times, start, side="left"))
                hi = int(np.searchsorted(t.times, end, side="left"))
                if hi <= lo:
                    continue
                for col, arr in zip(cols, (t.times, t.units, t.vol, t.cumvol, t.spread)):
                    col.append(arr[lo:hi])
                cols[5].append(np.full(hi - lo, d, dtype=np.int64))
            if not cols[0]:
                return TickArrays.empty()
            return TickArrays(*(np.concatenate(c) for c in cols))

    def last_tick_before(self, t: int) -> tuple[int, int] | None:
        """(day, index in day) of the last tick with time < t, or None before history."""
        d = self.last_day_opened_before(t)
        if d < 0:
            return None
        ticks = self.day(d)
        return d, int(np.searchsorted(ticks.times, t, side="left")) - 1
