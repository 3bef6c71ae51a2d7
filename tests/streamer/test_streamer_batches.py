"""Ticks travel from the client to the service one list per WebSocket message
(``QuoteStream.batches()`` -> ``StreamerService.on_ticks``). These tests pin down that the batch
path drops, duplicates and reorders nothing: it must give exactly what the per-tick path gives
(and what the tick rules of ``tradingview.quotes`` say), and the service must publish the same
quotes, in the same order, and aggregate the same bars either way."""

import asyncio
import random
from datetime import UTC, datetime

import pytest

from streamer_helpers import ScriptedClient, ScriptedStream
from pocketquant_pipelines.market.ticks import Tick
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.storage.factory import open_bar_store, open_live_cache
from pocketquant_pipelines.tradingview.codec import encode_frame, encode_message
from pocketquant_pipelines.tradingview.connection import Connection
from pocketquant_pipelines.tradingview.models import ClientStats
from pocketquant_pipelines.tradingview.quote_stream import QuoteStream
from pocketquant_pipelines.tradingview.quotes import TICK_FIELDS, SymbolQuote
from streamer.cache_writer import CacheWriter
from streamer.metrics import StreamerMetrics
from streamer.quote_source import QuoteClient, QuoteSource
from streamer.service import StreamerService
from streamer.store_writer import StoreWriter

QS = "qs_test"
SYMBOLS = ["BINANCE:BTCUSDT", "NASDAQ:AAPL", "SP:SPX", "CME_MINI:NQ1!"]
NOW = datetime(2026, 1, 30, 15, 0, tzinfo=UTC)
T0 = int(NOW.timestamp())


def random_messages(seed: int, n: int = 300) -> list[list[tuple[str, dict]]]:
    """Messages of qsd updates shaped like the server's: lp_time alone, lp/volume, bid/ask,
    repeated fields within one message (a packed burst), index volume sentinels, unchanged
    snapshots, frames for a symbol nobody subscribed."""
    rng = random.Random(seed)
    price = {s: 100.0 + i for i, s in enumerate(SYMBOLS)}
    volume = {s: 1000.0 for s in SYMBOLS}
    t = T0
    messages = []
    for _ in range(n):
        frames = []
        for _ in range(rng.randint(1, 12)):
            symbol = rng.choice([*SYMBOLS, "NYSE:NOTSUBSCRIBED"])
            roll = rng.random()
            t += rng.choice([0, 0, 1, 2])
            if roll < 0.2:
                v = {"lp_time": t}
            elif roll < 0.35:
                v = {"bid": round(price.get(symbol, 1) - 0.01, 2), "ask": round(price.get(symbol, 1) + 0.01, 2)}
            elif roll < 0.45:
                v = {"ch": 0.5, "chp": 0.1}  # no tick field
            elif roll < 0.55 and symbol != "SP:SPX":
                volume[symbol] = volume.get(symbol, 0) + 1.5
                v = {"volume": volume[symbol]}  # a trade at the same price
            else:
                price[symbol] = round(price.get(symbol, 1) + rng.choice([-0.25, 0, 0.25]), 2)
                volume[symbol] = volume.get(symbol, 0) + rng.choice([0, 0.5, 2.0])
                v = {"lp": price[symbol], "ch": 0.1}
                if rng.random() < 0.6:
                    v["lp_time"] = t
                if symbol == "SP:SPX":
                    v["volume"] = 1e100
                elif rng.random() < 0.8:
                    v["volume"] = volume[symbol]
            frames.append((symbol, v))
        messages.append(frames)
    return messages


def wire(message: list[tuple[str, dict]]) -> str:
    return "".join(encode_frame({"m": "qsd", "p": [QS, {"n": s, "s": "ok", "v": v}]}) for s, v in message)


