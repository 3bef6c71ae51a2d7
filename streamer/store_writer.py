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

Full disk (see ``streamer.disk``): a write failing for lack of space is logged once as
``store_disk_full`` (then ``store_write_recovered``), the bars stay in memory (bounded by
``max_pending``) and the write is retried with backoff; ``disk_full`` is True meanwhile, so
the cache writer holds back and space freed on the disk goes to the bar store first. The
spill needs space exactly when there is none, so ``prepare()`` reserves it at start
(``streamer-spill.reserve``, allocated with posix_fallocate); at shutdown the spill is written
*into* that file (its blocks exist, nothing to allocate), cut to length, fsynced and renamed.
Without a reservation, or for what does not fit, the spill is written atomically (temp file,
fsync, rename). Either way the file is read back and compared with what was meant to be
written. ``prepare()`` also loads the spill files a previous run left and writes them to the
store before deleting them.
"""

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.bars import Bar, bar_from_dict, bar_to_dict
from pocketquant_pipelines.storage.bars import BarStore, Source
from streamer.disk import (
    DiskFullError, is_disk_full, reserve, write_atomically, write_into_reservation,
)
from streamer.metrics import StreamerMetrics

log = get_logger("streamer.store")

_BACKOFF_START_S = 0.2
_BACKOFF_MAX_S = 10.0
_MAX_PACED_WAIT_S = 30.0  # pacing never holds bars back longer than this
SPILL_RESERVE_BYTES = 8 << 20  # ~40k bars of JSON lines (a bar is ~200 bytes)
RESERVATION_NAME = "streamer-spill.reserve"
SPILL_GLOB = "streamer-unwritten-*.jsonl"


def _key_text(bar: Bar) -> str:
    return f"{bar.interval.value}|{bar.symbol}@{bar.time.isoformat()}"


class StoreWriter:
    def __init__(
        self, store: BarStore, metrics: StreamerMetrics, *, batch_interval_s: float = 1.0,
        max_batch: int = 50_000, max_pending: int = 500_000, spill_dir: Path | None = None,
        max_duty: float = 0.1, spill_reserve_bytes: int = SPILL_RESERVE_BYTES,
        reservation_name: str = RESERVATION_NAME,
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
        # one reservation per process: replicas sharing a data directory must not share one
        self.reservation_name = reservation_name
        # key -> (bar, partial). dicts keep insertion order: oldest first.
        self._pending: dict[tuple, tuple[Bar, bool]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.healthy = True            # last write attempt succeeded (or none failed yet)
        self.last_error: str | None = None
        self._failing_since: float | None = None
        self.disk_full = False         # the current failure streak is a full disk
        self.spill_reserve_bytes = spill_reserve_bytes
        self.reservation: Path | None = None
        self._recovered: list[Path] = []  # spill files of earlier runs, deleted once written
        # side writes after the bars pending when they were queued are in the store
        # (heartbeats must never claim bars that are not stored): (callable, pending keys)
        self._after_bars: list[tuple[Callable[[], None], set]] = []

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
            if not self._pending and self._after_bars:
                self._run_after_bars()
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
            full = is_disk_full(exc)
            if self.healthy or full != self.disk_full:  # log once per streak, then on recovery
                if full:
                    log.error("store_disk_full", store=repr(self.store), error=self.last_error,
                              pending=self.depth, bound=self.max_pending, will_retry=True,
                              note="bars kept in memory; the live cache holds back until the store writes again")
                else:
                    log.error("store_write_failed", error=self.last_error, pending=self.depth, will_retry=True)
                self._failing_since = self._failing_since or time.monotonic()
            self.disk_full = full
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
                     pending=self.depth, was_disk_full=self.disk_full)
        self.healthy = True
        self.disk_full = False
        self._failing_since = None
        self.last_error = None
        self._run_after_bars()
        if self._recovered and not self._pending:
            self._forget_recovered()
        return True

    # --- writes that must follow the bars ----------------------------------------------------
    def after_bars(self, write: Callable[[], None]) -> None:
        """Run ``write`` on the writer thread once every bar pending now is in the store."""
        with self._lock:
            keys = set(self._pending)
            self._after_bars.append((write, keys))
            del self._after_bars[:-64]  # a stalled store keeps the newest few only
        if not keys:
            self._wake.set()

    def _run_after_bars(self) -> None:
        with self._lock:
            ready = [w for w, keys in self._after_bars if not (keys & self._pending.keys())]
            self._after_bars = [(w, k) for w, k in self._after_bars if k & self._pending.keys()]
        for write in ready:
            try:
                write()
            except Exception as exc:  # noqa: BLE001 - a side record is retried at its next turn
                log.warning("store_side_write_failed", error=f"{type(exc).__name__}: {exc}",
                            disk_full=is_disk_full(exc))

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
            spilled, where = self._spill()
            log.error("store_unwritten_at_shutdown", count=left, spilled=spilled, spilled_to=where,
                      lost=left - spilled, disk_full=self.disk_full)
        elif self.reservation is not None:
            self._release_reservation()
        return left

    # --- start: reservation and recovery -----------------------------------------------------
    def prepare(self) -> int:
        """Reserve the spill space and load the spill files of earlier runs; returns the
        number of bars loaded. DiskFullError when the reservation cannot be had."""
        if self.spill_dir is None:
            return 0
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        loaded = self._load_spills()
        if self.spill_reserve_bytes > 0:
            path = self.spill_dir / self.reservation_name
            reserve(path, self.spill_reserve_bytes)
            self.reservation = path
        return loaded

    def _load_spills(self) -> int:
        loaded = 0
        for path in sorted(self.spill_dir.glob(SPILL_GLOB)):
            complete: list[Bar] = []
            partial: list[Bar] = []
            bad = 0
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    (partial if row.get("partial") else complete).append(bar_from_dict(row))
                except (ValueError, KeyError, TypeError):
                    bad += 1
            if bad:  # keep the file for a person to look at; do not read it again
                kept = path.with_suffix(".unreadable")
                os.replace(path, kept)
                log.error("spill_file_unreadable", path=str(kept), bad_lines=bad,
                          loaded=len(complete) + len(partial))
            else:
                self._recovered.append(path)
            self.put(complete)
            self.put(partial, partial=True)
            loaded += len(complete) + len(partial)
        if loaded:
            log.info("spilled_bars_loaded", count=loaded, files=len(self._recovered),
                     note="written to the store first; the files are deleted once they are")
        return loaded

    def _forget_recovered(self) -> None:
        for path in self._recovered:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        log.info("spilled_bars_written", files=len(self._recovered))
        self._recovered = []

    def _release_reservation(self) -> None:
        try:
            self.reservation.unlink()
        except FileNotFoundError:
            pass
        self.reservation = None

    # --- shutdown: the spill -----------------------------------------------------------------
    def _spill_lines(self) -> list[bytes]:
        with self._lock:
            items = list(self._pending.values())
        return [(json.dumps({**bar_to_dict(bar), "partial": partial, "source": "stream"}) + "\n").encode()
                for bar, partial in items]

    def _spill(self) -> tuple[int, str | None]:
        """Write the pending bars to spill files; (bars spilled and verified, where)."""
        if self.spill_dir is None:
            return 0, None
        try:
            self.spill_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.error("spill_failed", path=str(self.spill_dir), bars=self.depth, error=str(exc))
            return 0, None
        lines = self._spill_lines()
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        target = self.spill_dir / f"streamer-unwritten-{stamp}-{os.getpid()}.jsonl"
        try:
            reserved = self.reservation.stat().st_size if self.reservation is not None else 0
        except OSError:  # removed under us: write atomically instead
            self.reservation, reserved = None, 0
        first, rest, size = [], [], 0
        for line in lines:
            if not rest and size + len(line) <= reserved:
                first.append(line)
                size += len(line)
            else:
                rest.append(line)
        spilled, places = 0, []
        if first:
            try:
                write_into_reservation(self.reservation, target, b"".join(first))
                self.reservation = None
                spilled += self._verify(target, first)
                places.append(str(target))
            except OSError as exc:
                log.error("spill_failed", path=str(target), bars=len(first), error=str(exc))
                rest = first + rest
        if rest:
            overflow = target.with_name(target.stem + "-overflow.jsonl") if first and spilled else target
            try:
                write_atomically(overflow, b"".join(rest))
                spilled += self._verify(overflow, rest)
                places.append(str(overflow))
            except OSError as exc:
                log.error("spill_failed", path=str(overflow), bars=len(rest),
                          error=str(DiskFullError(f"no space for {len(rest)} bars at {overflow}"))
                          if is_disk_full(exc) else str(exc))
        if self.reservation is not None:
            self._release_reservation()
        return spilled, ", ".join(places) or None

    @staticmethod
    def _verify(path: Path, lines: list[bytes]) -> int:
        """Read the spill back: the bars spilled when it holds exactly ``lines``, else 0."""
        data = path.read_bytes()
        if data != b"".join(lines):
            log.error("spill_verify_failed", path=str(path), expected_bytes=sum(map(len, lines)),
                      found_bytes=len(data))
            return 0
        return len(lines)
