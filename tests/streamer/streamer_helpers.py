"""Helpers of the streamer tests (a plain module, not conftest: tests/conftest.py owns that name): the oracle comparison of stored stream bars with the
simulator's history, and a scripted tick source for the fast in-process cases."""

import asyncio
import math
from datetime import datetime

from pocketquant_pipelines.market.calendar import calendar_record
from pocketquant_pipelines.market.intervals import ALL_INTERVALS
from pocketquant_pipelines.market.sessions import bar_end
from pocketquant_pipelines.market.timeutil import from_epoch
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.tradingview.errors import SymbolNotFoundError
from pocketquant_pipelines.tradingview.models import ClientStats
from tradingview_simulator.payloads import symbol_info


class ScriptedStream:
    """A ``streamer.quote_source.QuoteSource`` for the fast in-process tests: yields given
    ticks, one per message, and records subscribe/unsubscribe calls. The end-to-end tests use
    the real client instead."""

    def __init__(self, ticks=()):
        self.queue: asyncio.Queue = asyncio.Queue()
        for t in ticks:
            self.queue.put_nowait(t)
        self.subscribed: list[str] = []
        self.calls: list[tuple] = []
        self.stats = ClientStats(connected=True, connections=1)
        self.closed = False

    def feed(self, ticks):
        for t in ticks:
            self.queue.put_nowait(t)

    async def subscribe(self, *symbols):
        self.calls.append(("subscribe", symbols))
        self.subscribed += [s for s in symbols if s not in self.subscribed]

    async def unsubscribe(self, *symbols):
        self.calls.append(("unsubscribe", symbols))
        self.subscribed = [s for s in self.subscribed if s not in symbols]

    async def batches(self):
        while True:
            item = await self.queue.get()
            if item is None:
                return
            yield [item]

    async def close(self):
        self.closed = True
        self.queue.put_nowait(None)


class ScriptedClient:
    """A ``streamer.quote_source.QuoteClient`` whose one stream is a ScriptedStream. It knows
    no symbol metadata: a symbol without a session stays unaligned, as after a failed lookup."""

    def __init__(self, ticks=()):
        self.stream = ScriptedStream(ticks)

    def quote_stream(self, symbols=()):
        self.stream.subscribed = list(symbols)
        return self.stream

    async def resolve_symbol(self, symbol):
        raise SymbolNotFoundError(f"the scripted feed has no metadata for {symbol}")

    async def close(self):
        await self.stream.close()


def as_synced(market, symbol: str, stream: bool = True) -> SymbolInfo:
    """The registry entry a first historical sync leaves: the simulator's symbol_resolved
    timezone, session and calendar (holidays, early closes)."""
    info = symbol_info(market.spec(symbol))
    return SymbolInfo(symbol, timezone=info["timezone"], session=info["session"], stream=stream,
                      calendar=calendar_record(info, "2019-01-01T00:00:00+00:00"))


def synced_fields(market, symbol: str) -> dict:
    """The registry fields a historical sync writes (for ``store.update_symbol``)."""
    entry = as_synced(market, symbol)
    return {"timezone": entry.timezone, "session": entry.session, "calendar": entry.calendar}


def snapshot_tick(market, symbol: str, start):
    """What the real client emits first after subscribing: the quote snapshot, i.e. the last
    trade before ``start`` with per-tick volume 0 (its volume is only the baseline)."""
    from datetime import timedelta

    for days in (0.1, 1, 5):
        before = market.ticks(symbol, start - timedelta(days=days), start)
        if before:
            t = before[-1]
            return type(t)(t.symbol, t.time, t.price, 0.0 if t.volume is not None else None,
                           t.bid, t.ask, t.cumulative_volume)
    raise AssertionError(f"no tick of {symbol} in the 5 days before {start}")


def replay(market, symbol: str, start, end) -> list:
    """The ticks a freshly subscribed client would deliver for [start, end)."""
    return [snapshot_tick(market, symbol, start), *market.ticks(symbol, start, end)]


def bar_tuple(bar):
    return (bar.open, bar.high, bar.low, bar.close, bar.volume)


def compare_with_history(store, market, symbol: str, end_epoch: float, *, intervals=ALL_INTERVALS,
                         feed_start_epoch: float | None = None) -> dict:
    """Every stored complete stream bar of ``symbol`` must equal the simulator's historical bar
    of the same key (exact: the simulator's arithmetic is exact). Also, every historical bar
    that started after ``feed_start_epoch`` and ended by ``end_epoch`` must be there (nothing
    missed). Returns {interval: compared count}."""
    session = market.session(symbol)
    compared = {}
    for interval in intervals:
        frame = store.read_stream_bars(symbol, interval)
        complete = frame[~frame["partial"].astype(bool)] if len(frame) else frame
        if not len(frame):
            compared[interval.value] = 0
            continue
        first = frame.index[0].timestamp()
        if feed_start_epoch is not None:
            first = min(first, feed_start_epoch)
        history = {b.time: b for b in market.bars_between(symbol, interval, first, end_epoch + 1)}
        for ts, row in complete.iterrows():
            t = ts.to_pydatetime()
            assert t in history, f"{symbol} {interval} {t}: streamed bar has no historical twin"
            h = history[t]
            got = (row["open"], row["high"], row["low"], row["close"],
                   None if math.isnan(row["volume"]) else row["volume"])
            assert got == bar_tuple(h), f"{symbol} {interval} {t}: stream {got} != history {bar_tuple(h)}"
        if feed_start_epoch is not None:
            stored = {ts.to_pydatetime() for ts in frame.index}
            for t, h in history.items():
                if t.timestamp() > feed_start_epoch and bar_end(t, interval, session).timestamp() <= end_epoch:
                    assert t in stored, f"{symbol} {interval} {t}: historical bar missing from the stream"
        compared[interval.value] = len(complete)
    return compared


async def stream_until(service, server, sim_end, hooks=()):
    """Run the service until the simulator's clock reaches ``sim_end``; ``hooks`` are
    (sim time, callable) pairs fired once when the clock passes them (fault injection)."""
    hooks = sorted(hooks, key=lambda h: h[0])
    task = asyncio.create_task(service.run())
    await asyncio.wait_for(service.started.wait(), 10)
    while server.sim_now() < sim_end:
        while hooks and server.sim_now() >= hooks[0][0]:
            hooks.pop(0)[1]()
        if task.done():
            break
        await asyncio.sleep(0.05)
    service.request_stop()
    await asyncio.wait_for(task, 20)


def utc(epoch: float) -> datetime:
    return from_epoch(epoch)
