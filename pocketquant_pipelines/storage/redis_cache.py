"""Redis live cache (redis-py), selected by REDIS_URL.

Keys (all values JSON text):

- ``pq:quote:{symbol}`` — the latest quote (Tick.to_dict() shape), SET with PX = ttl (60 s).
- ``pq:curbar:{symbol}:{interval}`` — the in-progress bar (market.bars.bar_to_dict shape),
  one key per interval so each expires on its own (PX = ttl, 300 s). ``set_current_bars``
  writes them in one pipelined round trip; ``get_current_bars`` reads all 13 with one MGET.

Channels (PUBLISH, JSON payload; subscribers use PSUBSCRIBE glob patterns):

- ``pq:quotes:{symbol}`` — quotes; ``pq:bars:{symbol}:{interval}`` — completed bars.

Redis pub/sub is fire-and-forget: a subscriber that is not connected misses messages.
"""

import json
import time
from collections.abc import Mapping, Sequence

import redis

from pocketquant_pipelines.errors import ConfigError
from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval
from pocketquant_pipelines.storage.live import CURRENT_BAR_TTL_S, QUOTE_TTL_S, LiveCache, LiveMessage, Subscription
from pocketquant_pipelines.storage.live_records import (
    batch_json, check_patterns, current_bars_json, publish_json, quote_json,
)
from pocketquant_pipelines.storage.payloads import bar_from_json
from pocketquant_pipelines.storage.redis_rounds import RoundPacker, send_round
from pocketquant_pipelines.storage.validation import check_symbol, check_ttl

log = get_logger(__name__)

QUOTE_KEY_PREFIX = "pq:quote:"
CURRENT_BAR_KEY_PREFIX = "pq:curbar:"


def quote_key(symbol: str) -> str:
    return f"{QUOTE_KEY_PREFIX}{symbol}"


def current_bar_key(symbol: str, interval: Interval) -> str:
    return f"{CURRENT_BAR_KEY_PREFIX}{symbol}:{interval.value}"


def _ttl_ms(ttl_s: object) -> int:
    return max(1, round(check_ttl(ttl_s) * 1000))


class RedisSubscription(Subscription):
    def __init__(self, client: redis.Redis, patterns: tuple[str, ...]):
        self._pubsub = client.pubsub()
        self._pubsub.psubscribe(*patterns)
        # Wait for the server's confirmations: once subscribe() returns, a message published
        # from any connection is guaranteed to reach us.
        pending = len(set(patterns))
        deadline = time.monotonic() + 10
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                raise TimeoutError(f"redis did not confirm PSUBSCRIBE {patterns!r}")
            msg = self._pubsub.get_message(timeout=remaining)
            if msg is not None and msg["type"] == "psubscribe":
                pending -= 1

    def get(self, timeout: float | None = None) -> LiveMessage | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 1.0 if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                msg = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # redis-py reconnects and re-subscribes on the next call; messages published
                # meanwhile are lost (Redis pub/sub semantics).
                log.warning("live_subscription_disconnected", backend="redis", error=str(exc))
                msg = None
                time.sleep(min(0.5, wait))
            if msg is not None and msg["type"] in ("pmessage", "message"):
                channel = msg["channel"].decode() if isinstance(msg["channel"], bytes) else msg["channel"]
                try:
                    data = json.loads(msg["data"])
                except ValueError:
                    log.warning("live_message_malformed", channel=channel)
                    continue
                if isinstance(data, dict):
                    return LiveMessage(channel, data)
                log.warning("live_message_malformed", channel=channel)
                continue
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def close(self) -> None:
        try:
            self._pubsub.close()
        except redis.RedisError:
            pass


