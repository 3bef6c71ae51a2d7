"""The service in-process with the real aggregator, the real embedded store and cache, and a
scripted tick source replaying the simulator's own ticks (the oracle's ticks: the simulator's
history is built from the very same ticks, so every complete bar must match exactly)."""

import asyncio
from datetime import UTC, datetime

import pytest

from streamer_helpers import ScriptedClient, as_synced, compare_with_history, replay, synced_fields
from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval
from pocketquant_pipelines.storage.bars import Source
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.storage.factory import open_bar_store, open_live_cache
from tradingview_simulator.market import SyntheticMarket
from streamer.service import StreamerService

BTC, AAPL = "BINANCE:BTCUSDT", "NASDAQ:AAPL"


@pytest.fixture
def market():
    return SyntheticMarket(seed=11)


@pytest.fixture
def store(settings):
    s = open_bar_store(settings)
    yield s
    s.close()


@pytest.fixture
def cache(settings):
    c = open_live_cache(settings)
    yield c
    c.close()


def register(store, market, *symbols):
    for symbol in symbols:
        store.add_symbol(as_synced(market, symbol))


def merged_ticks(market, symbols, start, end):
    ticks = [t for s in symbols for t in market.ticks(s, start, end)]
    ticks.sort(key=lambda t: t.time)
    return ticks


def make_service(settings, store, cache, client, **kw):
    return StreamerService(settings, store=store, cache=cache, client=client, health_port=0, **kw)


def drain(service):
    while service.store_writer.depth:
        assert service.store_writer.write_once()


def test_every_complete_bar_equals_history_across_a_month_end(settings, store, cache, market):
    # AAPL (0930-1600 New York) over all of January into February: every intraday bar, the
    # days, the weeks and the month of January complete. BTC (24x7) over the last ten days of
    # January into February: the week of Jan 26 completes, January is seen only in part.
    aapl_start = datetime(2025, 12, 31, 22, 0, tzinfo=UTC)   # after the Dec 31 close
    btc_start = datetime(2026, 1, 24, 20, 0, tzinfo=UTC)
    end = datetime(2026, 2, 3, 15, 0, tzinfo=UTC)
    register(store, market, BTC, AAPL)
    ticks = replay(market, BTC, btc_start, end) + replay(market, AAPL, aapl_start, end)
    ticks.sort(key=lambda t: t.time)
    service = make_service(settings, store, cache, ScriptedClient())

    async def go():
        await service.apply_registry(store.list_symbols(stream_only=True))
        for i, tick in enumerate(ticks):
            service.on_tick(tick)
            if i % 5000 == 0:
                service.close_due_bars()
        service.close_due_bars()

    asyncio.run(go())
    drain(service)
    last = ticks[-1].time.timestamp()
    btc = compare_with_history(store, market, BTC, last, feed_start_epoch=btc_start.timestamp())
    aapl = compare_with_history(store, market, AAPL, last, feed_start_epoch=aapl_start.timestamp())
    assert btc["1M"] == 0 and btc["1w"] == 1 and btc["1d"] == 9 and btc["1m"] > 12_000
    # NYSE days: January's 22 weekdays less New Year's Day and Martin Luther King Day, + Feb 2;
    # 09:30-16:00 makes 7 one-hour bars a day (the last one 15:30-16:00). Complete weeks: those
    # of Jan 5, Jan 12, Jan 19 (from Tuesday the 20th) and Jan 26.
    assert aapl["1M"] == 1 and aapl["1w"] == 4 and aapl["1d"] == 21 and aapl["1h"] == 21 * 7
    # the in-progress bars agree with history's in-progress bars at the same sim time
    for symbol in (BTC, AAPL):
        current = service.symbols[symbol].aggregator.current_bars()
        for interval in ALL_INTERVALS:
            hist_last = market.history(symbol, interval, end=last + 1, count=1)[-1]
            bar = current[interval]
            if bar.time.timestamp() > service.symbols[symbol].anchor:
                assert bar == hist_last, f"{symbol} {interval}: in-progress {bar} != history {hist_last}"
    # nothing written as history, and every stored row is a stream row
    assert set(store.read_bars(BTC, "1h")["source"]) == {"stream"}


