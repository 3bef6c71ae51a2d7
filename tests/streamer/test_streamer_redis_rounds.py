"""RedisLiveCache.write_trusted_batch, the streamer's lean round writer, against a real
redis-server: what it writes reads back through RedisLiveCache exactly as the backend's own
write_batch would, and Redis errors are not swallowed."""

from datetime import UTC, datetime

import pytest
import redis

from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval
from pocketquant_pipelines.storage.live import QUOTES_PATTERN, bar_channel, quote_channel
from pocketquant_pipelines.storage.redis_cache import RedisLiveCache
from streamer.cache_writer import TrustedBatchWriter

T = datetime(2026, 1, 30, 10, 0, tzinfo=UTC)
BTC = "BINANCE:BTCUSDT"


def quote(price: float) -> dict:
    return {"symbol": BTC, "time": T.isoformat(), "price": price, "volume": 0.5, "bid": price - 0.1,
            "ask": price + 0.1, "cumulative_volume": 12.5, "received_at": 1769767200.25}


def test_round_reads_back_like_the_backend_writes(redis_server):
    cache = RedisLiveCache(url=redis_server)
    writer = RedisLiveCache(url=redis_server)
    assert isinstance(writer, TrustedBatchWriter)  # the cache writer takes this path for Redis
    bars = [Bar(BTC, i, T, 100.0, 101.0, 99.5, 100.5, 3.25) for i in ALL_INTERVALS]
    q1, q2 = quote(100.0), quote(100.5)
    completed = Bar(BTC, Interval.M1, T, 99.0, 100.0, 98.0, 99.5, 7.0)
    with cache.subscribe(QUOTES_PATTERN, bar_channel(BTC, "1m")) as sub:
        writer.write_trusted_batch(quotes={BTC: q2}, current_bars={BTC: bars},
                           messages=[(quote_channel(BTC), q1), (quote_channel(BTC), q2),
                                     (bar_channel(BTC, "1m"), {"symbol": BTC, "interval": "1m",
                                                               "time": T.isoformat(), "open": 99.0,
                                                               "high": 100.0, "low": 98.0, "close": 99.5,
                                                               "volume": 7.0, "partial": False})])
        got = [sub.get(timeout=5) for _ in range(3)]
    assert cache.get_quote(BTC) == q2
    assert cache.get_current_bars(BTC) == {b.interval: b for b in bars}
    assert [m.data for m in got[:2]] == [q1, q2] and got[0].channel == quote_channel(BTC)
    assert got[2].data["close"] == completed.close and got[2].data["partial"] is False
    ttl = redis.Redis.from_url(redis_server).pttl(f"pq:quote:{BTC}")
    assert 55_000 < ttl <= 60_000
    writer.close()
    cache.close()


def test_redis_errors_are_raised_not_swallowed(redis_server):
    admin = redis.Redis.from_url(redis_server)
    writer = RedisLiveCache(url=redis_server)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", "1")
    try:
        with pytest.raises(redis.ResponseError, match="OOM"):
            writer.write_trusted_batch(quotes={BTC: quote(1.0)})
    finally:
        admin.config_set("maxmemory", "0")
    writer.write_trusted_batch(quotes={BTC: quote(2.0)})  # the connection is still usable
    writer.close()


def test_a_dead_server_is_a_connection_error(redis_server_proc, redis_server):
    writer = RedisLiveCache(url=redis_server)
    writer.write_trusted_batch(quotes={BTC: quote(1.0)})
    redis_server_proc.stop()
    try:
        with pytest.raises(ConnectionError):
            writer.write_trusted_batch(quotes={BTC: quote(2.0)})
    finally:
        redis_server_proc.start()
    writer.write_trusted_batch(quotes={BTC: quote(3.0)})  # reconnects by itself
    writer.close()


def test_bars_are_written_as_bar_to_dict_json_exactly(redis_server):
    import json

    from pocketquant_pipelines.market.bars import bar_to_dict
    from pocketquant_pipelines.storage.payloads import bar_json_bytes as bar_json

    odd = [
        Bar(BTC, Interval.M1, datetime(2026, 1, 30, 10, 0, 0, 500000, tzinfo=UTC), 1e-7, 2.5e16, 1e-8, 1.0, None),
        Bar(BTC, Interval.MN1, T, 3, 4, 2, 3, 0),
        Bar(BTC, Interval.H4, datetime(1971, 1, 1, tzinfo=UTC), -5.25, -1.0, -7.5, -2.0, 123456789.125),
    ]
    for bar in odd:
        assert json.loads(bar_json(bar)) == bar_to_dict(bar)
        assert json.loads(bar_json(bar))["time"] == bar.time.isoformat()
    writer = RedisLiveCache(url=redis_server)
    writer.write_trusted_batch(current_bars={BTC: odd})
    raw = redis.Redis.from_url(redis_server).get(f"pq:curbar:{BTC}:{odd[2].interval.value}")
    assert json.loads(raw) == bar_to_dict(odd[2])
    writer.close()
