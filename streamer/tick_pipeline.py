"""The tick path: ticks -> per-symbol aggregators -> completed bars to the writers, quotes and
in-progress bars to the live cache. Runs on the event loop and never blocks: the writers'
``put``/``on_*`` only record state for their threads.

Bars close on each symbol's *own market clock*: its newest tick time, extrapolated at
real-time speed while it is quiet (``SymbolState.clock``). Wall-clock ``now`` would be wrong
for delayed feeds (lp_time 15 min behind) and for the simulator's accelerated time, and a
clock shared across symbols would close one symbol's bar while its ticks are still queued
behind another's. Extrapolating at speed 1 closes a bar late rather than early.
"""

import time
from collections.abc import Iterable
from datetime import UTC, datetime

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.clock import EPOCH_FLOOR, implausible_reason
from pocketquant_pipelines.market.timeutil import epoch_and_iso
from pocketquant_pipelines.storage.payloads import quote_payload
from pocketquant_pipelines.storage.tick_log import TickLogWriter
from pocketquant_pipelines.tradingview.models import ClientStats
from streamer.cache_writer import CacheWriter
from streamer.metrics import StreamerMetrics
from streamer.store_writer import StoreWriter
from streamer.symbols import SymbolState

log = get_logger("streamer")

CLOSE_GRACE_S = 2.0  # market seconds a bar stays open past its end for straggling ticks


