"""Prometheus text exposition (format 0.0.4) without a client library.

The streamer needs a handful of counters, gauges and one latency histogram; prometheus_client
is not a dependency, and the text format is small and stable. Counters are bumped from the
event loop and from the writer threads: ``+=`` on an attribute is not atomic across threads,
so each metric carries a lock (uncontended locks cost ~50 ns, far below a tick's budget).
"""

import math
import threading
from collections.abc import Callable, Iterable


def _fmt(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class Counter:
    kind = "counter"

    def __init__(self, name: str, help_text: str):
        self.name, self.help = name, help_text
        self._value = 0.0
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self._value += amount

    @property
    def value(self) -> float:
        return self._value

    def samples(self) -> Iterable[str]:
        yield f"{self.name} {_fmt(self._value)}"


class LabelledCounter:
    """A counter split by one label whose values are known up front (all exported from the
    start, zeros included, so a rate() over them never starts from a missing series)."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, label: str, values: Iterable[str]):
        self.name, self.help, self.label = name, help_text, label
        self._values = {v: 0.0 for v in values}
        self._lock = threading.Lock()

    def inc(self, value: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[value] = self._values.get(value, 0.0) + amount

    def get(self, value: str) -> float:
        return self._values.get(value, 0.0)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {k: int(v) for k, v in self._values.items()}

    def samples(self) -> Iterable[str]:
        with self._lock:
            items = list(self._values.items())
        for value, count in items:
            yield f'{self.name}{{{self.label}="{value}"}} {_fmt(count)}'


class Gauge:
    """A gauge whose value is read at scrape time from ``fn`` (no bookkeeping on the hot path)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, fn: Callable[[], float | None]):
        self.name, self.help, self._fn = name, help_text, fn

    @property
    def value(self) -> float | None:
        return self._fn()

    def samples(self) -> Iterable[str]:
        value = self._fn()
        if value is not None:
            yield f"{self.name} {_fmt(value)}"


class CounterFn(Gauge):
    """A counter owned by another component (aggregator late ticks, client reconnects)."""

    kind = "counter"


class Histogram:
    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Iterable[float]):
        self.name, self.help = name, help_text
        self.buckets = tuple(sorted(buckets)) + (math.inf,)
        self._counts = [0] * len(self.buckets)
        self._sum = 0.0
        self._count = 0
        self._lock = threading.Lock()

    def observe(self, value: float, count: int = 1) -> None:
        """Record ``count`` observations of ``value``."""
        with self._lock:
            self._sum += value * count
            self._count += count
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    self._counts[i] += count
                    break

    @property
    def count(self) -> int:
        return self._count

    def samples(self) -> Iterable[str]:
        with self._lock:
            counts, total, n = list(self._counts), self._sum, self._count
        cumulative = 0
        for bound, c in zip(self.buckets, counts, strict=True):
            cumulative += c
            yield f'{self.name}_bucket{{le="{_fmt(bound)}"}} {cumulative}'
        yield f"{self.name}_sum {_fmt(total)}"
        yield f"{self.name}_count {n}"


class Registry:
    def __init__(self, prefix: str = "pocketquant_streamer_"):
        self.prefix = prefix
        self._metrics: list = []

    def counter(self, name: str, help_text: str) -> Counter:
        return self._add(Counter(self.prefix + name, help_text))

    def labelled_counter(self, name: str, help_text: str, label: str, values: Iterable[str]) -> LabelledCounter:
        return self._add(LabelledCounter(self.prefix + name, help_text, label, values))

    def gauge(self, name: str, help_text: str, fn: Callable[[], float | None]) -> Gauge:
        return self._add(Gauge(self.prefix + name, help_text, fn))

    def counter_fn(self, name: str, help_text: str, fn: Callable[[], float | None]) -> CounterFn:
        return self._add(CounterFn(self.prefix + name, help_text, fn))

    def histogram(self, name: str, help_text: str, buckets: Iterable[float]) -> Histogram:
        return self._add(Histogram(self.prefix + name, help_text, buckets))

    def _add(self, metric):
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for m in self._metrics:
            lines.append(f"# HELP {m.name} {m.help}")
            lines.append(f"# TYPE {m.name} {m.kind}")
            lines.extend(m.samples())
        return "\n".join(lines) + "\n"


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class StreamerMetrics:
    """Every metric the streamer exports. Names (without the prefix) are listed in
    docs/streamer.md; gauges read live state through callables bound by the service."""

    def __init__(self) -> None:
        r = self.registry = Registry()
        self.bars_completed = r.counter("bars_completed_total", "Bars the aggregators completed.")
        self.bars_written = r.counter("bars_written_total", "Bars upserted into the bar store (complete and partial).")
        self.partial_bars_written = r.counter("partial_bars_written_total", "Bars upserted with partial=True.")
        self.bars_dropped = r.counter("bars_dropped_total", "Completed bars dropped because the store buffer bound was hit (logged).")
        self.store_errors = r.counter("store_write_errors_total", "Failed bar store write attempts (each retried).")
        self.store_write_seconds = r.histogram("store_write_seconds", "Duration of one bar store batch upsert.", LATENCY_BUCKETS)
        self.cache_errors = r.counter("cache_errors_total", "Failed live cache write rounds.")
        self.cache_outages = r.counter("cache_outages_total", "Live cache outages (one per outage, not per write).")
        self.quotes_published = r.counter("quotes_published_total", "Quotes published on pq:quotes:<symbol>.")
        self.bars_published = r.counter("bars_published_total", "Completed bars published on pq:bars:<symbol>:<interval>.")
        self.publishes_dropped = r.counter("publishes_dropped_total", "Pub/sub messages not sent because the live cache was down.")
        self.tick_to_cache_seconds = r.histogram(
            "tick_to_cache_seconds", "Tick receipt to its quote being written to the live cache.", LATENCY_BUCKETS)
        self.cache_round_seconds = r.histogram(
            "cache_round_seconds", "Duration of one live cache write round (pipelined).", LATENCY_BUCKETS)
        self.bars_unaligned = r.counter(
            "bars_not_stored_session_unknown_total",
            "Bars of symbols whose session is not in the registry yet: live cache only, not stored.")
        self.bad_ticks = r.counter("bad_ticks_total", "Ticks rejected by the aggregator (invalid values), logged and skipped.")
        self.rejected_ticks = r.labelled_counter(
            "rejected_ticks_total",
            "Ticks dated after now + POCKETQUANT_CLOCK_SKEW_S or before the epoch: dropped before aggregation.",
            "reason", ("future", "before_epoch"))