def reference_ticks(messages) -> list[list[Tick]]:
    """The tick rules written out plainly: merge frame by frame; a tick field already merged in
    this message means the pending tick is emitted first; every touched symbol is emitted at
    the end of the message. One list per message."""
    quotes = {s: SymbolQuote(s) for s in SYMBOLS}
    out = []
    for message in messages:
        ticks, touched = [], {}
        for symbol, values in message:
            if symbol not in quotes:
                continue
            incoming = TICK_FIELDS & set(values)
            if touched.get(symbol, set()) & incoming:
                tick = quotes[symbol].next_tick(NOW)
                if tick is not None:
                    ticks.append(tick)
                touched[symbol] = set()
            quotes[symbol].merge(values)
            touched.setdefault(symbol, set()).update(incoming)
        for symbol in touched:
            tick = quotes[symbol].next_tick(NOW)
            if tick is not None:
                ticks.append(tick)
        out.append(ticks)
    return out


def assert_same_ticks(actual: list[Tick], expected: list[Tick], receive_time: datetime | None = None) -> None:
    """Equal tick by tick; a tick dated by its receive time (no lp_time yet) is compared by
    everything but that time when ``receive_time`` marks such ticks in ``expected``."""
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        assert (a.symbol, a.price, a.volume, a.bid, a.ask, a.cumulative_volume) == (
            e.symbol, e.price, e.volume, e.bid, e.ask, e.cumulative_volume)
        if receive_time is None or e.time != receive_time:
            assert a.time == e.time


async def dispatch_all(stream: QuoteStream, messages) -> list[int]:
    """Feed the messages through a real Connection's dispatch; returns how many ticks each
    message produced for a per-tick stream (queue growth)."""
    conn = Connection("ws://unused", "token", stats=ClientStats())
    conn.register(QS, stream)
    sizes = []
    for message in messages:
        before = stream._queue.qsize()
        await conn._dispatch(wire(message))
        sizes.append(stream._queue.qsize() - before)
    return sizes


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batches_carry_exactly_the_per_tick_stream_one_list_per_message(seed):
    messages = random_messages(seed)
    expected = reference_ticks(messages)

    async def go():
        per_tick = QuoteStream(None, SYMBOLS)
        await dispatch_all(per_tick, messages)
        singles = []
        while not per_tick._queue.empty():
            singles.append(per_tick._queue.get_nowait())

        batched = QuoteStream(None, SYMBOLS)
        batches_iter = batched.batches()
        await dispatch_all(batched, messages)
        await batched.close()  # the iterator ends after what was queued
        batches = [batch async for batch in batches_iter]
        return singles, batches, per_tick.ticks_emitted, batched.ticks_emitted

    singles, batches, n_single, n_batched = asyncio.run(go())
    flat = [t for batch in batches for t in batch]
    assert len(flat) > 200 and n_single == n_batched == len(flat)
    assert all(batches), "no empty lists are handed over"
    everything = [t for ticks in expected for t in ticks]
    assert_same_ticks(flat, everything, receive_time=NOW)
    assert_same_ticks(singles, everything, receive_time=NOW)
    assert [len(b) for b in batches] == [len(ticks) for ticks in expected if ticks]


def test_a_protocol_error_after_data_still_delivers_the_message_ticks():
    async def go():
        stream = QuoteStream(None, SYMBOLS)
        batches_iter = stream.batches()
        conn = Connection("ws://unused", "token", stats=ClientStats())
        conn.register(QS, stream)
        text = wire([("NASDAQ:AAPL", {"lp": 10.0, "lp_time": T0, "volume": 5.0})]) + encode_message(
            "protocol_error", ["wrong data"])
        error = await conn._dispatch(text)
        await stream.close()
        return error, [b async for b in batches_iter]

    error, batches = asyncio.run(go())
    assert error is not None and "wrong data" in str(error)
    assert [[(t.symbol, t.price) for t in b] for b in batches] == [[("NASDAQ:AAPL", 10.0)]]


def test_ticks_queued_before_switching_to_batches_are_not_lost():
    async def go():
        stream = QuoteStream(None, SYMBOLS)
        await dispatch_all(stream, [[("NASDAQ:AAPL", {"lp": 10.0, "volume": 5.0})]])
        batches_iter = stream.batches()
        await dispatch_all(stream, [[("NASDAQ:AAPL", {"lp": 10.5}), ("SP:SPX", {"lp": 4000.0})]])
        await stream.close()
        return [[(t.symbol, t.price) for t in b] async for b in batches_iter]

    assert asyncio.run(go()) == [[("NASDAQ:AAPL", 10.0)], [("NASDAQ:AAPL", 10.5), ("SP:SPX", 4000.0)]]


