"""The calendar reaches the registry through the sync, and the gap check uses it: holidays,
early closes and the closures only the daily history shows are no gaps."""

import dataclasses
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd

from pocketquant_pipelines.defs.checks import evaluate_all, evaluate_gaps
from pocketquant_pipelines.market.calendar import build_calendar, parse_corrections, parse_holidays
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.sessions import Session, bar_starts_between
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.storage.symbol_session import session_of, session_of_symbol
from pocketquant_pipelines.sync import record_metadata, sync_history
from pocketquant_pipelines.tradingview.client import TradingViewClient
from pocketquant_pipelines.tradingview.history import metadata_from
from tradingview_simulator import DEFAULT_SYMBOLS
from tradingview_simulator.calendars import NYSE_CORRECTIONS, NYSE_HOLIDAYS
from tradingview_simulator.server import run_simulator_in_thread

AAPL, BTC = "NASDAQ:AAPL", "BINANCE:BTCUSDT"
SIM_NOW = datetime(2019, 1, 15, 18, 0, tzinfo=UTC)  # in the past: simulated time never passes now


def frame_at(times) -> pd.DataFrame:
    n = len(times)
    return pd.DataFrame({"open": np.full(n, 10.0), "high": np.full(n, 11.0), "low": np.full(n, 9.0),
                         "close": np.full(n, 10.0), "volume": np.full(n, 1.0)},
                        index=pd.DatetimeIndex(times, name="time").tz_convert("UTC"))


def test_a_daily_sync_records_the_calendar_and_the_closures_its_history_shows(settings, store):
    # AAPL from November 2018: TradingView's list lacks the closure of 2018-12-05; the bars know.
    aapl = dataclasses.replace(next(s for s in DEFAULT_SYMBOLS if s.symbol == AAPL), history_start=date(2018, 11, 1))
    btc = next(s for s in DEFAULT_SYMBOLS if s.symbol == BTC)
    with run_simulator_in_thread(seed=5, sim_start=SIM_NOW, symbols=[aapl, btc], resolve_delay_s=0.0) as sim:
        cfg = settings.model_copy(update={"tradingview_ws_url": sim.url})
        for symbol in (AAPL, BTC):
            store.add_symbol(SymbolInfo(symbol))

        def sync(symbol, interval, **kw):
            return sync_history(store, TradingViewClient.from_settings(cfg), symbol, interval,
                                first_bars=1000, overlap_bars=2, now=sim.sim_now(), **kw)

        before = datetime.now(UTC)
        daily = sync(AAPL, "1d")
        assert daily.depth_reached and daily.first_bar_time == datetime(2018, 11, 1, 13, 30, tzinfo=UTC)
        calendar = store.get_symbol(AAPL).calendar
        assert calendar["holidays"] == sorted(NYSE_HOLIDAYS) and calendar["corrections"] == NYSE_CORRECTIONS
        assert before <= datetime.fromisoformat(calendar["resolved_at"]) <= datetime.now(UTC)
        assert calendar["history"] == {"first": "20181101", "last": "20190115",
                                       "closed": ["20181122", "20181205", "20181225", "20190101"], "open": []}
        session, known = session_of(store.get_symbol(AAPL))
        assert known and date(2018, 12, 5).toordinal() in session.calendar.closed

        hourly = sync(AAPL, "1h")
        assert hourly.depth_reached and store.get_symbol(AAPL).calendar["history"] == calendar["history"]
        for interval in ("1d", "1h"):
            [gaps] = evaluate_all(store, AAPL, Interval.parse(interval), names=["no_gaps"])
            assert gaps.passed, gaps.description
            assert gaps.metadata["calendar_closed_days"] == len(NYSE_HOLIDAYS) + 2  # + 20181205, 20250109
            assert "with its calendar" in gaps.description

        # Without the history part, TradingView's list alone misses the one-off closure.
        listed_only = {k: v for k, v in calendar.items() if k != "history"}
        store.update_symbol(AAPL, calendar=listed_only)
        [daily_gaps] = evaluate_all(store, AAPL, Interval.D1, names=["no_gaps"])
        [hourly_gaps] = evaluate_all(store, AAPL, Interval.H1, names=["no_gaps"])
        assert daily_gaps.metadata["missing_bars"] == 1 and hourly_gaps.metadata["missing_bars"] == 7
        assert daily_gaps.metadata["missing_ranges"].data[0]["from"] == "2018-12-05T14:30:00+00:00"

        crypto = sync(BTC, "1d", bars=10)
        assert crypto.fetched == 10
        btc_calendar = store.get_symbol(BTC).calendar
        assert (btc_calendar["holidays"], btc_calendar["corrections"]) == ([], "")
        assert btc_calendar["history"]["closed"] == [] and btc_calendar["history"]["open"] == []
        assert session_of_symbol(store, BTC).is_24x7  # nothing closed: still the arithmetic path


def test_an_unusable_calendar_from_the_server_keeps_the_previous_one(store):
    store.add_symbol(SymbolInfo("NASDAQ:X", calendar={"holidays": ["20250901"], "corrections": "",
                                                      "resolved_at": "2025-08-01T00:00:00+00:00"}))
    meta = metadata_from("NASDAQ:X", {"session": "0930-1600", "timezone": "America/New_York",
                                      "session_holidays": "2025-12-25", "subsession_id": "regular"})
    record_metadata(store, "NASDAQ:X", meta)
    info = store.get_symbol("NASDAQ:X")
    assert info.session == "0930-1600" and info.calendar["holidays"] == ["20250901"]


def test_gap_check_holidays_and_early_closes_are_no_gaps():
    nyse = build_calendar(parse_holidays("20251127"), parse_corrections("0930-1300:20251128"))
    with_calendar = Session.parse("0930-1600", "America/New_York", nyse)
    plain = Session.parse("0930-1600", "America/New_York")
    start, end = datetime(2025, 11, 24, tzinfo=UTC), datetime(2025, 12, 2, tzinfo=UTC)
    for interval in ("1h", "1d", "5m"):
        stored = bar_starts_between(start, end, Interval.parse(interval), with_calendar)  # what TradingView has
        assert evaluate_gaps(frame_at(stored), interval, with_calendar).passed
        without = evaluate_gaps(frame_at(stored), interval, plain)
        assert not without.passed  # the old false positives: Thanksgiving and Friday afternoon
    hourly = evaluate_gaps(frame_at(bar_starts_between(start, end, Interval.H1, with_calendar)), "1h", plain)
    assert hourly.metadata["missing_bars"] == 7 + 3  # Thursday's 7 hours, Friday's 13:30..15:30