def test_reconnect_gap_bars_are_partial_and_a_resync_heals_them(settings, store, cache, market):
    start, mid1, mid2, end = (datetime(2026, 1, 30, 10, tzinfo=UTC), datetime(2026, 1, 30, 13, 7, 25, tzinfo=UTC),
                              datetime(2026, 1, 30, 13, 21, 5, tzinfo=UTC), datetime(2026, 1, 30, 18, tzinfo=UTC))
    register(store, market, BTC)
    client = ScriptedClient()
    service = make_service(settings, store, cache, client)
    before, after = replay(market, BTC, start, mid1), market.ticks(BTC, mid2, end)

    async def go():
        await service.apply_registry(store.list_symbols(stream_only=True))
        for tick in before:
            service.on_tick(tick)
        client.stream.stats.reconnects += 1  # the socket dropped; ticks mid1..mid2 never arrived
        # after a reconnect the client's first tick carries the volume traded during the gap
        gap_volume = sum(t.volume for t in market.ticks(BTC, mid1, after[0].time))
        first = after[0]
        service.on_tick(type(first)(first.symbol, first.time, first.price, first.volume + gap_volume,
                                    first.bid, first.ask, first.cumulative_volume))
        for tick in after[1:]:
            service.on_tick(tick)
        service.close_due_bars()

    asyncio.run(go())
    drain(service)
    last = after[-1].time.timestamp()
    compare_with_history(store, market, BTC, last)  # every complete bar is still exact
    frame = store.read_bars(BTC, "1m")
    partial_times = set(frame.index[frame["partial"].astype(bool)].to_pydatetime())
    assert datetime(2026, 1, 30, 13, 7, tzinfo=UTC) in partial_times   # cut by the disconnect
    assert datetime(2026, 1, 30, 13, 21, tzinfo=UTC) in partial_times  # took the gap's volume
    assert datetime(2026, 1, 30, 13, 15, tzinfo=UTC) not in frame.index  # never seen at all
    # a historical sync over the period heals it: the store then equals history exactly
    for interval in ALL_INTERVALS:
        streamed = store.read_bars(BTC, interval)
        if not len(streamed):
            continue  # 1d/1w/1M: still in progress, nothing written
        first_streamed = streamed.index[0].to_pydatetime()
        history = market.bars_between(BTC, interval, first_streamed, last + 1)
        store.upsert_bars(history[:-1], source=Source.HISTORY)  # the last one is in progress
        stored = store.read_bars(BTC, interval, start=first_streamed, end=history[-1].time)
        expect = [(b.time, b.open, b.high, b.low, b.close, b.volume) for b in history[:-1]]
        got = [(ts.to_pydatetime(), r.open, r.high, r.low, r.close, r.volume) for ts, r in stored.iterrows()]
        assert got == expect, interval
        assert not stored["partial"].any()


