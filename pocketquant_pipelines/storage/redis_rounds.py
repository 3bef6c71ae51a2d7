"""RESP for ``RedisLiveCache.write_trusted_batch``: one round of SET ... PX and PUBLISH
commands packed by hand into one buffer, and its replies counted rather than parsed.

``write_batch`` validates every item and goes through redis-py's command packing and reply
parsing: ~34 us of CPU per quote (SET + PUBLISH) measured on this project's machine, which
alone caps a streamer near 25k ticks/s and shares the GIL with tick intake. Packed here, with
the command heads cached per key and each payload serialised once although it is both SET and
PUBLISHed, a quote costs about 2 us. Every command of a round answers with a single line, so
the reader counts lines and only looks for ``-ERR`` ones.
"""

import socket
from collections.abc import Mapping, Sequence

from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.storage.payloads import bar_json_bytes, to_json_bytes

_HEADS_MAX = 200_000  # cached command heads (a few per symbol); cleared beyond this


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


_SET = b"*5\r\n" + _bulk(b"SET")          # SET key value PX ttl
_PUBLISH = b"*3\r\n" + _bulk(b"PUBLISH")  # PUBLISH channel message


class RoundPacker:
    """Packs rounds; keeps the RESP pieces that repeat (per-key heads, the PX tails)."""

    def __init__(self, quote_key, current_bar_key, quote_ttl_ms: int, bar_ttl_ms: int) -> None:
        self._quote_key, self._bar_key = quote_key, current_bar_key
        self._quote_heads: dict[str, bytes] = {}
        self._bar_heads: dict[tuple[str, str], bytes] = {}
        self._publish_heads: dict[str, bytes] = {}
        self._quote_tail = _bulk(b"PX") + _bulk(b"%d" % quote_ttl_ms)
        self._bar_tail = _bulk(b"PX") + _bulk(b"%d" % bar_ttl_ms)

    @staticmethod
    def _remember(heads: dict, key, head: bytes) -> bytes:
        if len(heads) >= _HEADS_MAX:
            heads.clear()
        heads[key] = head
        return head

    def pack(self, quotes: Mapping[str, dict] | None, current_bars: Mapping[str, Sequence[Bar]] | None,
             messages: Sequence[tuple[str, Mapping]]) -> tuple[bytes, int]:
        """(the round's bytes, how many commands it holds): SETs first, then PUBLISHes in order."""
        out: list[bytes] = []
        append = out.append
        raw_of: dict[int, bytes] = {}  # id(dict) -> its JSON as a RESP bulk string: serialised once
        n = 0
        heads, tail = self._quote_heads, self._quote_tail
        for symbol, quote in (quotes or {}).items():
            head = heads.get(symbol)
            if head is None:
                head = self._remember(heads, symbol, _SET + _bulk(self._quote_key(symbol).encode()))
            raw = raw_of.get(id(quote))
            if raw is None:
                raw = raw_of[id(quote)] = _bulk(to_json_bytes(quote))
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
                    head = self._remember(heads, key, _SET + _bulk(self._bar_key(symbol, bar.interval).encode()))
                append(head)
                append(_bulk(bar_json_bytes(bar)))
                append(tail)
                n += 1
        heads = self._publish_heads
        for channel, data in messages:
            head = heads.get(channel)
            if head is None:
                head = self._remember(heads, channel, _PUBLISH + _bulk(channel.encode()))
            raw = raw_of.get(id(data))
            if raw is None:
                raw = raw_of[id(data)] = _bulk(to_json_bytes(data))
            append(head)
            append(raw)
            n += 1
        return b"".join(out), n


def send_round(sock: socket.socket, data: bytes, n: int) -> str | None:
    """Send a packed round and read its ``n`` one-line replies; the first error line's text,
    or None. Raises ConnectionError when the server closes the connection."""
    sock.sendall(data)
    lines, error, last = 0, None, b""
    while lines < n:
        chunk = sock.recv(1 << 16)  # not 1 MiB: each call allocates its buffer
        if not chunk:
            raise ConnectionError("redis closed the connection")
        if last.endswith(b"\r") and chunk.startswith(b"\n"):
            lines += 1
        lines += chunk.count(b"\r\n")
        if error is None and (chunk.startswith(b"-") or b"\r\n-" in chunk):
            start = 0 if chunk.startswith(b"-") else chunk.index(b"\r\n-") + 2
            error = chunk[start:chunk.find(b"\r\n", start)].decode(errors="replace")
        last = chunk
    return error
