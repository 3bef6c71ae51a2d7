"""Ticks -> bars at many intervals at once.

One ``BarAggregator`` per symbol. It keeps the in-progress bar of each interval, closes a bar
when a tick of a later bucket arrives (or ``close_due`` finds its end passed), drops and counts
late ticks, and never does I/O.

Design (for throughput, see bench/aggregator.py): a tick touches only the live 1-minute bar,
found by comparing its epoch time with the cached ``[start, end)`` window of that bar — no
datetime objects, no session lookups. Only when a tick falls outside that window does the slow
path run: the finished minute is folded into every coarser interval's in-progress bar (each
coarser bucket is a union of whole minutes, because session opens and closes are whole
minutes) and the coarser windows are re-aligned through ``market.sessions`` as needed.
``current_bars()`` combines the folded state with the live minute lazily.

A built bar equals the historical bar of the same period: open is the first tick's price,
close the last, high/low the extremes, volume the sum of per-tick volumes (None when no tick
carried a volume, e.g. an index).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.market.bars import Bar, unchecked_bar
from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval
from pocketquant_pipelines.market.sessions import (
    SESSION_24X7,
    Session,
    bar_bounds_epoch,
    closed_span_epoch,
)
from pocketquant_pipelines.market.symbols import normalize_symbol
from pocketquant_pipelines.market.ticks import Tick
from pocketquant_pipelines.market.timeutil import ensure_utc, from_epoch

_INF = math.inf
_ORDER = {interval: n for n, interval in enumerate(ALL_INTERVALS)}
# bar start (epoch) -> its datetime, shared by every aggregator: a push of in-progress bars
# builds 13 bars whose starts rarely change, and symbols of one session share them
_STARTS: dict[float, datetime] = {}
_STARTS_MAX = 16384


class _Coarse:
    """In-progress state of one interval coarser than 1m: its window and the folded minutes."""

    __slots__ = ("interval", "start", "end", "o", "h", "l", "c", "v", "has")

    def __init__(self, interval: Interval) -> None:
        self.interval = interval
        self.start = self.end = None  # no window yet (or closed by close_due)
        self.o = self.h = self.l = self.c = 0.0
        self.v: float | None = None
        self.has = False  # at least one finished minute folded in


class BarAggregator:
    __slots__ = (
        "symbol", "session", "intervals", "late_ticks", "out_of_session_ticks",
        "_emit_1m", "_coarse", "_m_start", "_m_end", "_live", "_o", "_h", "_l", "_c", "_v",
        "_closed_from", "_closed_until",
    )

    def __init__(
        self, symbol: str, session: Session = SESSION_24X7,
        intervals: Iterable[Interval] = ALL_INTERVALS,
    ) -> None:
        self.symbol = normalize_symbol(symbol)
        if not isinstance(session, Session):
            raise InvalidInputError(f"session {session!r} is not a Session (use Session.parse)")
        self.session = session
        chosen = sorted({Interval.parse(i) for i in intervals}, key=_ORDER.__getitem__)
        if not chosen:
            raise InvalidInputError(f"no intervals given for {self.symbol}")
        self.intervals: tuple[Interval, ...] = tuple(chosen)
        self.late_ticks = 0            # ticks older than the current bar of the finest interval, dropped
        self.out_of_session_ticks = 0  # ticks outside every session, dropped
        # The 1m bar is the base every other interval is folded from, even when 1m itself is
        # not among the requested intervals (it is then just not emitted).
        self._emit_1m = Interval.M1 in self.intervals
        self._coarse = [_Coarse(i) for i in self.intervals if i is not Interval.M1]
        self._reset()

    def _reset(self) -> None:
        # [_m_start, _m_end) is the live minute's window. When no minute is live the window is
        # empty and _m_start is the watermark: ticks before it are late.
        self._m_start = self._m_end = -_INF
        self._live = False
        self._o = self._h = self._l = self._c = 0.0
        self._v = None
        # Cached out-of-session gap, so a burst of closed-market ticks costs no lookups.
        self._closed_from = self._closed_until = _INF
        for coarse in self._coarse:
            coarse.start = coarse.end = None
            coarse.has = False
            coarse.v = None

    # ---------------------------------------------------------------------------------------
    # Ticks

    def on_tick(self, tick: Tick) -> list[Bar]:
        """Apply one tick; return the bars it completed (oldest first)."""
        if tick.symbol != self.symbol and normalize_symbol(tick.symbol) != self.symbol:
            raise InvalidInputError(f"tick for {tick.symbol!r} given to the aggregator of {self.symbol!r}")
        time = tick.time
        if getattr(time, "tzinfo", None) is None:
            ensure_utc(time, "tick time")  # raises: naive (its zone would be a guess) or not a datetime
        # timestamp() of an aware datetime is zone-independent: no conversion needed.
        return self.on_tick_values(time.timestamp(), tick.price, tick.volume)

    def on_tick_values(self, t: float, price: float, volume: float | None = None) -> list[Bar]:
        """Fast path: epoch seconds, price, per-tick volume (None when the market has none).

        Returns the bars this tick completed, oldest first (usually none).
        """
        try:
            # Chained comparisons are False for NaN, so these also reject NaN and +-inf.
            valid = -_INF < price < _INF and (volume is None or 0 <= volume < _INF)
            in_live_minute = self._m_start <= t < self._m_end
        except TypeError:  # None, strings...
            valid = False
        # Only plain numbers (a float, nearly always; else int/float, not bool): the bars are
        # built from these values without re-validation (``unchecked_bar``).
        if not valid or (price.__class__ is not float and not _finite_number(price)) or (
                volume is not None and volume.__class__ is not float and not _finite_number(volume)):
            raise InvalidInputError(f"bad tick for {self.symbol}: {_tick_problem(t, price, volume)}")
        if in_live_minute:
            if price > self._h:
                self._h = price
            elif price < self._l:
                self._l = price
            self._c = price
            if volume is not None:
                v = self._v
                self._v = volume if v is None else v + volume
            return []
        return self._new_bucket(t, price, volume)

    def _new_bucket(self, t: float, price: float, volume: float | None) -> list[Bar]:
        if not -_INF < t < _INF:
            raise InvalidInputError(f"bad tick for {self.symbol}: {_tick_problem(t, price, volume)}")
        if t < self._m_start:
            self.late_ticks += 1
            return []
        if self._closed_from <= t < self._closed_until:
            self.out_of_session_ticks += 1
            return []
        session = self.session
        bounds = bar_bounds_epoch(t, Interval.M1, session)
        if bounds is None:
            self._closed_from, self._closed_until = closed_span_epoch(t, session)
            self.out_of_session_ticks += 1
            return []
        done: list[Bar] = []
        if self._live:
            self._finish_minute(done)
        for coarse in self._coarse:
            end = coarse.end
            if end is None or t >= end:
                if coarse.has:
                    done.append(self._coarse_bar(coarse))
                    coarse.has = False
                    coarse.v = None
                coarse.start, coarse.end = bar_bounds_epoch(t, coarse.interval, session)  # type: ignore[misc]
        self._m_start, self._m_end = bounds
        self._live = True
        self._o = self._h = self._l = self._c = price
        self._v = volume
        if len(done) > 1:
            done.sort(key=_bar_order)
        return done

    def _finish_minute(self, done: list[Bar]) -> None:
        """Emit the live minute (if 1m is wanted) and fold it into every coarser bar."""
        o, h, l, c, v = self._o, self._h, self._l, self._c, self._v
        if self._emit_1m:
            done.append(self._bar(Interval.M1, self._m_start, o, h, l, c, v))
        for coarse in self._coarse:
            if coarse.has:
                if h > coarse.h:
                    coarse.h = h
                if l < coarse.l:
                    coarse.l = l
                coarse.c = c
                if v is not None:
                    coarse.v = v if coarse.v is None else coarse.v + v
            else:
                coarse.o, coarse.h, coarse.l, coarse.c, coarse.v = o, h, l, c, v
                coarse.has = True
        self._live = False
        self._m_start = self._m_end  # watermark: the finished minute's ticks are now late

    def _coarse_bar(self, coarse: _Coarse) -> Bar:
        return self._bar(coarse.interval, coarse.start, coarse.o, coarse.h, coarse.l, coarse.c, coarse.v)

    def _bar(self, interval: Interval, start: float, o: float, h: float, l: float, c: float,
             v: float | None) -> Bar:
        """A bar of values valid by construction: prices are checked ticks (finite plain
        numbers), high/low their extremes, open/close two of them, volume a sum of checked
        volumes -- which can still overflow to inf: that one goes through ``Bar`` and raises
        InvalidBarError as ever. So ``unchecked_bar`` is equal to ``Bar(...)`` (tested)."""
        if v is not None and not v < _INF:
            return Bar.from_epoch(self.symbol, interval, start, o, h, l, c, v)
        when = _STARTS.get(start)
        if when is None:
            if len(_STARTS) >= _STARTS_MAX:
                _STARTS.clear()
            when = _STARTS[start] = from_epoch(start)
        return unchecked_bar(self.symbol, interval, when, o, h, l, c, v)

    # ---------------------------------------------------------------------------------------
    # Time passing, inspection, shutdown

    def close_due(self, now: datetime) -> list[Bar]:
        """Close and return in-progress bars whose end is <= now (quiet symbols still close)."""
        return self.close_due_epoch(ensure_utc(now, "now").timestamp())

    def close_due_epoch(self, now: float) -> list[Bar]:
        done: list[Bar] = []
        if self._live and self._m_end <= now:
            self._finish_minute(done)
        watermark = self._m_start
        for coarse in self._coarse:
            # A coarse bar holding the live minute ends after that minute, so it is never due here.
            if coarse.end is not None and coarse.end <= now:
                if coarse.has:
                    done.append(self._coarse_bar(coarse))
                    coarse.has = False
                    coarse.v = None
                    watermark = max(watermark, coarse.end)
                coarse.start = coarse.end = None
        if not self._live and watermark > self._m_start:
            # A closed bar is final: a straggler tick from its period must not reopen it under
            # the same key, so everything before the latest closed end now counts as late.
            self._m_start = self._m_end = watermark
        if len(done) > 1:
            done.sort(key=_bar_order)
        return done

    def current_bars(self) -> dict[Interval, Bar]:
        """In-progress bar per interval (only intervals that have seen a tick)."""
        out: dict[Interval, Bar] = {}
        live = self._live
        if live and self._emit_1m:
            out[Interval.M1] = self._bar(Interval.M1, self._m_start, self._o, self._h, self._l, self._c, self._v)
        for coarse in self._coarse:
            with_live = live and coarse.start is not None and coarse.start <= self._m_start < coarse.end
            if coarse.has and with_live:
                v = coarse.v
                if self._v is not None:
                    v = self._v if v is None else v + self._v
                out[coarse.interval] = self._bar(
                    coarse.interval, coarse.start, coarse.o, max(coarse.h, self._h), min(coarse.l, self._l), self._c, v,
                )
            elif coarse.has:
                out[coarse.interval] = self._coarse_bar(coarse)
            elif with_live:
                out[coarse.interval] = self._bar(
                    coarse.interval, coarse.start, self._o, self._h, self._l, self._c, self._v
                )
        return out

    def flush(self) -> list[Bar]:
        """Return every in-progress bar and forget them (shutdown: stored as partial)."""
        bars = sorted(self.current_bars().values(), key=_bar_order)
        self._reset()
        return bars


def _finite_number(x: object) -> bool:
    """An int or float (not bool) that is finite: what ``bar_problem`` accepts as a price."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:  # an int beyond float range
        return False


def _tick_problem(t: object, price: object, volume: object) -> str:
    finite = _finite_number

    if not finite(t):
        return f"time {t!r} is not finite epoch seconds"
    if not finite(price):
        return f"price {price!r} is not a finite number"
    if volume is not None and not (finite(volume) and volume >= 0):  # type: ignore[operator]
        return f"volume {volume!r} is not a finite number >= 0"
    return f"time {t!r}, price {price!r}, volume {volume!r} not usable"


def _bar_order(bar: Bar) -> tuple[datetime, int]:
    return bar.time, _ORDER[bar.interval]