def test_registry_changes_apply_while_running_and_retired_bars_are_flushed_partial(settings, store, cache, market):
    register(store, market, BTC)
    client = ScriptedClient()
    service = make_service(settings, store, cache, client, registry_poll_s=0.02)

    async def go():
        task = asyncio.create_task(service.run())
        await asyncio.wait_for(service.started.wait(), 5)
        for _ in range(200):
            if service.symbols:
                break
            await asyncio.sleep(0.01)
        assert set(service.symbols) == {BTC} and client.stream.subscribed == [BTC]
        client.stream.feed(replay(market, BTC, datetime(2026, 1, 30, 10, tzinfo=UTC),
                                  datetime(2026, 1, 30, 10, 3, 30, tzinfo=UTC)))
        store.add_symbol(as_synced(market, AAPL))
        store.update_symbol(BTC, stream=False)
        for _ in range(300):
            if set(service.symbols) == {AAPL}:
                break
            await asyncio.sleep(0.01)
        assert set(service.symbols) == {AAPL}
        assert ("subscribe", (AAPL,)) in client.stream.calls and ("unsubscribe", (BTC,)) in client.stream.calls
        service.request_stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(go())
    frame = store.read_bars(BTC, "1m")
    # 09:59 holds only the snapshot tick (partial); 10:00-10:02 complete; 10:03 was in progress
    assert list(frame.index.strftime("%H:%M")) == ["09:59", "10:00", "10:01", "10:02", "10:03"]
    assert frame["partial"].tolist() == [True, False, False, False, True]
    assert len(store.read_bars(BTC, "1M")) == 1 and store.read_bars(BTC, "1M")["partial"].all()


def test_in_progress_bars_and_quotes_reach_the_live_cache(settings, store, cache, market):
    register(store, market, BTC)
    client = ScriptedClient()
    service = make_service(settings, store, cache, client, cache_flush_ms=20)
    ticks = market.ticks(BTC, datetime(2026, 1, 30, 10, tzinfo=UTC), datetime(2026, 1, 30, 10, 5, 5, tzinfo=UTC))

    async def go():
        task = asyncio.create_task(service.run())
        await asyncio.wait_for(service.started.wait(), 5)
        await service.apply_registry(store.list_symbols(stream_only=True))
        client.stream.feed(ticks)
        for _ in range(500):
            bars = cache.get_current_bars(BTC)
            if bars and bars[Interval.M1].close == ticks[-1].price and bars[Interval.M1].time.minute == 5:
                break
            await asyncio.sleep(0.01)
        service.request_stop()
        await asyncio.wait_for(task, 10)
        return bars

    bars = asyncio.run(go())
    assert set(bars) == set(ALL_INTERVALS)
    assert bars[Interval.M5].time == datetime(2026, 1, 30, 10, 5, tzinfo=UTC)
    quote = cache.get_quote(BTC)
    assert quote["price"] == ticks[-1].price and quote["time"] == ticks[-1].time.isoformat()
    assert "received_at" in quote


def test_symbol_without_session_streams_to_cache_but_not_store_until_synced(settings, store, cache, market):
    store.add_symbol(SymbolInfo(AAPL, stream=True))  # no sync yet: no session in the registry
    client = ScriptedClient()
    service = make_service(settings, store, cache, client, registry_poll_s=0.02)
    day1 = replay(market, AAPL, datetime(2026, 1, 29, 15, tzinfo=UTC), datetime(2026, 1, 29, 16, tzinfo=UTC))
    day2 = replay(market, AAPL, datetime(2026, 1, 30, 15, tzinfo=UTC), datetime(2026, 1, 30, 16, tzinfo=UTC))

    async def go():
        task = asyncio.create_task(service.run())
        await asyncio.wait_for(service.started.wait(), 5)
        for _ in range(300):
            if AAPL in service.symbols:
                break
            await asyncio.sleep(0.01)
        assert not service.symbols[AAPL].session_known
        for tick in day1:
            service.on_tick(tick)
        service.close_due_bars()
        store.update_symbol(AAPL, **synced_fields(market, AAPL))  # a sync ran
        for _ in range(300):
            if service.symbols[AAPL].session_known:
                break
            await asyncio.sleep(0.01)
        assert service.symbols[AAPL].session_known
        for tick in day2:
            service.on_tick(tick)
        service.close_due_bars()
        service.request_stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(go())
    assert service.metrics.bars_unaligned.value > 50
    frame = store.read_bars(AAPL, "1h")
    # only session-aligned keys (xx:30 in New York's 09:30 session) ever reached the store
    assert len(frame) and set(frame.index.minute) == {30}
    assert frame.index.min() >= datetime(2026, 1, 30, tzinfo=UTC)
    compare_with_history(store, market, AAPL, day2[-1].time.timestamp())


