"""The exchange calendar in the streamer: a calendar that closes or corrects other days
rebuilds the aggregator, one that says the same does not; and end to end, streaming and then
syncing across Labor Day 2025 (a holiday-Monday week, and a month whose first weekday is a
holiday) leaves exactly one bar per key at all 13 intervals, the stream equal to history."""

import asyncio
import math
import os
from dataclasses import replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from pocketquant_pipelines.defs.checks import evaluate_all
from pocketquant_pipelines.market.calendar import calendar_from_symbol_info
from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval
from pocketquant_pipelines.settings import load_settings
from pocketquant_pipelines.storage.bars import Source
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.storage.factory import open_bar_store, open_live_cache
from pocketquant_pipelines.sync import sync_history_async
from pocketquant_pipelines.tradingview.client import TradingViewClient
from tradingview_simulator.calendars import NYSE_HOLIDAYS
from tradingview_simulator.market import SyntheticMarket
from tradingview_simulator.payloads import symbol_info
from tradingview_simulator.server import run_simulator_in_thread
from streamer.service import StreamerService
from streamer.symbols import SymbolState
from streamer_helpers import as_synced, compare_with_history, stream_until

AAPL, SPX = "NASDAQ:AAPL", "SP:SPX"
NY = ZoneInfo("America/New_York")
LABOR_DAY = date(2025, 9, 1)


def with_calendar(info: SymbolInfo, **changes) -> SymbolInfo:
    return replace(info, calendar={**info.calendar, **changes})


def test_a_calendar_change_rebuilds_only_when_it_changes_a_day():
    market = SyntheticMarket(seed=3)
    info = as_synced(market, AAPL)
    state = SymbolState.create(info)
    assert state.session_known and date(2025, 9, 1).toordinal() in state.session.calendar.closed
    # read again later: same lists, a newer resolved_at -> the same Session, no rebuild
    assert not state.session_changed(with_calendar(info, resolved_at="2026-01-01T00:00:00+00:00"))
    # history that only confirms the list (Labor Day closed, the rest traded) changes nothing
    confirming = {"first": "20250825", "last": "20250905", "closed": ["20250901"], "open": []}
    assert not state.session_changed(with_calendar(info, history=confirming))
    # a closure the list lacks, a new holiday, an early close, or no calendar at all: rebuild
    closing = {"first": "20250825", "last": "20250905", "closed": ["20250901", "20250904"], "open": []}
    assert state.session_changed(with_calendar(info, history=closing))
    assert state.session_changed(with_calendar(info, holidays=[*info.calendar["holidays"], "20250905"]))
    assert state.session_changed(with_calendar(info, corrections="0930-1300:20250829"))
    assert state.session_changed(SymbolInfo(AAPL, timezone=info.timezone, session=info.session, stream=True))


def test_the_service_rebuilds_an_aggregator_when_the_calendar_changes(settings):
    market = SyntheticMarket(seed=3)
    store, cache = open_bar_store(settings), open_live_cache(settings)
    try:
        store.add_symbol(SymbolInfo(AAPL, timezone="America/New_York", session="0930-1600", stream=True))
        service = StreamerService(settings, store=store, cache=cache, client=None, health_port=0)

        async def go():
            await service.apply_registry(store.list_symbols(stream_only=True))
            first = service.symbols[AAPL]
            store.update_symbol(AAPL, calendar=as_synced(market, AAPL).calendar)  # a sync recorded it
            await service.apply_registry(store.list_symbols(stream_only=True))
            second = service.symbols[AAPL]
            store.update_symbol(AAPL, calendar={**as_synced(market, AAPL).calendar,
                                                "resolved_at": "2026-02-01T00:00:00+00:00"})
            await service.apply_registry(store.list_symbols(stream_only=True))
            return first, second, service.symbols[AAPL]

        first, second, third = asyncio.run(go())
        assert second is not first and not first.session.calendar and second.session.calendar
        assert third is second  # nothing changed for any day
    finally:
        store.close()
        cache.close()


# --- end to end -------------------------------------------------------------------------------

