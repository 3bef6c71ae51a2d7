"""Deterministic synthetic markets: one tick path per symbol feeds its history AND its quotes.

A symbol's ticks are a pure function of (seed, symbol, trading day) (:mod:`tick_path`).
Historical bars are aggregated FROM those ticks (:mod:`symbol_model`), and the live quote feed
replays the same ticks as simulated time passes, so a bar built from streamed ticks by the
market core's aggregator equals the simulator's historical bar for the same period, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

import numpy as np

from pocketquant_pipelines.errors import InvalidInputError, InvalidSymbolError
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.sessions import Session
from pocketquant_pipelines.market.ticks import Tick
from pocketquant_pipelines.market.timeutil import ensure_utc, from_epoch
from tradingview_simulator.symbol_model import SymbolModel
from tradingview_simulator.symbol_specs import DEFAULT_SYMBOLS, SymbolSpec
from tradingview_simulator.tick_path import TickArrays

__all__ = ["SyntheticMarket"]


def epoch_seconds(value: datetime | float | int, what: str) -> int:
    """A time argument as whole epoch seconds (ticks sit on whole seconds: "< 12.5" is "< 13")."""
    if isinstance(value, datetime):
        value = ensure_utc(value, what).timestamp()
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidInputError(f"{what} {value!r} is not a datetime or epoch seconds")
    return math.ceil(value)


class SyntheticMarket:
    """Deterministic synthetic markets for a set of symbols (the simulator's ORACLE).

    ``history`` / ``bars_between`` / ``ticks`` are what tests compare the protocol output and
    the aggregator against. Times are aware UTC datetimes or epoch seconds.
    """

    def __init__(self, seed: int = 42, symbols: Iterable[SymbolSpec] | None = None):
        self.seed = int(seed)
        specs = tuple(DEFAULT_SYMBOLS if symbols is None else symbols)
        self._models: dict[str, SymbolModel] = {}
        for spec in specs:
            if not isinstance(spec, SymbolSpec):
                raise InvalidInputError(f"symbol spec {spec!r} is not a SymbolSpec")
            self._models[spec.symbol] = SymbolModel(spec, self.seed)

    # ------------------------------------------------------------------ lookup

    @property
    def symbols(self) -> list[str]:
        return list(self._models)

    def find(self, symbol: str) -> SymbolSpec | None:
        """The spec for ``symbol`` (``EXCH:CODE``, case-insensitive, or a bare unique code)."""
        model = self.find_model(symbol)
        return None if model is None else model.spec

    def find_model(self, symbol: str) -> SymbolModel | None:
        if not isinstance(symbol, str):
            return None
        text = symbol.strip().upper()
        if ":" in text:
            return self._models.get(text)
        matches = [m for m in self._models.values() if m.spec.code == text]
        return matches[0] if len(matches) == 1 else None

    def model(self, symbol: str) -> SymbolModel:
        model = self.find_model(symbol)
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
        return model.bars(interval, epoch_seconds(end, "end"), count=count).to_bars()

    def bars_between(
        self, symbol: str, interval: Interval | str, start: datetime | float, end: datetime | float
    ) -> list[Bar]:
        """Bars whose start is in [start, end), built from the ticks before ``end``."""
        interval = Interval.parse(interval)
        model = self.model(symbol)
        return model.bars(interval, epoch_seconds(end, "end"), start=epoch_seconds(start, "start")).to_bars()

    def ticks(self, symbol: str, start: datetime | float, end: datetime | float) -> list[Tick]:
        """Every tick with start <= time < end, as the market core's Tick records (volume is
        per tick, cumulative_volume the session total so far; None for no-volume symbols)."""
        model = self.model(symbol)
        arrays = model.tick_arrays(epoch_seconds(start, "start"), epoch_seconds(end, "end"))
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
        return self.model(symbol).tick_arrays(epoch_seconds(start, "start"), epoch_seconds(end, "end"))

    def trading_days(self, symbol: str, start: datetime | float, end: datetime | float) -> list[tuple[datetime, datetime]]:
        """(open, close) of every trading day whose open is in [start, end)."""
        model = self.model(symbol)
        s, e = epoch_seconds(start, "start"), epoch_seconds(end, "end")
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
        model.ensure_summary(max(0, model.last_day_opened_before(epoch_seconds(until, "until"))))
