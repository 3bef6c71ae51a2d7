"""Completed bars -> bar store, in batches, from a worker thread.

The BarStore API is synchronous (SQLite / pymongo), so writes happen off the event loop. Bars
wait in a dict keyed by (symbol, interval, start): a bar re-completed before its write (it
cannot normally happen, but a resubscription could) replaces the pending one instead of being
written twice. A failed write keeps the batch and retries with exponential backoff; the
buffer is bounded, and when the bound is hit the oldest bars are dropped, counted in
``bars_dropped_total`` and logged with their keys -- never silently.

Pacing: a write costs the embedded store mostly per *series* touched (it rewrites the
series' chunk), hardly per bar, and the writer shares the interpreter (GIL) with tick intake.
So after each write the worker waits ``batch_interval_s`` or, when writing took long, long
enough that writing stays under ``max_duty`` of its time (by the thread's CPU clock): under a
heavy bar flow the batches grow and each series is rewritten once per batch instead of once
per second. At ordinary rates (a few hundred bars a minute) nothing changes.

On shutdown ``stop()`` drains what is pending (complete bars first, then the in-progress bars
flushed by the service, marked ``partial=True``) within a deadline; anything still unwritten
is spilled as JSON lines next to the store so nothing accepted disappears without a trace.
"""

import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.bars import Bar, bar_to_dict
from pocketquant_pipelines.storage.bars import BarStore, Source
from streamer.metrics import StreamerMetrics

log = get_logger("streamer.store")

_BACKOFF_START_S = 0.2
_BACKOFF_MAX_S = 10.0
_MAX_PACED_WAIT_S = 30.0  # pacing never holds bars back longer than this


def _key_text(bar: Bar) -> str:
    return f"{bar.interval.value}|{bar.symbol}@{bar.time.isoformat()}"


class StoreWriter:
    def __init__(
        self, store: BarStore, metrics: StreamerMetrics, *, batch_interval_s: float = 1.0,
        max_batch: int = 50_000, max_pending: int = 500_000, spill_dir: Path | None = None,
        max_duty: float = 0.1,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.batch_interval_s = batch_interval_s
        # one upsert takes up to max_batch bars: all of a paced batch, so that each series is
        # merged once (the store's cost is per series); it also wakes the worker early
        self.max_batch = max_batch
        self.max_duty = max_duty
        self.next_wait_s = batch_interval_s  # the worker's current pause between writes
        self.max_pending = max_pending
        self.spill_dir = spill_dir
        # key -> (bar, partial). dicts keep insertion order: oldest first.
        self._pending: dict[tuple, tuple[Bar, bool]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.healthy = True            # last write attempt succeeded (or none failed yet)
        self.last_error: str | None = None
        self._failing_since: float | None = None

    # --- producer side (event loop) ---------------------------------------------------------
    def put(self, bars: Iterable[Bar], partial: bool = False) -> None:
        dropped: list[Bar] = []
        with self._lock:
            for bar in bars:
                key = bar.key
                old = self._pending.pop(key, None)
                # a complete bar always wins over a partial one of the same key
                self._pending[key] = (bar, partial and (old is None or old[1]))
            while len(self._pending) > self.max_pending:
                _, (bar, _) = next(iter(self._pending.items()))
                del self._pending[bar.key]
                dropped.append(bar)
        if dropped:
            self.metrics.bars_dropped.inc(len(dropped))
            log.error("store_buffer_full_bars_dropped", count=len(dropped), bound=self.max_pending,
                      oldest=_key_text(dropped[0]), newest=_key_text(dropped[-1]))
        if self._pending and len(self._pending) >= self.max_batch:
            self._wake.set()

    @property
    def depth(self) -> int:
        return len(self._pending)

    # --- worker ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        backoff = _BACKOFF_START_S
        while not self._stopping.is_set():
            self._wake.wait(self.next_wait_s)
            self._wake.clear()
            cpu = time.thread_time()
            while self._pending and not self._stopping.is_set():
                if self.write_once():
                    backoff = _BACKOFF_START_S
                else:
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX_S)
                    break
            self.next_wait_s = self.paced_wait(time.thread_time() - cpu)

    def paced_wait(self, write_cpu_s: float) -> float:
        """The pause after a write that took ``write_cpu_s`` of CPU: the batch interval, or
        longer so that writing stays under ``max_duty`` of the time (at most 30 s)."""
        paced = write_cpu_s * (1 - self.max_duty) / self.max_duty
        return max(self.batch_interval_s, min(paced, _MAX_PACED_WAIT_S))

    def _take_batch(self) -> list[tuple[Bar, bool]]:
        with self._lock:
            items = list(self._pending.values())[: self.max_batch]
        return items

    def write_once(self) -> bool:
        """Write one batch of pending bars; True on success (or nothing to do)."""
        batch = self._take_batch()
        if not batch:
            return True
        complete = [b for b, p in batch if not p]
        partial = [b for b, p in batch if p]
        started = time.perf_counter()
        try:
            if complete:
                self.store.upsert_bars(complete, source=Source.STREAM, partial=False)
            if partial:
                self.store.upsert_bars(partial, source=Source.STREAM, partial=True)
        except Exception as exc:  # noqa: BLE001 - any backend failure: keep the bars, retry
            self.metrics.store_errors.inc()
            self.last_error = f"{type(exc).__name__}: {exc}"
            if self.healthy:  # log once when a failure streak starts, then on recovery
                log.error("store_write_failed", error=self.last_error, pending=self.depth, will_retry=True)
                self._failing_since = time.monotonic()
            self.healthy = False
            return False
        self.metrics.store_write_seconds.observe(time.perf_counter() - started)
        with self._lock:
            for bar, p in batch:
                current = self._pending.get(bar.key)
                # remove only if not replaced meanwhile by a newer version of the key
                if current is not None and current[0] is bar and current[1] == p:
                    del self._pending[bar.key]
        self.metrics.bars_written.inc(len(batch))
        self.metrics.partial_bars_written.inc(len(partial))
        if not self.healthy:
            log.info("store_write_recovered", after_s=round(time.monotonic() - (self._failing_since or 0), 3),
                     pending=self.depth)
        self.healthy = True
        self.last_error = None
        return True

    def stop(self, deadline_s: float = 5.0) -> int:
        """Stop the worker, then drain synchronously until empty or the deadline. Returns the
        number of bars left unwritten (spilled to a file when ``spill_dir`` is set)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=deadline_s)
        deadline = time.monotonic() + deadline_s
        while self._pending and time.monotonic() < deadline:
            if not self.write_once():
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        left = self.depth
        if left:
            path = self._spill()
            log.error("store_unwritten_at_shutdown", count=left, spilled_to=str(path) if path else None)
        return left

    def _spill(self) -> Path | None:
        if self.spill_dir is None:
            return None
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        path = self.spill_dir / f"streamer-unwritten-{int(time.time())}.jsonl"
        with self._lock, path.open("a") as fh:
            for bar, partial in self._pending.values():
                fh.write(json.dumps({**bar_to_dict(bar), "partial": partial, "source": "stream"}) + "\n")
        return path
