"""Live quotes over a quote session (protocol notes §4), turned into ticks.

Tick rules (§4.4), per subscribed symbol string (the server's ``n`` echoes it exactly):

* every ``qsd`` is merged field by field into the symbol's state (partial updates carry only
  what changed); frames of one WebSocket message are merged before a tick is built, so an
  ``lp_time`` packed beside its ``lp`` dates the tick correctly — until a frame repeats a tick
  field (``lp``, ``lp_time``, ``volume``) already merged in that message: that is the next
  tick, so the pending one is emitted first (the server packs bursts of updates);
* a tick is emitted when ``lp`` or the cumulative ``volume`` changed since the last emitted
  tick — never for a repeated snapshot, which is what a resubscription after a reconnect sends;
* tick time = ``lp_time`` when the server sent one, else the receive time;
* per-tick volume = the increase of the cumulative session ``volume``. The first observation of
  a symbol only sets the baseline (per-tick volume 0: the volume before we subscribed belongs to
  bars the history sync owns). A decrease means the session rolled over: the new cumulative
  value *is* the volume traded since the reset, so it is the tick's volume and the new baseline.
  Symbols without volume (indices: absent or ``1e+100``) get ``volume=None``;
* the baseline and the last emitted values survive reconnects, so no tick is emitted twice and
  the per-tick volumes add up to the server's cumulative volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pocketquant_pipelines.market.ticks import Tick
from pocketquant_pipelines.market.timeutil import utc_datetime
from pocketquant_pipelines.tradingview.codec import SENTINEL_ABS, sentinel_to_none


# Fields a tick is made of: a second value of one of them in a message starts a new tick.
TICK_FIELDS = frozenset({"lp", "lp_time", "volume"})

QUOTE_FIELDS = (
    "lp", "lp_time", "volume", "bid", "ask", "bid_size", "ask_size", "ch", "chp",
    "description", "local_description", "type", "currency_code", "timezone", "update_mode",
    "original_name", "pro_name", "short_name", "exchange", "pricescale", "minmov",
    "current_session", "prev_close_price", "open_price", "high_price", "low_price",
    "rtc", "rtc_time", "rch", "rchp",
)


@dataclass(frozen=True, slots=True)
class QuoteError:
    symbol: str
    reason: str
    at: datetime | None = None


@dataclass
class SymbolQuote:
    """Merged quote state of one subscribed symbol and its tick-building memory."""

    symbol: str
    fields: dict = field(default_factory=dict)
    last_price: float | None = None
    last_volume: float | None = None      # cumulative volume at the last emitted tick
    baseline: float | None = None          # cumulative volume the next delta is measured from
    ticks: int = 0
    resets: int = 0

    def merge(self, values: dict) -> None:
        self.fields.update(values)

    def next_tick(self, received_at: datetime) -> Tick | None:
        """The tick the merged state implies, or None if nothing a tick reports changed."""
        fields = self.fields
        price = fields.get("lp")
        # Numbers are usable when int or float (not bool), finite and not a "no value" sentinel
        # (|x| >= 1e99; NaN fails the comparisons too). A float in range, nearly every value,
        # is decided inline; anything else goes through _usable.
        if (price.__class__ is not float or not -SENTINEL_ABS < price < SENTINEL_ABS) and _usable(price) is None:
            return None
        cumulative = fields.get("volume")
        if cumulative.__class__ is not float or not -SENTINEL_ABS < cumulative < SENTINEL_ABS:
            cumulative = _usable(cumulative)
        if price == self.last_price and cumulative == self.last_volume:
            return None
        if cumulative is None:
            per_tick = None
        elif self.baseline is None:
            per_tick = 0.0
        elif cumulative < self.baseline:
            per_tick = float(cumulative)  # session rolled over: all of it is new
            self.resets += 1
        else:
            per_tick = float(cumulative - self.baseline)
        if cumulative is not None:
            self.baseline = cumulative
        self.last_price = price
        self.last_volume = cumulative
        lp_time = fields.get("lp_time")
        cls = lp_time.__class__
        if (cls is int or cls is float) and 0 < lp_time < 1e11:
            when = utc_datetime(lp_time)
        else:
            when = received_at
        self.ticks += 1
        bid = fields.get("bid")
        if bid.__class__ is not float or not -SENTINEL_ABS < bid < SENTINEL_ABS:
            bid = _number(bid)
        ask = fields.get("ask")
        if ask.__class__ is not float or not -SENTINEL_ABS < ask < SENTINEL_ABS:
            ask = _number(ask)
        # positional: Tick(symbol, time, price, volume, bid, ask, cumulative_volume)
        return Tick(self.symbol, when, float(price), per_tick, bid, ask,
                    None if cumulative is None else float(cumulative))


def _usable(value):
    """``value`` if it is an int or float (not a bool), finite and not a sentinel, else None:
    what ``isinstance`` + :func:`sentinel_to_none` decide, in one place."""
    cls = value.__class__
    if cls is float or cls is int:
        return value if -SENTINEL_ABS < value < SENTINEL_ABS else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return sentinel_to_none(value)
    return None


def _number(value) -> float | None:
    value = _usable(value)
    return None if value is None else float(value)
