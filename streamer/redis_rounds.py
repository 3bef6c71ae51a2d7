"""A lean Redis writer for the cache writer's rounds (the streamer's hottest I/O).

``RedisLiveCache.write_batch`` validates every item and goes through redis-py's command
packing and reply parsing: ~34 us of CPU per quote (SET + PUBLISH) measured on this project's
machine, which alone caps a streamer near 25k ticks/s of CPU and shares the GIL with tick
intake. This writer produces the *same keys and the same JSON* (it imports the backend's key
functions; bars are written with bar_to_dict's fields) but:

* serialises with orjson (compact, like the backend's ``separators=(",", ":")``; a float may
  differ in notation only, e.g. ``1e-7`` for ``1e-07``), each quote once although it is both
  SET and PUBLISHed;
* packs RESP by hand into one buffer per round (command heads cached per key) and sends it
  with one sendall;
* does not parse replies: every command here (SET ... PX, PUBLISH) answers with a single
  line, so the writer counts lines and only looks for ``-ERR`` lines.

About 2 us of CPU per quote. Inputs come from the streamer itself (canonical symbols from the
registry, dicts it built), so the backend's per-item validation adds nothing here. The
connection is redis-py's (AUTH, SELECT, TLS from the URL); any socket or protocol error
drops it and raises ``ConnectionError`` -- the cache writer treats that as an outage.
"""

from collections.abc import Mapping, Sequence

import orjson
import redis

from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.storage.live import CURRENT_BAR_TTL_S, QUOTE_TTL_S
from pocketquant_pipelines.storage.redis_cache import current_bar_key, quote_key

_dumps = orjson.dumps
_PREFIXES_MAX = 200_000  # cached command heads (a few per symbol); cleared beyond this


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


_SET = b"*5\r\n" + _bulk(b"SET")          # SET key value PX ttl
_PUBLISH = b"*3\r\n" + _bulk(b"PUBLISH")  # PUBLISH channel message


def bar_json(bar: Bar) -> bytes:
    """``bar_to_dict(bar)`` as compact JSON, without the intermediate ISO string: orjson writes
    an aware UTC datetime exactly as ``isoformat()`` does (tested)."""
    return _dumps({"symbol": bar.symbol, "interval": bar.interval, "time": bar.time, "open": bar.open,
                   "high": bar.high, "low": bar.low, "close": bar.close, "volume": bar.volume})


class RedisRoundWriter:
    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        self._conn = None
        # RESP pieces that repeat, packed once: "SET <key>" / "PUBLISH <channel>" heads (a few
        # per symbol; cleared if they ever grow past _PREFIXES_MAX) and the "PX <ttl>" tails
        self._quote_heads: dict[str, bytes] = {}
        self._bar_heads: dict[tuple[str, str], bytes] = {}
        self._publish_heads: dict[str, bytes] = {}
        self._quote_tail = _bulk(b"PX") + _bulk(b"%d" % int(QUOTE_TTL_S * 1000))
        self._bar_tail = _bulk(b"PX") + _bulk(b"%d" % int(CURRENT_BAR_TTL_S * 1000))

    @staticmethod
    def _remember(heads: dict, key, head: bytes) -> bytes:
        if len(heads) >= _PREFIXES_MAX:
            heads.clear()
        heads[key] = head
        return head

    def _connection(self):
        if self._conn is None:
            conn = self._client.connection_pool.make_connection()
            conn.connect()  # handshake: AUTH / SELECT / HELLO as the URL says
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.disconnect()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            self._conn = None
        self._client.close()

    def write_batch(self, quotes: Mapping[str, dict] | None = None,
                    current_bars: Mapping[str, Sequence[Bar]] | None = None,
                    messages: Sequence[tuple[str, Mapping]] = ()) -> None:
        out: list[bytes] = []
        append = out.append
        raw_of: dict[int, bytes] = {}  # id(dict) -> its JSON as a RESP bulk string: serialised once
        n = 0
        heads, tail = self._quote_heads, self._quote_tail
        for symbol, quote in (quotes or {}).items():
            head = heads.get(symbol)
            if head is None:
                head = self._remember(heads, symbol, _SET + _bulk(quote_key(symbol).encode()))
            raw = raw_of.get(id(quote))
            if raw is None:
                raw = raw_of[id(quote)] = _bulk(_dumps(quote))
            append(head)
            append(raw)
            append(tail)
            n += 1
        heads, tail = self._bar_heads, self._bar_tail
        for symbol, bars in (current_bars or {}).items():
            for bar in bars:
                key = (symbol, bar.interval)
                head = heads.get(key)
                if head is None:
                    head = self._remember(heads, key, _SET + _bulk(current_bar_key(symbol, bar.interval).encode()))
                append(head)
                append(_bulk(bar_json(bar)))
                append(tail)
                n += 1
        heads = self._publish_heads
        for channel, data in messages:
            head = heads.get(channel)
            if head is None:
                head = self._remember(heads, channel, _PUBLISH + _bulk(channel.encode()))
            raw = raw_of.get(id(data))
            if raw is None:
                raw = raw_of[id(data)] = _bulk(_dumps(data))
            append(head)
            append(raw)
            n += 1
        if not n:
            return
        try:
            conn = self._connection()
            sock = conn._sock
            sock.sendall(b"".join(out))
            lines, error, last = 0, None, b""
            while lines < n:
                data = sock.recv(1 << 16)  # not 1 MiB: each call allocates its buffer
                if not data:
                    raise ConnectionError("redis closed the connection")
                if last.endswith(b"\r") and data.startswith(b"\n"):
                    lines += 1
                lines += data.count(b"\r\n")
                if error is None and (data.startswith(b"-") or b"\r\n-" in data):
                    start = 0 if data.startswith(b"-") else data.index(b"\r\n-") + 2
                    error = data[start:data.find(b"\r\n", start)].decode(errors="replace")
                last = data
        except (OSError, redis.RedisError) as exc:
            self._conn = None
            raise ConnectionError(f"redis write failed: {exc}") from exc
        if error is not None:
            raise redis.ResponseError(f"redis refused a cache write: {error}")