class TickPipeline:
    def __init__(self, metrics: StreamerMetrics, store_writer: StoreWriter, cache_writer: CacheWriter, *,
                 clock_skew_s: float, max_bar_symbols_per_flush: int = 100,
                 tick_log: TickLogWriter | None = None) -> None:
        self.metrics = metrics
        self.store_writer = store_writer
        self.cache_writer = cache_writer
        self.clock_skew_s = clock_skew_s
        self.max_bar_symbols_per_flush = max_bar_symbols_per_flush
        self.tick_log = tick_log  # the audit trail: every tick seen, and why one was dropped
        self.symbols: dict[str, SymbolState] = {}
        self.dirty: dict[str, None] = {}  # symbols with unpushed in-progress bars, oldest first
        self.source_stats: ClientStats | None = None  # the quote source's, once it is open
        self.ticks = 0
        self.market_t: float | None = None  # newest tick time of any symbol (epoch)
        self.last_tick_mono: float | None = None
        self._late_base = 0  # late/out-of-session counts of aggregators already retired
        self._oos_base = 0
        self._seen_reconnects = 0
        self._rejected_logged: set[tuple[str, str]] = set()  # (symbol, reason) already warned about

    # --- counters read at scrape time ------------------------------------------------------------
    @property
    def late_ticks(self) -> int:
        return self._late_base + sum(s.aggregator.late_ticks for s in self.symbols.values())

    @property
    def out_of_session_ticks(self) -> int:
        return self._oos_base + sum(s.aggregator.out_of_session_ticks for s in self.symbols.values())

    # --- symbols -----------------------------------------------------------------------------------
    def add(self, state: SymbolState) -> None:
        self.symbols[state.symbol] = state

    def retire(self, symbol: str) -> None:
        """Stop aggregating a symbol: complete bars go to the store as usual, the in-progress
        ones as partial (a later historical sync completes them)."""
        state = self.symbols.pop(symbol)
        clock = state.clock(time.monotonic())
        if clock is not None:
            closed = state.aggregator.close_due_epoch(clock)
            if closed:
                self._completed(state, closed)
        self.to_store_partial(state, state.aggregator.flush())
        self._late_base += state.aggregator.late_ticks
        self._oos_base += state.aggregator.out_of_session_ticks

    # --- hot path ------------------------------------------------------------------------------------
    def on_tick(self, tick) -> None:
        self.on_ticks((tick,))

    def on_ticks(self, ticks: Iterable) -> None:
        """Aggregate the ticks of one client message, in order, and hand their quotes to the
        cache writer. What does not change within a message is done once per call: the
        reconnect check, the clocks, the ``received_at`` stamp (the message's ticks arrived
        together).

        Clock sanity: a tick dated after wall-clock now + ``clock_skew_s``, or before the
        epoch, is dropped here, before it can touch the aggregator (one year-3000 tick would
        open a year-3000 bar and make every later tick late), the symbol's clock or its quote.
        One wall-clock read per message, two float comparisons per tick."""
        stats = self.source_stats
        if stats is not None and stats.reconnects != self._seen_reconnects:
            self._on_reconnect(stats.reconnects)
        now_mono = time.monotonic()
        received_at = time.time()
        horizon = received_at + self.clock_skew_s
        symbols = self.symbols
        dirty = self.dirty
        market_t = self.market_t
        quotes: list[tuple[str, dict]] = []
        n = 0
        record = self.tick_log.record if self.tick_log is not None else None
        for tick in ticks:
            symbol = tick.symbol
            state = symbols.get(symbol)
            if state is None:  # a straggler after unsubscribe
                continue
            stamp = epoch_and_iso(tick.time)
            t = stamp[0]
            if not EPOCH_FLOOR <= t <= horizon:  # also False for NaN
                reason = self._reject_tick(symbol, t, received_at)
                if record is not None:
                    record(symbol, t, received_at, tick.price, tick.volume, tick.cumulative_volume,
                           tick.bid, tick.ask, reason)
                continue
            if state.anchor is None:
                state.anchor = t
            aggregator = state.aggregator
            if record is not None:
                late_before, oos_before = aggregator.late_ticks, aggregator.out_of_session_ticks
            try:
                completed = aggregator.on_tick_values(t, tick.price, tick.volume)
            except InvalidInputError as exc:
                self.metrics.bad_ticks.inc()
                log.warning("tick_rejected", symbol=symbol, error=str(exc))
                if record is not None:
                    record(symbol, t, received_at, tick.price, tick.volume, tick.cumulative_volume,
                           tick.bid, tick.ask, "invalid")
                continue
            if record is not None:
                # the aggregator drops a tick from a closed minute (late) or outside every
                # session without raising; its counters say which
                why = ("late" if aggregator.late_ticks != late_before else
                       "out_of_session" if aggregator.out_of_session_ticks != oos_before else None)
                record(symbol, t, received_at, tick.price, tick.volume, tick.cumulative_volume,
                       tick.bid, tick.ask, why)
            n += 1
            state.ticks += 1
            if not state.dirty:
                state.dirty = True
                dirty[symbol] = None
            last_t = state.last_t
            if last_t is None or t >= last_t:
                state.last_t, state.last_mono = t, now_mono
            if market_t is None or t > market_t:
                market_t = self.market_t = t
            if completed:
                if quotes:  # publish order as per tick: earlier quotes before these bars
                    self.cache_writer.on_quotes(quotes)
                    quotes = []
                self._completed(state, completed)
            quotes.append((symbol, quote_payload(tick, stamp[1], received_at)))
        if n:
            self.ticks += n
            self.last_tick_mono = now_mono
        if quotes:
            self.cache_writer.on_quotes(quotes)

    def _reject_tick(self, symbol: str, t: float, now: float) -> str:
        """Count a tick with an implausible time; warn once per (symbol, reason), not per
        tick: a feed stuck on a bad clock would otherwise flood the log. Returns the reason."""
        reason = implausible_reason(t, now, self.clock_skew_s) or "future"
        self.metrics.rejected_ticks.inc(reason)
        key = (symbol, reason)
        if key not in self._rejected_logged:
            self._rejected_logged.add(key)
            try:
                when = datetime.fromtimestamp(t, UTC).isoformat()
            except (OverflowError, OSError, ValueError):
                when = repr(t)
            log.warning("tick_rejected_implausible_time", symbol=symbol, reason=reason, tick_time=when,
                        now=datetime.fromtimestamp(now, UTC).isoformat(), skew_s=self.clock_skew_s,
                        note="dropped before aggregation; counted in rejected_ticks_total, "
                             "logged once per symbol and reason")
        return reason

    def _on_reconnect(self, count: int) -> None:
        log.info("stream_reconnected", reconnects=count, note="bars in progress across the gap are stored partial")
        self._seen_reconnects = count
        for state in self.symbols.values():
            state.anchor = None

    # --- bar routing -------------------------------------------------------------------------------
    def _completed(self, state: SymbolState, bars: Iterable[Bar]) -> None:
        bars = list(bars)
        anchor = state.anchor if state.anchor is not None else float("inf")
        complete = [b for b in bars if b.time.timestamp() > anchor]
        partial = [b for b in bars if b.time.timestamp() <= anchor]
        self.metrics.bars_completed.inc(len(bars))
        if not state.session_known:
            self._hold_unaligned(state, bars)
        else:
            if complete:
                self.store_writer.put(complete, partial=False)
            if partial:
                self.store_writer.put(partial, partial=True)
        # published either way: the bucket is closed; ``partial`` tells subscribers that the
        # streamer did not watch it from its start
        self.cache_writer.on_completed(complete, partial=False)
        self.cache_writer.on_completed(partial, partial=True)

    def _hold_unaligned(self, state: SymbolState, bars: list[Bar]) -> None:
        """Bars of a symbol whose session is not in the registry yet were bucketed as 24x7;
        for an exchange session they would sit under keys history never produces (a 1h bar
        at 14:00 instead of 14:30), and no later sync would replace them. So they go to the
        live cache only, counted and warned about once per symbol, until a historical sync
        records the session and the registry poll rebuilds the aggregator."""
        self.metrics.bars_unaligned.inc(len(bars))
        if not state.extra.get("warned_unaligned"):
            state.extra["warned_unaligned"] = True
            log.warning("bars_not_stored_session_unknown", symbol=state.symbol,
                        hint="run a historical sync of the symbol; it records its session")

    def to_store_partial(self, state: SymbolState, bars: list[Bar]) -> None:
        if not bars:
            return
        if state.session_known:
            self.store_writer.put(bars, partial=True)
        else:
            self._hold_unaligned(state, bars)

    # --- periodic work -----------------------------------------------------------------------------
    def close_due_bars(self, grace_s: float = CLOSE_GRACE_S) -> int:
        """Close bars whose end has passed on their symbol's own clock (minus a grace for
        straggling ticks). Returns how many bars closed."""
        now_mono = time.monotonic()
        n = 0
        for state in list(self.symbols.values()):
            clock = state.clock(now_mono)
            if clock is None:
                continue
            closed = state.aggregator.close_due_epoch(clock - grace_s)
            if closed:
                n += len(closed)
                self._completed(state, closed)
        return n

    def push_current_bars(self) -> int:
        """Hand the in-progress bars of symbols that ticked since their last push to the cache
        writer, oldest first, at most ``max_bar_symbols_per_flush`` per flush period (building
        13 bars costs ~20 us; 1000 busy symbols every 250 ms would be 80 ms of loop time per
        second, plus their writing). A symbol left over keeps its place and goes first next period."""
        budget = self.max_bar_symbols_per_flush
        if self.cache_writer.bar_symbols_pending >= budget:
            return 0  # the writer is behind: snapshots now would only be overwritten
        pushed = 0
        for symbol in list(self.dirty):
            if pushed >= budget:
                break
            del self.dirty[symbol]
            state = self.symbols.get(symbol)
            if state is None:
                continue
            state.dirty = False
            self.cache_writer.on_current_bars(symbol, state.aggregator.current_bars().values())
            pushed += 1
        return pushed

    def flush_in_progress(self) -> int:
        """On shutdown: every in-progress bar to the store as partial. Returns how many."""
        partial = 0
        for state in self.symbols.values():
            rest = state.aggregator.flush()
            partial += len(rest)
            self.to_store_partial(state, rest)
        return partial
