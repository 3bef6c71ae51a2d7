"""Quote (``qsd``) values for one subscribed symbol: a full snapshot, then partial updates.

TradingView sends one full snapshot when a symbol is added and afterwards only the fields that
changed (protocol notes §4.2): ``lp_time`` often in a frame of its own, ``bid``/``ask`` in
another, ``volume`` the cumulative volume of the current daily session (§4.4). This module
turns the synthetic tick path into exactly that, one tick at a time, so a client that merges
fields and derives per-tick volume from cumulative differences recovers every tick.

Ordering matters for such a client: when ``lp_time`` travels alone it comes BEFORE the frame
with the new ``lp``, so the tick built from that ``lp`` carries its own time.
"""

from __future__ import annotations

from typing import Any

from tradingview_simulator.symbol_model import SymbolModel
from tradingview_simulator.symbol_specs import SymbolSpec

NO_VALUE = 1e100  # TradingView's "no value" sentinel (indices' volume)
_SENTINEL_EVERY = 25  # an index's updates carry "volume": 1e+100 now and then
_MAX_TICKS_PER_ADVANCE = 2000  # at very high speed the feed catches up over several pumps


def static_fields(spec: SymbolSpec) -> dict[str, Any]:
    """Metadata fields of a full snapshot (shapes copied from captured qsd frames)."""
    original = f"{spec.exchange}_DLY:{spec.code}" if spec.delay_s else spec.symbol
    fields: dict[str, Any] = {
        "pro_name": spec.symbol,
        "original_name": original,
        "short_name": spec.code,
        "description": spec.description,
        "exchange": spec.exchange_name or spec.exchange,
        "listed_exchange": spec.exchange,
        "type": spec.type,
        "typespecs": list(spec.typespecs),
        "currency_code": spec.currency,
        "currency_id": spec.currency,
        "pricescale": spec.pricescale,
        "minmov": spec.minmov,
        "minmove2": 0,
        "fractional": False,
        "is_tradable": spec.type != "index",
        "timezone": spec.timezone,
        "update_mode": spec.update_mode,
        "language": spec.language,
        "symbol_status": "realtime",
        "trade_loaded": True,
        "format": "price",
        "visible-plots-set": "ohlcv" if spec.has_volume else "ohlc",
    }
    if spec.local_description is not None:
        fields["local_description"] = spec.local_description
    else:
        fields["local_description"] = spec.description
    return fields


