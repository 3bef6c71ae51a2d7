"""Deterministic synthetic markets: one tick path per symbol feeds its history AND its quotes.

Why it is built this way:

* **One path, two views.** A symbol's ticks are a pure function of (seed, symbol, trading day).
  Historical bars are aggregated FROM those ticks, and the live quote feed replays the same
  ticks as simulated time passes, so a bar built from streamed ticks by the market core's
  aggregator equals the simulator's historical bar for the same period, bit for bit.
* **Alignment comes from the market core.** Trading days are the 1d bar starts of
  :mod:`pocketquant_pipelines.market.sessions` (``bar_starts_between`` / ``bar_end``);
  intraday buckets of a day are its ``bar_starts_between``; 1d/1w/1M buckets come from
  ``bar_start`` of each day's open. Nothing here re-implements session rules.
* **Exact arithmetic.** Prices are integers in units of ``1/pricescale`` (so OHLC are pure
  selections) and volumes integers in units of ``volume_unit``, a power of two. Every sum of
  tick volumes is therefore exact in float64 in any order: the aggregator's running sum, the
  client's cumulative-volume differences and numpy's pairwise sums agree exactly.
* **Every tick is visible to a quote client.** Consecutive prices always differ (zero steps
  are replaced by +-1 unit; a day's first tick is even and its last tick odd), and every tick
  of a volume symbol has volume > 0, so each tick changes ``lp`` or ``volume`` in a ``qsd``.
* **Any day is computable on its own.** A day's path is a Brownian bridge (rounded to units)
  from its anchor to the next day's anchor, drawn from a counter-seeded generator
  ``default_rng([seed, symbol, 1, day])``; anchors come from a cheap daily mean-reverting walk.
  Daily OHLCV summaries for the whole history are computed once per symbol (vectorised, well
  under a second for 8 years of 10-second ticks) and 1d/1w/1M bars group those summaries.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import NamedTuple

import numpy as np

from pocketquant_pipelines.errors import InvalidInputError, InvalidSymbolError
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.calendar import (
    TradingCalendar,
    calendar_from_symbol_info,
    parse_corrections,
    parse_holidays,
)
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.sessions import Session, bar_end, bar_start, bar_starts_between

try:  # the market core's epoch-level variant skips datetime objects (same rules, faster)
    from pocketquant_pipelines.market.sessions import bar_starts_between_epoch as _starts_epoch
except ImportError:  # pragma: no cover - only if the market core drops the helper
    _starts_epoch = None
from pocketquant_pipelines.market.symbols import Symbol
from pocketquant_pipelines.market.ticks import Tick
from pocketquant_pipelines.market.timeutil import ensure_utc, from_epoch
from pocketquant_pipelines.tradingview.simulator.calendars import (
    NYSE_CORRECTIONS,
    NYSE_HOLIDAYS,
    NYSE_UNLISTED_CLOSURES,
)

__all__ = [
    "DEFAULT_SYMBOLS",
    "BarArrays",
    "SymbolSpec",
    "SyntheticMarket",
    "TickArrays",
    "calendar_fields",
]

_DAILY_OR_LONGER = (Interval.D1, Interval.W1, Interval.MN1)
_MEAN_REVERSION = 0.004  # per day, towards the start price (keeps 8-year paths plausible)
_ANCHOR_BLOCK = 256      # anchor normals are drawn per block of days, seeded by block number
_LOW48 = np.uint64((1 << 48) - 1)
_BLOCK_SECONDS = 900  # every intraday interval >= 15m is a multiple of 15 minutes
_SUMMARY_CHUNK = 256  # days summarised per lock acquisition


@dataclass(frozen=True)
class SymbolSpec:
    """One synthetic instrument: its TradingView metadata and the parameters of its path."""

    symbol: str                  # "NASDAQ:AAPL"
    description: str
    type: str                    # TradingView type: "stock", "spot", "index", "futures"
    currency: str
    session: str                 # TradingView session string, single window per day
    timezone: str                # IANA
    pricescale: int              # price unit = 1 / pricescale
    start_price: float
    daily_volatility: float = 0.02
    has_volume: bool = True      # False: visible_plots_set "ohlc", 5-element bars, no qsd volume
    volume_unit: float = 1.0     # a power of two, so volume sums are exact in float64
    mean_tick_volume: float = 100.0  # in volume units
    tick_seconds: int = 10       # tick grid; divides 60 so every minute starts with a tick
    history_start: date = date(2019, 1, 1)
    delay_s: int = 0             # > 0: update_mode "delayed_streaming_<delay>"
    local_description: str | None = None
    language: str = "en"
    exchange_name: str | None = None  # the exchange as TradingView displays it in quotes
    typespecs: tuple[str, ...] = ()
    country: str = "US"
    minmov: int = 1
    # The exchange calendar, as symbol_resolved carries it: session_holidays (YYYYMMDD) and the
    # regular subsession's session-correction ("0930-1300:20251128,...;dayoff:20250109").
    holidays: tuple[str, ...] = ()
    corrections: str = ""
    # Days the simulated exchange was closed that its symbol_resolved does not list (as
    # TradingView's list misses 2018-12-05): only the history shows them.
    unlisted_closures: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        Symbol.parse(self.symbol)
        if self.symbol != str(Symbol.parse(self.symbol)):
            raise InvalidSymbolError(f"symbol spec {self.symbol!r} must be upper-case EXCHANGE:CODE")
        if not isinstance(self.pricescale, int) or self.pricescale <= 0:
            raise InvalidInputError(f"pricescale {self.pricescale!r} must be a positive int")
        mantissa, _ = math.frexp(self.volume_unit)
        if not self.volume_unit > 0 or mantissa != 0.5:
            raise InvalidInputError(f"volume_unit {self.volume_unit!r} must be a power of two (exact sums)")
        if self.tick_seconds <= 0 or 60 % self.tick_seconds:
            raise InvalidInputError(f"tick_seconds {self.tick_seconds!r} must divide 60")
        if not self.start_price > 0:
            raise InvalidInputError(f"start_price {self.start_price!r} must be > 0")
        if any(c in self.session for c in ",|"):
            raise InvalidInputError(
                f"session {self.session!r}: the simulator supports one window per trading day"
            )
        parse_holidays(self.holidays)
        parse_holidays(self.unlisted_closures)
        for _, ranges in parse_corrections(self.corrections):
            if ranges is not None and len(ranges) != 1:
                raise InvalidInputError(
                    f"corrections {self.corrections!r}: the simulator supports one window per trading day"
                )

    @property
    def exchange(self) -> str:
        return self.symbol.split(":", 1)[0]

    @property
    def code(self) -> str:
        return self.symbol.split(":", 1)[1]

    @property
    def update_mode(self) -> str:
        return f"delayed_streaming_{self.delay_s}" if self.delay_s else "streaming"


DEFAULT_SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec(
        "BINANCE:BTCUSDT", "Bitcoin / TetherUS", "spot", "USDT", "24x7", "Etc/UTC",
        pricescale=100, start_price=30000.0, daily_volatility=0.03,
        volume_unit=2.0 ** -10, mean_tick_volume=1500.0, exchange_name="Binance",
        typespecs=("crypto",), country="",
    ),
    SymbolSpec(
        "NASDAQ:AAPL", "Apple Inc.", "stock", "USD", "0930-1600", "America/New_York",
        pricescale=100, start_price=150.0, daily_volatility=0.015,
        mean_tick_volume=20000.0, exchange_name="NASDAQ", typespecs=("common",),
        holidays=NYSE_HOLIDAYS, corrections=NYSE_CORRECTIONS, unlisted_closures=NYSE_UNLISTED_CLOSURES,
    ),
    SymbolSpec(
        "SP:SPX", "S&P 500", "index", "USD", "0930-1600", "America/New_York",
        pricescale=100, start_price=4000.0, daily_volatility=0.01, has_volume=False,
        exchange_name="SP", typespecs=("main",),
        holidays=NYSE_HOLIDAYS, corrections=NYSE_CORRECTIONS, unlisted_closures=NYSE_UNLISTED_CLOSURES,
    ),
    SymbolSpec(
        # CME's Globex hours: the trading day opens the previous evening at 17:00 Chicago.
        "CME_MINI:NQ1!", "NASDAQ 100 E-MINI FUTURES", "futures", "USD", "1700-1600:23456",
        "America/Chicago", pricescale=4, start_price=15000.0, daily_volatility=0.015,
        mean_tick_volume=40.0, exchange_name="CME", typespecs=("continuous", "synthetic"),
    ),
    SymbolSpec(
        # Non-ASCII local_description (LEN counts UTF-16 units) and the delayed-feed example.
        "KRX:005930", "SAMSUNG ELECTRONICS CO., LTD", "stock", "KRW", "0900-1530", "Asia/Seoul",
        pricescale=1, start_price=60000.0, daily_volatility=0.015, mean_tick_volume=3000.0,
        delay_s=900, local_description="삼성전자보통주", language="ko", exchange_name="KRX",
        typespecs=("common",), country="KR",
    ),
)


def calendar_fields(spec: SymbolSpec) -> dict:
    """The calendar part of the symbol's ``symbol_resolved`` payload, shaped as TradingView
    sends it: ``session_holidays`` (only when there are any, like the real SP:SPX vs TVC:DXY)
    and the regular subsession with its ``session-correction``. The simulated market derives
    its own calendar from exactly this, so what clients are told is what the history shows."""
    fields: dict = {}
    if spec.holidays:
        fields["session_holidays"] = ",".join(spec.holidays)
    fields["subsession_id"] = "regular"
    regular = {"description": "Regular Trading Hours", "id": "regular", "private": False,
               "session": spec.session, "session-display": spec.session}
    if spec.corrections:
        regular["session-correction"] = spec.corrections
    fields["subsessions"] = [regular]
    return fields


def _market_calendar(spec: SymbolSpec) -> TradingCalendar:
    told = calendar_from_symbol_info(calendar_fields(spec))
    unlisted = {d.toordinal() for d in parse_holidays(spec.unlisted_closures)}
    return TradingCalendar(told.closed | unlisted, told.corrected) if unlisted else told


class DayTicks(NamedTuple):
    times: np.ndarray   # int64 epoch seconds, ascending
    units: np.ndarray   # int64 price in 1/pricescale units
    vol: np.ndarray     # int64 volume units (zeros for no-volume symbols)
    cumvol: np.ndarray  # int64 cumulative session volume units
    spread: np.ndarray  # int64 half-spread in price units (bid = price - spread)


class BarArrays(NamedTuple):
    """Bars as parallel arrays (prices and volumes in integer units)."""

    times: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:  # type: ignore[override]
        return int(self.times.shape[0])

    def slice(self, start: int | None, stop: int | None) -> "BarArrays":
        return BarArrays(*(a[start:stop] for a in self))


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


def _empty_bars() -> BarArrays:
    z = np.empty(0, dtype=np.int64)
    return BarArrays(z, z, z, z, z, z)


def _concat_bars(parts: list[BarArrays]) -> BarArrays:
    if not parts:
        return _empty_bars()
    if len(parts) == 1:
        return parts[0]
    return BarArrays(*(np.concatenate(cols) for cols in zip(*parts)))


def _group(times: np.ndarray, units_o, units_h, units_l, units_c, vol, keys: np.ndarray) -> BarArrays:
    """Group consecutive rows with equal ``keys`` into bars stamped with the key."""
    n = keys.shape[0]
    if n == 0:
        return _empty_bars()
    first = np.concatenate(([0], np.flatnonzero(np.diff(keys)) + 1))
    last = np.append(first[1:], n) - 1
    return BarArrays(
        keys[first].astype(np.int64),
        units_o[first],
        np.maximum.reduceat(units_h, first),
        np.minimum.reduceat(units_l, first),
        units_c[last],
        np.add.reduceat(vol, first),
    )


def _epoch(value: datetime | float | int, what: str) -> int:
    if isinstance(value, datetime):
        value = ensure_utc(value, what).timestamp()
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidInputError(f"{what} {value!r} is not a datetime or epoch seconds")
    return math.ceil(value)  # ticks sit on whole seconds: "< 12.5" is "< 13"


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


class _SymbolModel:
    """Trading days, anchors, tick generation and bar aggregation for one symbol."""

    def __init__(self, spec: SymbolSpec, seed: int):
        self.spec = spec
        self.seed = int(seed)
        self.session = Session.parse(spec.session, spec.timezone, _market_calendar(spec))
        self.key = int.from_bytes(hashlib.blake2b(spec.symbol.encode(), digest_size=8).digest(), "big")
        self.lock = threading.RLock()
        self.history_start = int(datetime.combine(spec.history_start, datetime.min.time(), UTC).timestamp())
        self._opens = np.empty(0, dtype=np.int64)
        self._closes = np.empty(0, dtype=np.int64)
        self._horizon = self.history_start  # days with open < horizon are enumerated
        self._anchor_y = np.empty(0)        # log-deviation walk, one value per day
        self._summary = np.empty((0, 5), dtype=np.int64)  # o, h, l, c, v per complete day
        self._blocks = _empty_bars()                      # 15-minute blocks of complete days
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
            self._ensure_anchors(self._opens.shape[0] + 1)

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

    # ------------------------------------------------------------------ the path

    def _ensure_anchors(self, n: int) -> None:
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
        self._ensure_anchors(d + 1)
        price = self.spec.start_price * math.exp(float(self._anchor_y[d])) * self.spec.pricescale
        return max(2, 2 * round(price / 2))

    def _generate_day(self, d: int) -> DayTicks:
        """The ticks of trading day ``d``: one 64-bit counter-seeded draw per tick feeds the
        step (a centred popcount of 48 bits: binomial, variance 12), the sign of a zero step,
        the volume and the spread. Cheap enough to regenerate 8 years in well under a second."""
        spec = self.spec
        o, c = int(self._opens[d]), int(self._closes[d])
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

    def day(self, d: int) -> DayTicks:
        with self.lock:
            if not 0 <= d < self._opens.shape[0]:
                raise IndexError(f"{self.spec.symbol}: trading day {d} is not enumerated yet")
            return self._days.get_or(d, lambda: self._generate_day(d))

    # ------------------------------------------------------------------ daily summaries

    def _ensure_summary(self, n: int) -> None:
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
        blocks: list[list[np.ndarray]] = [[] for _ in range(6)]
        counts = np.empty(n - have, dtype=np.int64)
        for i, d in enumerate(range(have, n)):
            cached = self._days.get(d)
            t = cached if cached is not None else self._generate_day(d)
            u = t.units
            rows[i] = (u[0], u.max(), u.min(), u[-1], t.cumvol[-1])
            key = (t.times - t.times[0]) // _BLOCK_SECONDS
            first = np.concatenate(([0], np.flatnonzero(np.diff(key)) + 1))
            last = np.append(first[1:], u.shape[0]) - 1
            for col, arr in zip(blocks, (
                t.times[first], u[first], np.maximum.reduceat(u, first), np.minimum.reduceat(u, first),
                u[last], np.add.reduceat(t.vol, first),
            )):
                col.append(arr)
            counts[i] = first.shape[0]
        self._summary = np.concatenate((self._summary, rows))
        self._blocks = BarArrays(*(np.concatenate([old, *new]) for old, new in zip(self._blocks, blocks)))
        self._block_offsets = np.concatenate((self._block_offsets, self._block_offsets[-1] + np.cumsum(counts)))

    def _blocks_of_day(self, d: int) -> BarArrays | None:
        if d >= self._summary.shape[0]:
            return None
        return self._blocks.slice(int(self._block_offsets[d]), int(self._block_offsets[d + 1]))

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
            if _starts_epoch is not None:
                return np.asarray(_starts_epoch(o, c, interval, self.session), dtype=np.float64).astype(np.int64)
            starts = bar_starts_between(from_epoch(o), from_epoch(c), interval, self.session)
            return np.asarray([int(s.timestamp()) for s in starts], dtype=np.int64)

        return self._starts.get_or((interval, d), make)

    def _intraday_day_bars(self, interval: Interval, d: int, end: int | None) -> BarArrays:
        starts = self._bucket_starts(interval, d)
        if end is None and interval.minutes % (_BLOCK_SECONDS // 60) == 0:
            blocks = self._blocks_of_day(d)
            # Only when every bucket start is a block start (true for buckets anchored at the
            # open, which is how the market core aligns them); otherwise fall back to ticks.
            if blocks is not None and len(blocks) and np.isin(starts, blocks.times).all():
                idx = np.searchsorted(starts, blocks.times, side="right") - 1
                if idx[0] >= 0:
                    return _group(blocks.times, blocks.open, blocks.high, blocks.low, blocks.close,
                                  blocks.volume, starts[idx])
        ticks = self.day(d)
        k = ticks.times.shape[0] if end is None else int(np.searchsorted(ticks.times, end, side="left"))
        if k == 0:
            return _empty_bars()
        idx = np.searchsorted(starts, ticks.times[:k], side="right") - 1
        if idx[0] < 0:
            raise RuntimeError(
                f"{self.spec.symbol}: tick at {ticks.times[0]} precedes every {interval} bar start "
                f"of its trading day; the session {self.session} is not supported"
            )
        u = ticks.units[:k]
        return _group(ticks.times[:k], u, u, u, u, ticks.vol[:k], starts[idx])

    def _cached_day_bars(self, interval: Interval, d: int) -> BarArrays:
        return self._day_bars.get_or((interval, d), lambda: self._intraday_day_bars(interval, d, None))

    def bars(self, interval: Interval, end: int, count: int | None = None, start: int | None = None) -> BarArrays:
        """Bars (integer units) whose start is in [start, end) and that hold ticks < end; the
        last one may be in progress. With ``count``, only the latest ``count`` of them."""
        with self.lock:
            dl = self.last_day_opened_before(end)
            if dl < 0 or (count is not None and count <= 0):
                return _empty_bars()
            partial = int(self._closes[dl]) > end  # ticks of day dl at or after `end` are hidden
            if interval in _DAILY_OR_LONGER:
                out = self._period_bars(interval, dl, end if partial else None)
            else:
                out = self._intraday_bars(interval, dl, end if partial else None, count, start)
            if start is not None:
                out = out.slice(int(np.searchsorted(out.times, start, side="left")), None)
            if count is not None and len(out) > count:
                out = out.slice(len(out) - count, None)
            return out

    def _intraday_bars(self, interval, dl, partial_end, count, start) -> BarArrays:
        parts: list[BarArrays] = []
        total = 0
        d = dl
        while d >= 0:
            if start is not None and self._closes[d] <= start:
                break
            part = (
                self._intraday_day_bars(interval, d, partial_end)
                if d == dl and partial_end is not None
                else self._cached_day_bars(interval, d)
            )
            parts.append(part)
            total += len(part)
            if count is not None and start is None and total >= count:
                break
            d -= 1
        parts.reverse()
        return _concat_bars(parts)

    def _period_bars(self, interval: Interval, dl: int, partial_end: int | None) -> BarArrays:
        complete = dl if partial_end is not None else dl + 1
        self._ensure_summary(complete)
        rows = self._summary[:complete]
        if partial_end is not None:
            t = self.day(dl)
            k = int(np.searchsorted(t.times, partial_end, side="left"))
            u = t.units[:k]
            rows = np.concatenate((rows, np.asarray([[u[0], u.max(), u.min(), u[-1], t.cumvol[k - 1]]], dtype=np.int64)))
        keys = self._period_key(interval, dl + 1)
        return _group(keys, rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4], keys)

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
                z = np.empty(0, dtype=np.int64)
                return TickArrays(z, z, z, z, z, z)
            return TickArrays(*(np.concatenate(c) for c in cols))

    def last_tick_before(self, t: int) -> tuple[int, int] | None:
        """(day, index in day) of the last tick with time < t, or None before history."""
        d = self.last_day_opened_before(t)
        if d < 0:
            return None
        ticks = self.day(d)
        return d, int(np.searchsorted(ticks.times, t, side="left")) - 1


class SyntheticMarket:
    """Deterministic synthetic markets for a set of symbols (the simulator's ORACLE).

    ``history`` / ``bars_between`` / ``ticks`` are what tests compare the protocol output and
    the aggregator against. Times are aware UTC datetimes or epoch seconds.
    """

    def __init__(self, seed: int = 42, symbols: Iterable[SymbolSpec] | None = None):
        self.seed = int(seed)
        specs = tuple(DEFAULT_SYMBOLS if symbols is None else symbols)
        self._models: dict[str, _SymbolModel] = {}
        for spec in specs:
            if not isinstance(spec, SymbolSpec):
                raise InvalidInputError(f"symbol spec {spec!r} is not a SymbolSpec")
            self._models[spec.symbol] = _SymbolModel(spec, self.seed)

    # ------------------------------------------------------------------ lookup

    @property
    def symbols(self) -> list[str]:
        return list(self._models)

    def find(self, symbol: str) -> SymbolSpec | None:
        """The spec for ``symbol`` (``EXCH:CODE``, case-insensitive, or a bare unique code)."""
        model = self._find_model(symbol)
        return None if model is None else model.spec

    def _find_model(self, symbol: str) -> _SymbolModel | None:
        if not isinstance(symbol, str):
            return None
        text = symbol.strip().upper()
        if ":" in text:
            return self._models.get(text)
        matches = [m for m in self._models.values() if m.spec.code == text]
        return matches[0] if len(matches) == 1 else None

    def model(self, symbol: str) -> _SymbolModel:
        model = self._find_model(symbol)
        if model is None:
            raise InvalidSymbolError(f"unknown simulator symbol {symbol!r}: expected one of {', '.join(self._models)}")
        return model

    def spec(self, symbol: str) -> SymbolSpec:
        return self.model(symbol).spec

    def session(self, symbol: str) -> Session:
        return self.model(symbol).session

    # ------------------------------------------------------------------ oracle API

    def history(
        self, symbol: str, interval: Interval | str, end: datetime | float, count: int = 5000
    ) -> list[Bar]:
        """The latest ``count`` bars holding ticks strictly before ``end`` (the last one may be
        in progress, like TradingView's), oldest first."""
        interval = Interval.parse(interval)
        model = self.model(symbol)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise InvalidInputError(f"bar count {count!r} must be an int >= 0")
        return self._to_bars(model, interval, model.bars(interval, _epoch(end, "end"), count=count))

    def bars_between(
        self, symbol: str, interval: Interval | str, start: datetime | float, end: datetime | float
    ) -> list[Bar]:
        """Bars whose start is in [start, end), built from the ticks before ``end``."""
        interval = Interval.parse(interval)
        model = self.model(symbol)
        arrays = model.bars(interval, _epoch(end, "end"), start=_epoch(start, "start"))
        return self._to_bars(model, interval, arrays)

    def bar_arrays(
        self, symbol: str, interval: Interval | str, end: datetime | float,
        count: int | None = None, start: datetime | float | None = None,
    ) -> BarArrays:
        """Like :meth:`history` but as integer-unit arrays (see :meth:`prices`)."""
        model = self.model(symbol)
        return model.bars(
            Interval.parse(interval), _epoch(end, "end"), count=count,
            start=None if start is None else _epoch(start, "start"),
        )

    def ticks(self, symbol: str, start: datetime | float, end: datetime | float) -> list[Tick]:
        """Every tick with start <= time < end, as the market core's Tick records (volume is
        per tick, cumulative_volume the session total so far; None for no-volume symbols)."""
        model = self.model(symbol)
        arrays = model.tick_arrays(_epoch(start, "start"), _epoch(end, "end"))
        spec = model.spec
        ps, vu = spec.pricescale, spec.volume_unit
        out = []
        for t, u, v, cv, s in zip(
            arrays.times.tolist(), arrays.units.tolist(), arrays.vol.tolist(),
            arrays.cumvol.tolist(), arrays.spread.tolist(),
        ):
            out.append(Tick(
                spec.symbol, from_epoch(t), u / ps,
                volume=v * vu if spec.has_volume else None,
                bid=(u - s) / ps, ask=(u + s) / ps,
                cumulative_volume=cv * vu if spec.has_volume else None,
            ))
        return out

    def tick_arrays(self, symbol: str, start: datetime | float, end: datetime | float) -> TickArrays:
        return self.model(symbol).tick_arrays(_epoch(start, "start"), _epoch(end, "end"))

    def trading_days(self, symbol: str, start: datetime | float, end: datetime | float) -> list[tuple[datetime, datetime]]:
        """(open, close) of every trading day whose open is in [start, end)."""
        model = self.model(symbol)
        s, e = _epoch(start, "start"), _epoch(end, "end")
        model.ensure_days(e)
        lo = int(np.searchsorted(model.opens, s, side="left"))
        hi = int(np.searchsorted(model.opens, e, side="left"))
        return [(from_epoch(int(o)), from_epoch(int(c))) for o, c in zip(model.opens[lo:hi], model.closes[lo:hi])]

    def history_start(self, symbol: str) -> datetime:
        """Open of the symbol's first trading day (no data exists before it)."""
        model = self.model(symbol)
        model.ensure_days(model.history_start)
        return from_epoch(int(model.opens[0]))

    def warm_up(self, symbol: str, until: datetime | float) -> None:
        """Precompute the daily summaries and 15-minute blocks of every complete trading day
        before ``until`` (what 15m..1M history needs), without holding the symbol for long."""
        model = self.model(symbol)
        model._ensure_summary(max(0, model.last_day_opened_before(_epoch(until, "until"))))

    # ------------------------------------------------------------------ conversions

    @staticmethod
    def prices(spec: SymbolSpec, units: np.ndarray) -> list[float]:
        return (units / spec.pricescale).tolist()

    @staticmethod
    def volumes(spec: SymbolSpec, units: np.ndarray) -> list[float]:
        return (units * spec.volume_unit).astype(np.float64).tolist()

    def _to_bars(self, model: _SymbolModel, interval: Interval, arrays: BarArrays) -> list[Bar]:
        spec = model.spec
        ps = spec.pricescale
        o = (arrays.open / ps).tolist()
        h = (arrays.high / ps).tolist()
        lo = (arrays.low / ps).tolist()
        c = (arrays.close / ps).tolist()
        v = self.volumes(spec, arrays.volume) if spec.has_volume else [None] * len(arrays)
        return [
            Bar(spec.symbol, interval, from_epoch(t), o[i], h[i], lo[i], c[i], v[i])
            for i, t in enumerate(arrays.times.tolist())
        ]