# --- the service: on_ticks(batch) == on_tick for each ---------------------------------------


@pytest.fixture
def backends(settings):
    store, cache = open_bar_store(settings), open_live_cache(settings)
    for symbol in ("BINANCE:BTCUSDT", "NASDAQ:AAPL"):
        store.add_symbol(SymbolInfo(symbol, timezone="Etc/UTC", session="24x7", stream=True))
    yield store, cache
    store.close()
    cache.close()


def service_ticks() -> list[Tick]:
    rng = random.Random(5)
    ticks, t = [], float(T0)
    for _ in range(3000):
        t += rng.choice([0.0, 0.5, 3.0, 17.0])
        symbol = rng.choice(["BINANCE:BTCUSDT", "NASDAQ:AAPL", "NYSE:UNKNOWN"])
        when = datetime.fromtimestamp(t, UTC)
        ticks.append(Tick(symbol, when, 100 + rng.randrange(-40, 40) / 4, rng.randrange(0, 8) / 4,
                          99.5, 100.5, 1000.0 + t - T0))
    return ticks


def run_service(settings, store, cache, feed) -> StreamerService:
    service = StreamerService(settings, store=store, cache=cache, client=ScriptedClient(), health_port=0)

    async def go():
        await service.apply_registry(store.list_symbols(stream_only=True))
        feed(service)

    asyncio.run(go())
    return service


def effects(service: StreamerService):
    messages = [(channel, {k: v for k, v in data.items() if k != "received_at"})
                for channel, data in service.cache_writer._messages]
    latest = {s: {k: v for k, v in q.items() if k != "received_at"} for s, q in service.cache_writer._quotes.items()}
    pending = {key: (bar, partial) for key, (bar, partial) in service.store_writer._pending.items()}
    current = {s: st.aggregator.current_bars() for s, st in service.symbols.items()}
    return messages, latest, pending, current, service.pipeline.ticks, service.pipeline.market_t, service.pipeline.dirty


def test_on_ticks_in_batches_equals_on_tick_one_by_one(settings, backends):
    store, cache = backends
    ticks = service_ticks()
    one_by_one = run_service(settings, store, cache, lambda s: [s.on_tick(t) for t in ticks])
    rng = random.Random(9)

    def in_batches(service):
        i = 0
        while i < len(ticks):
            n = rng.randint(1, 40)
            service.on_ticks(ticks[i:i + n])
            i += n

    batched = run_service(settings, store, cache, in_batches)
    a, b = effects(one_by_one), effects(batched)
    assert a[0] == b[0]  # every quote and completed bar published, in the same order
    assert a[1:] == b[1:]
    assert sum(1 for channel, _ in a[0] if channel.startswith("pq:bars:")) > 50
    known = [t for t in ticks if t.symbol != "NYSE:UNKNOWN"]
    assert a[4] == len(known)
    # the quote payload is Tick.to_dict() plus the receive stamp (docs/streamer.md)
    quotes = [data for channel, data in batched.cache_writer._messages if channel.startswith("pq:quotes:")]
    assert len(quotes) == len(known)
    for tick, quote in zip(known, quotes, strict=True):
        assert quote == {**tick.to_dict(), "received_at": quote["received_at"]}
        assert list(quote) == [*tick.to_dict(), "received_at"]
        assert isinstance(quote["received_at"], float)


