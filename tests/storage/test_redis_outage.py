"""Redis going away and coming back (a restart, a failover): the live cache must not crash a
subscriber, and must carry on once the server is back."""

import time

import pytest
import redis

from pocketquant_pipelines.storage.live import QUOTES_PATTERN, quote_channel
from pocketquant_pipelines.storage.redis_cache import RedisLiveCache


def test_subscription_survives_a_redis_restart(redis_server, redis_server_proc):
    cache = RedisLiveCache(url=redis_server)
    sub = cache.subscribe(QUOTES_PATTERN)
    try:
        cache.publish(quote_channel("NASDAQ:AAPL"), {"n": 1})
        assert sub.get(timeout=5).data == {"n": 1}

        redis_server_proc.stop()
        assert sub.get(timeout=0.5) is None  # no exception while the server is down
        with pytest.raises(redis.ConnectionError):
            cache.set_quote("NASDAQ:AAPL", {"price": 1.0})
        assert cache.ping() is False

        redis_server_proc.start()
        # Pub/sub is fire-and-forget: messages sent before the subscription is re-established
        # are lost, so keep publishing until one arrives.
        received = None
        deadline = time.monotonic() + 15
        n = 1
        while received is None and time.monotonic() < deadline:
            n += 1
            cache.publish(quote_channel("NASDAQ:AAPL"), {"n": n})
            received = sub.get(timeout=0.3)
        assert received is not None and received.data["n"] >= 2
        cache.set_quote("NASDAQ:AAPL", {"price": 2.0})
        assert cache.get_quote("NASDAQ:AAPL") == {"price": 2.0}
    finally:
        sub.close()
        cache.close()
        if redis_server_proc.proc is None:
            redis_server_proc.start()