SIM_START = datetime(2025, 8, 28, 19, 0, tzinfo=UTC)  # Thursday 15:00 New York, both trading
SIM_END = datetime(2025, 9, 8, 13, 0, tzinfo=UTC)     # Monday before the open: the Labor Day week closed
# ~11 simulated days in ~77 s; the weekend after Labor Day week lasts ~19 s of wall time, so
# the symbols' clocks (the last tick, extrapolated at real-time speed) pass Friday's close
SPEED = 12_000


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    path = tmp_path / "data"
    path.mkdir()
    for var in ("MONGODB_URL", "REDIS_URL", "TRADINGVIEW_WS_URL", "TRADINGVIEW_AUTH_TOKEN",
                "TRADINGVIEW_USERNAME", "TRADINGVIEW_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("POCKETQUANT_DATA_DIR", str(path))
    monkeypatch.chdir(path)
    return path


def ny_date(t: datetime) -> date:
    return t.astimezone(NY).date()


@pytest.mark.e2e
def test_stream_then_sync_across_labor_day_one_bar_per_key_and_stream_equals_history(data_dir):
    settings = load_settings(dict(os.environ))
    # The simulated clock starts in the past and stays there: ticks are never dated after now.
    with run_simulator_in_thread(seed=13, speed=SPEED, sim_start=SIM_START, resolve_delay_s=0.0) as server:
        market = server.market
        store, cache = open_bar_store(settings), open_live_cache(settings)
        store.add_symbol(SymbolInfo(AAPL, stream=True))  # never synced: the streamer resolves it
        store.add_symbol(as_synced(market, SPX))         # as a first sync left it
        client = TradingViewClient(url=server.url, backoff_initial_s=0.05, backoff_max_s=0.5)
        service = StreamerService(settings, store=store, cache=cache, client=client, health_port=0,
                                  registry_poll_s=0.2)
        asyncio.run(stream_until(service, server, SIM_END))
        server.clock.set_speed(1.0)  # hold the market still while the history is fetched
        assert service.metrics.store_errors.value == 0 and service.store_writer.depth == 0

        # what symbol_resolved said reached the registry and the aggregator
        assert store.get_symbol(AAPL).calendar["holidays"] == sorted(NYSE_HOLIDAYS)
        for symbol in (AAPL, SPX):
            state = service.symbols[symbol]
            assert state.session_known and LABOR_DAY.toordinal() in state.session.calendar.closed
            assert state.session.calendar == calendar_from_symbol_info(symbol_info(market.spec(symbol)))
            counts = compare_with_history(store, market, symbol, state.last_t, feed_start_epoch=state.anchor)
            assert all(counts[i.value] > 0 for i in ALL_INTERVALS if i is not Interval.MN1), (symbol, counts)
            assert counts["1w"] == 1  # the Labor Day week, watched whole, equals history
            for interval in ALL_INTERVALS:
                streamed = store.read_stream_bars(symbol, interval)
                keys = [t.to_pydatetime() for t in streamed.index]
                assert keys and all(ny_date(t) != LABOR_DAY for t in keys), (symbol, interval)
                # complete or partial, every streamed key is one history has (none stream-only)
                history = {b.time for b in market.bars_between(symbol, interval, keys[0], SIM_END)}
                assert set(keys) <= history, (symbol, interval, sorted(set(keys) - history)[:3])
            week = store.read_stream_bars(symbol, "1w")
            assert datetime(2025, 9, 2, 13, 30, tzinfo=UTC) in week.index
            month = store.read_stream_bars(symbol, "1M")
            assert list(month.index) == [datetime(2025, 8, 1, 13, 30, tzinfo=UTC), datetime(2025, 9, 2, 13, 30, tzinfo=UTC)]
            assert month["partial"].all()  # August was joined late, September is in progress

        # --- then a historical sync of every interval over the same days --------------------
        async def sync_all():
            sync_client = TradingViewClient(url=server.url)
            try:
                for symbol in (AAPL, SPX):
                    for interval in ALL_INTERVALS:
                        outcome = await sync_history_async(store, sync_client, symbol, interval, 5000,
                                                           first_bars=5000, overlap_bars=2, now=server.sim_now())
                        assert outcome.fetched > 0
            finally:
                await sync_client.close()

        asyncio.run(sync_all())
        now = server.sim_now()
        for symbol in (AAPL, SPX):
            for interval in ALL_INTERVALS:
                frame = store.read_bars(symbol, interval)
                assert frame.index.is_unique
                keys = {t.to_pydatetime() for t in frame.index}
                history = {b.time: b for b in market.bars_between(symbol, interval, min(keys), now)}
                # exactly the keys TradingView (the simulator) has: one bar per period
                assert keys == set(history), (symbol, interval, sorted(keys ^ set(history))[:3])
                assert not any(ny_date(t) == LABOR_DAY for t in keys)
                # every complete streamed bar equals the stored history bar of its key
                streamed = store.read_stream_bars(symbol, interval)
                complete = streamed[~streamed["partial"].astype(bool)]
                canonical = frame.loc[complete.index]
                assert (canonical["source"] == Source.HISTORY.value).all()
                for col in ("open", "high", "low", "close"):
                    assert complete[col].tolist() == canonical[col].tolist(), (symbol, interval, col)
                assert [None if math.isnan(v) else v for v in complete["volume"]] == \
                       [None if math.isnan(v) else v for v in canonical["volume"]]
                if interval is not Interval.W1 and interval is not Interval.MN1:
                    [gaps] = evaluate_all(store, symbol, interval, names=["no_gaps"], now=now)
                    assert gaps.passed, (symbol, interval, gaps.description)
        assert store.get_symbol(AAPL).calendar["history"]["closed"][-1] == "20250901"
        assert list(store.read_bars(AAPL, "1w").index[-2:]) == [datetime(2025, 8, 25, 13, 30, tzinfo=UTC),
                                                                datetime(2025, 9, 2, 13, 30, tzinfo=UTC)]
        store.close()
        cache.close()
