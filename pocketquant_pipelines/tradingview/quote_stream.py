"""A live quote stream that survives disconnects.

``QuoteStream`` owns one socket (quotes are long-lived; history requests share other sockets)
and a supervisor task that connects, authenticates, creates the quote session, sets the fields,
adds every subscribed symbol, and on any loss waits (exponential backoff with jitter) and does
it all again. Ticks come out of ``async for tick in stream`` (or ``async for ticks in
stream.batches()``: one list per WebSocket message, for consumers that want fewer hand-overs);
per-symbol errors are collected in ``errors`` (and passed to ``on_error``) without stopping the
other symbols.

Permanent failures end the stream with the error raised from the iterator: a rejected token
(AuthError: ``protocol_error "bad auth token"`` or a failed sign-in), a message over the size
cap (MessageTooLargeError), and silence (QuoteSilenceError): ``silence_s`` of *connected* time
without a sign of life. A sign of life is quote data for the session (``qsd``,
``quote_completed``), or a heartbeat once every subscribed symbol has had its first reply on
the current socket; the hello is none (a server that greets and then says nothing is silent).
Silent time adds up across reconnects, including the backoff after an accepted socket died,
so a server that accepts and hangs up again and again ends the stream too; time spent failing
to connect does not count. Everything else (drops, other protocol errors, HTTP 429 on the
upgrade, a network outage) is retried forever with backoff, because a streamer should outlive
a network outage.

Memory is bounded whatever the server sends: once ``max_pending`` ticks wait for the consumer,
the socket's reader waits too (it stops reading, TCP slows the server); nothing is dropped.
An undecodable quote frame is skipped and counted (``stats.decode_errors``).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING

from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.ticks import Tick
from pocketquant_pipelines.market.timeutil import utcnow
from pocketquant_pipelines.settings import DEFAULT_MAX_MESSAGE_BYTES
from pocketquant_pipelines.tradingview.codec import Frame
from pocketquant_pipelines.tradingview.connection import Connection, backoff_delays, new_session_id
from pocketquant_pipelines.tradingview.errors import (
    AuthError,
    ConnectionLostError,
    MessageTooLargeError,
    QuoteSilenceError,
    TradingViewError,
)
from pocketquant_pipelines.tradingview.models import ClientStats
from pocketquant_pipelines.tradingview.quotes import QUOTE_FIELDS, QuoteError, SymbolQuote

if TYPE_CHECKING:
    from pocketquant_pipelines.tradingview.client import TradingViewClient

log = get_logger("pocketquant.tradingview.quotes")

_END = object()
MAX_PENDING_TICKS = 10_000  # ticks waiting for the consumer before the reader pauses


class QuoteStream:
    def __init__(
        self,
        client: "TradingViewClient",
        symbols: Iterable[str] = (),
        *,
        fields: Iterable[str] = QUOTE_FIELDS,
        on_error: Callable[[QuoteError], None] | None = None,
        silence_s: float | None = None,
        max_pending: int = MAX_PENDING_TICKS,
    ) -> None:
        self._client = client
        self.silence_s = float(silence_s if silence_s is not None else getattr(client, "quote_silence_s", 60.0))
        self.max_pending = max_pending
        self._fields = list(fields)
        self._on_error = on_error
        self._subscribed: dict[str, None] = {}  # ordered set of subscribed strings
        self.quotes: dict[str, SymbolQuote] = {}
        for symbol in symbols:
            self._add(symbol)
        self.errors: list[QuoteError] = []
        self.stats = ClientStats()
        self.state = "idle"  # idle | connecting | streaming | reconnecting | closed | failed
        self._queue: asyncio.Queue = asyncio.Queue()
        self._conn: Connection | None = None
        self._qs: str | None = None
        self._task: asyncio.Task | None = None
        self._lost: asyncio.Future | None = None
        # symbol -> tick fields merged in this message and not yet emitted, as bits (lp = 1,
        # lp_time = 2, volume = 4); every symbol with a frame in the message is a key
        self._touched: dict[str, int] = {}
        self._out: list[Tick] = []  # ticks of the current message, delivered at its end
        self._batched = False       # True once batches() is used: the queue carries lists
        self._closing = False
        self._got_data = False
        self.ticks_emitted = 0
        self.pending = 0  # ticks queued and not yet taken by the consumer
        self._drained = asyncio.Event()
        self._drained.set()
        # silence accounting, in time.monotonic() seconds (see the module docstring)
        self._silent_s = 0.0           # silent time carried from earlier sockets
        self._mark: float | None = None  # start of the silent stretch now running (None: not counting)
        self._lost_at: float | None = None
        self._unanswered: set[str] = set()  # subscribed symbols without a reply on this socket

    # ------------------------------------------------------------------ public API

    @property
    def symbols(self) -> list[str]:
        return list(self._subscribed)

    def snapshot(self, symbol: str) -> dict:
        """The merged full quote state of one subscribed symbol (every field received so far)."""
        return dict(self.quotes[symbol].fields)

    async def start(self) -> None:
        if self._task is None and not self._closing:
            self.state = "connecting"
            self._task = asyncio.create_task(self._supervise(), name="tv-quote-stream")

    async def subscribe(self, *symbols: str) -> None:
        new = [s for s in (self._clean(x) for x in symbols) if s not in self._subscribed]
        for symbol in new:
            self._add(symbol)
        await self.start()
        if new and self._connected():
            self._unanswered.update(new)  # heartbeats count as life again once these are answered
            try:
                await self._conn.send("quote_add_symbols", [self._qs, *new])
                # the fast list is replaced as a whole: send every subscribed symbol
                await self._conn.send("quote_fast_symbols", [self._qs, *self._subscribed])
            except ConnectionLostError:
                pass  # the supervisor resubscribes everything after reconnecting

    async def unsubscribe(self, *symbols: str) -> None:
        gone = [s for s in (self._clean(x) for x in symbols) if s in self._subscribed]
        for symbol in gone:
            del self._subscribed[symbol]
            self.quotes.pop(symbol, None)
            self._unanswered.discard(symbol)
        if gone and self._connected():
            try:
                await self._conn.send("quote_remove_symbols", [self._qs, *gone])
            except ConnectionLostError:
                pass

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._conn is not None:
            await self._conn.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self.state != "failed":
            self.state = "closed"
        self._queue.put_nowait(_END)

    async def __aenter__(self) -> "QuoteStream":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def __aiter__(self) -> "QuoteStream":
        return self

    async def __anext__(self) -> Tick:
        await self.start()
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # later calls end too
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._queue.put_nowait(_END)
            raise item
        self._taken(1)
        return item

    def batches(self) -> AsyncIterator[list[Tick]]:
        """Ticks in lists, one list per WebSocket message, in arrival order; the same ticks,
        errors and end as ``async for tick in stream``, with one queue hand-over per message
        instead of per tick (a busy message carries dozens of ticks). Switches the stream to
        batch mode at once: iterate either the batches or the stream, not both."""
        self._batched = True
        return self._iter_batches()

    async def _iter_batches(self) -> AsyncIterator[list[Tick]]:
        await self.start()
        queue = self._queue
        while True:
            item = await queue.get()
            if item is _END:
                queue.put_nowait(_END)
                return
            if isinstance(item, BaseException):
                queue.put_nowait(_END)
                raise item
            batch = item if item.__class__ is list else [item]  # a tick queued before the switch
            self._taken(len(batch))
            yield batch

    def _taken(self, count: int) -> None:
        self.pending -= count
        if self.pending <= self.max_pending // 2:
            self._drained.set()

    # ------------------------------------------------------------------ session handler

    def _alive(self) -> None:
        self._silent_s = 0.0
        self._mark = time.monotonic()

    def on_heartbeat(self) -> None:
        if not self._unanswered:
            self._alive()

    def on_frame_lost(self, frame: Frame) -> None:
        pass  # counted by the connection (stats.decode_errors) and logged; quotes go on

    async def wait_drained(self) -> None:
        await self._drained.wait()

    def on_frame(self, frame: Frame) -> None:
        method = frame.method
        p = frame.params
        if method == "qsd" and len(p) > 1 and isinstance(p[1], dict):
            data = p[1]
            symbol = data.get("n")
            quote = self.quotes.get(symbol)  # same keys as _subscribed
            if quote is None:
                return  # late frame for an unsubscribed symbol
            self._unanswered.discard(symbol)
            self._alive()
            if data.get("s") == "error":
                self._symbol_error(symbol, str(data.get("errmsg") or "error"))
                return
            values = data.get("v")
            if isinstance(values, dict):
                # which tick fields (lp, lp_time, volume) this frame carries, as bits
                incoming = ("lp" in values) | ("lp_time" in values) << 1 | ("volume" in values) << 2
                touched = self._touched
                pending = touched.get(symbol)
                if pending is None:
                    touched[symbol] = incoming
                else:
                    if incoming & pending:
                        # The same field again within one message is the next tick: emit the
                        # one pending first, or its price never reaches the bars (highs/lows lost).
                        self._emit(quote, utcnow())
                        pending = 0
                    touched[symbol] = pending | incoming
                quote.fields.update(values)  # SymbolQuote.merge, inlined: once per frame
                self._got_data = True
        elif method == "quote_completed":
            self._got_data = True
            if len(p) > 1:
                self._unanswered.discard(p[1])
            self._alive()
        elif method == "critical_error":
            reason = ": ".join(str(x) for x in p[1:]) or "critical error"
            self._record(QuoteError(symbol="*", reason=reason, at=utcnow()))
            log.error("tradingview_quote_critical_error", reason=reason)

    def on_batch_end(self) -> None:
        touched = self._touched
        if touched:
            now = utcnow()
            quotes = self.quotes
            out = self._out
            for symbol in touched:
                quote = quotes.get(symbol)
                if quote is not None:
                    tick = quote.next_tick(now)
                    if tick is not None:
                        out.append(tick)
            touched.clear()
        self._deliver()

    def _emit(self, quote: SymbolQuote, received_at: datetime) -> None:
        tick = quote.next_tick(received_at)
        if tick is not None:
            self._out.append(tick)

    def _deliver(self) -> None:
        """Hand this message's ticks to the consumer: one list (batch mode) or tick by tick."""
        out = self._out
        if not out:
            return
        self.ticks_emitted += len(out)
        self.pending += len(out)
        if self.pending >= self.max_pending:
            self._drained.clear()
        if self._batched:
            self._queue.put_nowait(out)
            self._out = []
        else:
            put = self._queue.put_nowait
            for tick in out:
                put(tick)
            out.clear()

    def on_connection_lost(self, exc: TradingViewError) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(exc)

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _clean(symbol: str) -> str:
        from pocketquant_pipelines.market.symbols import normalize_symbol

        text = symbol.strip()
        # "={...}" descriptors are passed through; the server echoes them verbatim in "n".
        return text if text.startswith("=") else normalize_symbol(text)

    def _add(self, symbol: str) -> None:
        symbol = self._clean(symbol)
        self._subscribed[symbol] = None
        self.quotes[symbol] = SymbolQuote(symbol)

    def _connected(self) -> bool:
        return self._conn is not None and not self._conn.closed and self._qs is not None

    def _record(self, error: QuoteError) -> None:
        self.errors.append(error)
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:  # noqa: BLE001 - a user callback must not stop the stream
                log.exception("quote_error_callback_failed")

    def _symbol_error(self, symbol: str, reason: str) -> None:
        # Permanent for this symbol: drop it so reconnects do not re-add it; others go on.
        self._subscribed.pop(symbol, None)
        self.quotes.pop(symbol, None)
        self._record(QuoteError(symbol=symbol, reason=reason, at=utcnow()))
        log.warning("tradingview_quote_symbol_error", symbol=symbol, reason=reason)

    def _fail(self, exc: BaseException) -> None:
        self.state = "failed"
        self._drained.set()
        self._queue.put_nowait(exc)

    def silent_for(self) -> float:
        """Silent time counted against ``silence_s`` so far."""
        if self._mark is None:
            return self._silent_s
        return self._silent_s + time.monotonic() - self._mark

    def _silence_error(self) -> QuoteSilenceError:
        waiting = f"; no reply yet for {', '.join(sorted(self._unanswered))}" if self._unanswered else ""
        return QuoteSilenceError(
            f"no quote data or heartbeat from TradingView for {self.silence_s:g} s of connected time "
            f"(TRADINGVIEW_QUOTE_SILENCE_S){waiting}", reason="silent")

    async def _watch(self, conn: Connection) -> TradingViewError:
        """Wait for the socket's loss; close it and return QuoteSilenceError if silence runs out first."""
        lost = self._lost
        while True:
            remaining = self.silence_s - self.silent_for()
            if remaining <= 0:
                await conn.close()
                return self._silence_error()
            done, _ = await asyncio.wait({lost}, timeout=remaining)
            if done:
                return lost.result()

    async def _supervise(self) -> None:
        client = self._client
        delays = backoff_delays(client.backoff_initial_s, client.backoff_max_s)
        ever_connected = False
        while not self._closing:
            try:
                token = await client.auth_token()
                conn = Connection(client.url, token, stats=self.stats,
                                  heartbeat_timeout_s=client.heartbeat_timeout_s,
                                  open_timeout_s=client.request_timeout_s, compression=client.compression,
                                  max_message_bytes=getattr(client, "max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES))
                await conn.open()
            except AuthError as exc:
                if client.refresh_token_after(exc):
                    continue
                self._fail(exc)
                return
            except ConnectionLostError as exc:
                if self._mark is not None and self._lost_at is not None:
                    # an outage, not a silent server: stop counting at the loss
                    self._silent_s += self._lost_at - self._mark
                    self._mark = None
                delay = next(delays)
                log.warning("tradingview_connect_failed", reason=str(exc), retry_in_s=round(delay, 3))
                self.state = "reconnecting" if ever_connected else "connecting"
                await asyncio.sleep(delay)
                continue
            self._conn = conn
            self._qs = new_session_id("qs")
            self._lost = asyncio.get_running_loop().create_future()
            self._got_data = False
            self._unanswered = set(self._subscribed)
            if self._mark is None:
                self._mark = time.monotonic()
            conn.register(self._qs, self)
            try:
                await conn.send("quote_create_session", [self._qs])
                await conn.send("quote_set_fields", [self._qs, *self._fields])
                if self._subscribed:
                    # No {"flags":["force_permission"]}: it now earns a critical_error (§3.1).
                    await conn.send("quote_add_symbols", [self._qs, *self._subscribed])
                    await conn.send("quote_fast_symbols", [self._qs, *self._subscribed])
            except TradingViewError:
                pass  # the reader reports the loss, with the server's last words, via _lost
            if ever_connected:
                self.stats.reconnects += 1
                log.info("tradingview_quotes_reconnected", reconnects=self.stats.reconnects,
                         symbols=len(self._subscribed))
            ever_connected = True
            self.state = "streaming"
            reason = await self._watch(conn)
            self._qs = None
            self._lost_at = time.monotonic()
            if self._closing:
                return
            if isinstance(reason, (QuoteSilenceError, MessageTooLargeError)):
                log.warning("tradingview_quotes_failed", reason=str(reason))
                self._fail(reason)
                return
            if isinstance(reason, AuthError):
                if client.refresh_token_after(reason):
                    continue  # signed-in tokens expire (4 h JWT): sign in again, reconnect at once
                log.warning("tradingview_quotes_failed", reason=str(reason))
                self._fail(reason)
                return
            if self._got_data:
                client.token_proven()
            if self._got_data:
                delays = backoff_delays(client.backoff_initial_s, client.backoff_max_s)
            delay = next(delays)
            self.state = "reconnecting"
            log.warning("tradingview_quotes_disconnected", reason=str(reason), retry_in_s=round(delay, 3))
            await asyncio.sleep(delay)
