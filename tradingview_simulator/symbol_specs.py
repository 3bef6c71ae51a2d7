"""The synthetic instruments: TradingView metadata, path parameters and exchange calendar.

A spec's calendar fields are what ``symbol_resolved`` tells clients; the simulated market derives
its trading days from exactly those fields (:func:`market_calendar`), so what a client is told is
what the history shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from pocketquant_pipelines.errors import InvalidInputError, InvalidSymbolError
from pocketquant_pipelines.market.calendar import (
    TradingCalendar,
    calendar_from_symbol_info,
    parse_corrections,
    parse_holidays,
)
from pocketquant_pipelines.market.symbols import Symbol
from tradingview_simulator.calendars import NYSE_CORRECTIONS, NYSE_HOLIDAYS, NYSE_UNLISTED_CLOSURES

__all__ = ["DEFAULT_SYMBOLS", "SymbolSpec", "calendar_fields", "market_calendar"]


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


def market_calendar(spec: SymbolSpec) -> TradingCalendar:
    told = calendar_from_symbol_info(calendar_fields(spec))
    unlisted = {d.toordinal() for d in parse_holidays(spec.unlisted_closures)}
    return TradingCalendar(told.closed | unlisted, told.corrected) if unlisted else told