def test_implausibly_dated_ticks_are_rejected_counted_and_logged_once(tmp_path, store, cache, market, capsys):
    # A server clock gone wrong: ticks dated in the year 3000 and before 1970, again and again,
    # between the real ones. None reaches the aggregator, the quote or the store; each
    # (symbol, reason) is logged once; the real ticks around them aggregate exactly.
    import time as _time

    from pocketquant_pipelines.market.ticks import Tick
    from pocketquant_pipelines.settings import load_settings

    settings = load_settings({"POCKETQUANT_DATA_DIR": str(tmp_path / "data"), "POCKETQUANT_CLOCK_SKEW_S": "60"},
                             dotenv_path=tmp_path / "none.env")
    start, end = datetime(2026, 1, 30, 15, tzinfo=UTC), datetime(2026, 1, 30, 16, 0, 5, tzinfo=UTC)
    register(store, market, BTC, AAPL)
    real = sorted(replay(market, BTC, start, end) + replay(market, AAPL, start, end), key=lambda t: t.time)
    year_3000 = datetime(3000, 1, 1, tzinfo=UTC)
    before_epoch = datetime(1969, 12, 31, 23, 59, tzinfo=UTC)
    ticks, seen = [], {BTC: 0, AAPL: 0}
    for tick in real:
        ticks.append(tick)
        seen[tick.symbol] += 1
        if seen[tick.symbol] % 50 == 7:
            for when in (year_3000, before_epoch):
                ticks.append(Tick(tick.symbol, when, tick.price * 1000, 5.0, None, None, tick.cumulative_volume))
    bad = len(ticks) - len(real)
    service = make_service(settings, store, cache, ScriptedClient())

    async def go():
        await service.apply_registry(store.list_symbols(stream_only=True))
        for k in range(0, len(ticks), 40):  # in messages, as the client hands them over
            service.on_ticks(ticks[k:k + 40])
        service.close_due_bars()
        # the skew is the boundary: 50 s ahead of the wall clock passes, 70 s ahead does not
        now = _time.time()
        btc_last = service.symbols[BTC].last_t
        service.on_ticks([Tick(BTC, datetime.fromtimestamp(now + 70, UTC), 1.0, 0.0)])
        assert service.symbols[BTC].last_t == btc_last and service.pipeline.ticks == len(real)
        service.on_ticks([Tick(BTC, datetime.fromtimestamp(now + 50, UTC), 1.0, 0.0)])
        assert service.pipeline.ticks == len(real) + 1

    asyncio.run(go())
    drain(service)
    rejected = service.metrics.rejected_ticks.as_dict()
    assert rejected == {"future": bad // 2 + 1, "before_epoch": bad // 2}
    assert service.health_report()[1]["rejected_ticks"] == rejected
    assert sum(s.aggregator.late_ticks for s in service.symbols.values()) == 0
    logs = capsys.readouterr()
    lines = [line for line in (logs.out + logs.err).splitlines() if "tick_rejected_implausible_time" in line]
    assert len(lines) == 4  # two symbols x two reasons
    assert sum("reason=future" in line and BTC in line for line in lines) == 1
    for symbol in (BTC, AAPL):
        counts = compare_with_history(store, market, symbol, end.timestamp(), feed_start_epoch=start.timestamp())
        assert counts["1m"] >= 59
        highest = max(t.price for t in real if t.symbol == symbol)
        for interval in ALL_INTERVALS:
            frame = store.read_bars(symbol, interval)
            if not len(frame):
                continue  # nothing completed yet at this interval (the service was not stopped)
            assert frame.index.min() >= datetime(2026, 1, 1, tzinfo=UTC), (symbol, interval)
            assert frame.index.max() <= end and frame["high"].max() <= highest, (symbol, interval)