def test_the_service_consumes_the_batches_of_its_quote_source(settings, backends):
    store, cache = backends
    ticks = [t for t in service_ticks() if t.symbol != "NYSE:UNKNOWN"][:500]

    class BatchedStream(ScriptedStream):
        async def batches(self):
            for i in range(0, len(ticks), 7):
                yield ticks[i:i + 7]

    client = ScriptedClient()
    client.stream = BatchedStream()
    assert isinstance(client, QuoteClient) and isinstance(client.stream, QuoteSource)
    service = StreamerService(settings, store=store, cache=cache, client=client, health_port=0)

    async def go():
        await service.apply_registry(store.list_symbols(stream_only=True))  # starts consuming
        await asyncio.gather(*service._tasks)  # ends with the stream

    asyncio.run(go())
    assert service.pipeline.ticks == len(ticks)


def test_cache_writer_counts_each_quote_of_a_batch(settings):
    written = []

    class Recorder:
        def write_batch(self, quotes, current_bars, messages):
            written.append((dict(quotes), list(messages)))

    metrics = StreamerMetrics()
    writer = CacheWriter(Recorder(), metrics)
    stamp = 1769785200.5
    writer.on_quotes([("A:B", {"price": 1.0, "received_at": stamp}), ("C:D", {"price": 2.0, "received_at": stamp}),
                      ("A:B", {"price": 3.0, "received_at": stamp})])
    writer.on_quote("C:D", {"price": 4.0, "received_at": stamp + 1})
    assert writer.write_pending()
    (quotes, messages), = written
    assert quotes == {"A:B": {"price": 3.0, "received_at": stamp}, "C:D": {"price": 4.0, "received_at": stamp + 1}}
    assert [(c, d["price"]) for c, d in messages] == [("pq:quotes:A:B", 1.0), ("pq:quotes:C:D", 2.0),
                                                      ("pq:quotes:A:B", 3.0), ("pq:quotes:C:D", 4.0)]
    assert metrics.quotes_published.value == 4 and metrics.tick_to_cache_seconds.count == 4
    text = metrics.registry.render()
    assert 'tick_to_cache_seconds_bucket{le="+Inf"} 4' in text


def test_store_writer_pacing_keeps_writes_under_their_share():
    writer = StoreWriter(None, StreamerMetrics(), batch_interval_s=1.0, max_duty=0.1)
    assert writer.paced_wait(0.0) == 1.0           # cheap writes: the batch interval
    assert writer.paced_wait(0.05) == 1.0
    assert writer.paced_wait(1.0) == pytest.approx(9.0)  # 1 s of writing per 10 s
    assert writer.paced_wait(60.0) == 30.0         # never longer than 30 s
    assert writer.next_wait_s == 1.0


# --- the client's number checks: the fast paths decide as isinstance + sentinel_to_none did ---

_ODD = [None, True, False, "1.5", [], 0, 7, -3, 2**70, 10**100, 0.0, -0.0, 12.5, -4.25, 1e98, 1e99, -1e99, 1e100,
        float("nan"), float("inf"), float("-inf")]


def _reference_number(value):
    """The former rule: int or float but not bool, and not a sentinel (|x| >= 1e99, NaN, inf)."""
    from pocketquant_pipelines.tradingview.codec import sentinel_to_none

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return sentinel_to_none(value)
    return None


@pytest.mark.parametrize("value", _ODD, ids=repr)
def test_quote_numbers_are_judged_as_before(value):
    usable = _reference_number(value)
    for field in ("lp", "volume", "bid", "ask"):
        quote = SymbolQuote("X:Y")
        quote.merge({"lp": 10.0, "volume": 5.0, "bid": 9.5, "ask": 10.5, "lp_time": T0, field: value})
        tick = quote.next_tick(NOW)
        if field == "lp":
            assert (tick is None) == (usable is None)
            if tick is not None:
                assert tick.price == float(usable) and type(tick.price) is float
            continue
        got = {"volume": tick.cumulative_volume, "bid": tick.bid, "ask": tick.ask}[field]
        assert got == (None if usable is None else float(usable))
        assert got is None or type(got) is float
    quote = SymbolQuote("X:Y")
    quote.merge({"lp": 10.0, "lp_time": value})
    tick = quote.next_tick(NOW)
    number = _reference_number(value)
    dated = number is not None and 0 < number < 1e11
    assert tick.time == (datetime.fromtimestamp(value, UTC) if dated else NOW)