class QuoteFeed:
    """What one subscriber has been told about one symbol, and what to tell it next."""

    def __init__(self, model: SymbolModel):
        self.model = model
        self.spec = model.spec
        self.values: dict[str, Any] = {}
        self.cursor: int | None = None  # ticks with time < cursor have been delivered
        self.day: int | None = None
        self.ticks_sent = 0

    # ------------------------------------------------------------------ helpers

    def _price(self, units: int) -> float:
        return units / self.spec.pricescale

    def _volume(self, units: int) -> float | int:
        value = units * self.spec.volume_unit
        return int(value) if self.spec.volume_unit >= 1 else value

    def _change(self, units: int, prev_close: int) -> tuple[float, float]:
        ch = (units - prev_close) / self.spec.pricescale  # integer units: exact, shortest repr
        chp = round((units - prev_close) / prev_close * 100.0, 2) if prev_close else 0.0
        return ch, chp

    def _prev_close(self, d: int) -> int:
        if d <= 0:
            return int(self.model.day(0).units[0])
        return int(self.model.day(d - 1).units[-1])

    def _book(self, units: int, spread: int, vol: int) -> dict[str, Any]:
        size = int(100 * (1 + (vol + spread) % 7)) if self.spec.has_volume else 0
        book = {"bid": self._price(units - spread), "ask": self._price(units + spread)}
        if self.spec.has_volume:
            book["bid_size"] = size
            book["ask_size"] = int(100 * (1 + (vol * 3 + spread) % 5))
        return book

    # ------------------------------------------------------------------ snapshot

    def snapshot(self, visible: int) -> dict[str, Any]:
        """Every field as of ``visible`` (ticks strictly before it), and remember them."""
        v = static_fields(self.spec)
        located = self.model.last_tick_before(visible)
        if located is None:
            v["current_session"] = "out_of_session"
            self.cursor = visible
            self.values = dict(v)
            return v
        d, i = located
        ticks = self.model.day(d)
        u = int(ticks.units[i])
        prev_close = self._prev_close(d)
        ch, chp = self._change(u, prev_close)
        v.update({
            "lp": self._price(u),
            "lp_time": int(ticks.times[i]),
            "ch": ch,
            "chp": chp,
            "prev_close_price": self._price(prev_close),
            "open_price": self._price(int(ticks.units[0])),
            "high_price": self._price(int(ticks.units[: i + 1].max())),
            "low_price": self._price(int(ticks.units[: i + 1].min())),
            "open_time": int(self.model.opens[d]),
            "current_session": "market" if visible < int(self.model.closes[d]) else "out_of_session",
            **self._book(u, int(ticks.spread[i]), int(ticks.vol[i])),
        })
        v["volume"] = self._volume(int(ticks.cumvol[i])) if self.spec.has_volume else NO_VALUE
        self.values = dict(v)
        self.day = d
        self.cursor = int(ticks.times[i]) + 1
        return v

    # ------------------------------------------------------------------ updates

    def _diff(self, fields: dict[str, Any]) -> dict[str, Any]:
        out = {k: val for k, val in fields.items() if self.values.get(k, _MISSING) != val}
        self.values.update(out)
        return out

    def advance(self, visible: int) -> list[tuple[int, dict[str, Any]]]:
        """Partial updates for the ticks in [cursor, visible), as (time, v) pairs in order."""
        if self.cursor is None:
            raise RuntimeError("advance() before snapshot()")
        out: list[tuple[int, dict[str, Any]]] = []
        if visible <= self.cursor:
            return out
        arrays = self.model.tick_arrays(self.cursor, visible)
        n = min(len(arrays), _MAX_TICKS_PER_ADVANCE)
        times = arrays.times[:n].tolist()
        units = arrays.units[:n].tolist()
        vols = arrays.vol[:n].tolist()
        cumvols = arrays.cumvol[:n].tolist()
        spreads = arrays.spread[:n].tolist()
        days = arrays.day[:n].tolist()
        for k in range(n):
            t, u, d = times[k], units[k], days[k]
            if self.day is not None and d != self.day:
                self._close_session(out, self.day, t)
            if d != self.day:
                out.extend(self._open_session(d, t))
            self.day = d
            out.extend(self._tick(t, u, vols[k], cumvols[k], spreads[k], d))
        self.ticks_sent += n
        if n < len(arrays):
            self.cursor = times[-1] + 1
        else:
            self.cursor = visible
            if self.day is not None:
                self._close_session(out, self.day, visible)
        return out

    def _close_session(self, out: list, d: int, until: int) -> None:
        close = int(self.model.closes[d])
        if close <= until and self.values.get("current_session") == "market":
            changed = self._diff({"current_session": "out_of_session"})
            if changed:
                out.append((close, changed))

    def _open_session(self, d: int, t: int) -> list[tuple[int, dict[str, Any]]]:
        ticks = self.model.day(d)
        prev_close = self._prev_close(d)
        first = int(ticks.units[0])
        changed = self._diff({
            "current_session": "market",
            "open_time": int(self.model.opens[d]),
            "prev_close_price": self._price(prev_close),
            "open_price": self._price(first),
            "high_price": self._price(first),
            "low_price": self._price(first),
        })
        return [(t, changed)] if changed else []

    def _tick(self, t: int, u: int, vol: int, cumvol: int, spread: int, d: int) -> list[tuple[int, dict[str, Any]]]:
        spec = self.spec
        prev_close = self._prev_close(d)
        ch, chp = self._change(u, prev_close)
        frames: list[tuple[int, dict[str, Any]]] = []
        # Deterministic variety: a third of the ticks send lp_time in its own frame first.
        separate_time = (t // spec.tick_seconds) % 3 == 0
        if separate_time:
            changed = self._diff({"lp_time": t})
            if changed:
                frames.append((t, changed))
        main: dict[str, Any] = {"lp": self._price(u)}
        if not separate_time:
            main["lp_time"] = t
        main["ch"] = ch
        main["chp"] = chp
        if spec.has_volume:
            main["volume"] = self._volume(cumvol)
        high = self.values.get("high_price")
        low = self.values.get("low_price")
        price = self._price(u)
        if high is None or price > high:
            main["high_price"] = price
        if low is None or price < low:
            main["low_price"] = price
        changed = self._diff(main)
        if not spec.has_volume and (t // spec.tick_seconds) % _SENTINEL_EVERY == 0:
            changed["volume"] = NO_VALUE  # TradingView's "no value", sent again now and then
        if changed:
            frames.append((t, changed))
        book = self._diff(self._book(u, spread, vol))
        if book:
            frames.append((t, book))
        return frames


class _Missing:
    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "<missing>"


_MISSING = _Missing()


def filter_fields(v: dict[str, Any], fields: set[str] | None) -> dict[str, Any]:
    """Keep only the fields the quote session asked for (quote_set_fields); all if None."""
    if fields is None:
        return v
    return {k: val for k, val in v.items() if k in fields}