class RedisLiveCache(LiveCache):
    def __init__(self, url: str | None = None, client: redis.Redis | None = None):
        self._owns_client = client is None
        if client is None:
            if not url:
                raise ConfigError("RedisLiveCache needs a REDIS_URL or a client")
            client = redis.Redis.from_url(str.__str__(url), socket_connect_timeout=5,
                                          socket_timeout=10, health_check_interval=30)
        self._r = client
        self._round_packer: RoundPacker | None = None
        self._round_conn = None  # the connection of write_trusted_batch (one writer thread)

    def set_quote(self, symbol: str, quote: Mapping[str, object], ttl_s: float = QUOTE_TTL_S) -> None:
        symbol, raw = quote_json(symbol, quote)
        self._r.set(quote_key(symbol), raw, px=_ttl_ms(ttl_s))

    def get_quote(self, symbol: str) -> dict | None:
        raw = self._r.get(quote_key(check_symbol(symbol)))
        return None if raw is None else json.loads(raw)

    def all_quotes(self) -> dict[str, dict]:
        keys = list(self._r.scan_iter(match=f"{QUOTE_KEY_PREFIX}*", count=1000))
        out: dict[str, dict] = {}
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            for key, raw in zip(part, self._r.mget(part)):
                if raw is not None:  # expired between SCAN and MGET
                    out[key.decode()[len(QUOTE_KEY_PREFIX):]] = json.loads(raw)
        return out

    def set_current_bars(self, symbol: str, bars: Sequence[Bar],
                         ttl_s: float = CURRENT_BAR_TTL_S) -> None:
        symbol, items = current_bars_json(symbol, bars)
        px = _ttl_ms(ttl_s)
        if not items:
            return
        pipe = self._r.pipeline(transaction=False)
        for interval, raw in items:
            pipe.set(current_bar_key(symbol, interval), raw, px=px)
        pipe.execute()

    def get_current_bars(self, symbol: str) -> dict[Interval, Bar]:
        symbol = check_symbol(symbol)
        raws = self._r.mget([current_bar_key(symbol, i) for i in ALL_INTERVALS])
        return {i: bar_from_json(raw) for i, raw in zip(ALL_INTERVALS, raws) if raw is not None}

    def publish(self, channel: str, data: Mapping[str, object]) -> None:
        channel, raw = publish_json(channel, data)
        self._r.publish(channel, raw)

    def write_batch(self, quotes=None, current_bars=None, messages=(), quote_ttl_s=QUOTE_TTL_S,
                    bar_ttl_s=CURRENT_BAR_TTL_S) -> None:
        """One pipelined round trip: SETs first, then PUBLISHes in order."""
        q, b, m, quote_ttl, bar_ttl = batch_json(quotes, current_bars, messages, quote_ttl_s, bar_ttl_s)
        if not (q or b or m):
            return
        quote_px, bar_px = _ttl_ms(quote_ttl), _ttl_ms(bar_ttl)
        pipe = self._r.pipeline(transaction=False)
        for symbol, raw in q:
            pipe.set(quote_key(symbol), raw, px=quote_px)
        for symbol, items in b:
            for interval, raw in items:
                pipe.set(current_bar_key(symbol, interval), raw, px=bar_px)
        for channel, raw in m:
            pipe.publish(channel, raw)
        pipe.execute()

    def write_trusted_batch(self, quotes: Mapping[str, dict] | None = None,
                            current_bars: Mapping[str, Sequence[Bar]] | None = None,
                            messages: Sequence[tuple[str, Mapping]] = ()) -> None:
        """``write_batch`` with the default TTLs for payloads the caller built itself (the
        streamer: canonical symbols from the registry, quote and bar dicts of
        ``storage.payloads``), so the per-item checks add nothing: the same keys and JSON in one
        hand-packed round on a connection of its own (``storage.redis_rounds``). For one
        writer thread. A socket or protocol error drops the connection and raises
        ``ConnectionError``; an error reply raises ``redis.ResponseError``."""
        if self._round_packer is None:
            self._round_packer = RoundPacker(quote_key, current_bar_key, _ttl_ms(QUOTE_TTL_S),
                                             _ttl_ms(CURRENT_BAR_TTL_S))
        data, n = self._round_packer.pack(quotes, current_bars, messages)
        if not n:
            return
        try:
            if self._round_conn is None:
                conn = self._r.connection_pool.make_connection()
                conn.connect()  # handshake: AUTH / SELECT / HELLO as the URL says
                self._round_conn = conn
            error = send_round(self._round_conn._sock, data, n)
        except (OSError, redis.RedisError) as exc:
            self._drop_round_connection()
            raise ConnectionError(f"redis write failed: {exc}") from exc
        if error is not None:
            raise redis.ResponseError(f"redis refused a cache write: {error}")

    def _drop_round_connection(self) -> None:
        conn, self._round_conn = self._round_conn, None
        if conn is not None:
            try:
                conn.disconnect()
            except Exception:  # noqa: BLE001 - dropping it anyway
                pass

    def subscribe(self, *patterns: str) -> Subscription:
        return RedisSubscription(self._r, check_patterns(patterns))

    def ping(self) -> bool:
        try:
            return bool(self._r.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self._drop_round_connection()
        if self._owns_client:
            self._r.close()
