"""The streamer's Prometheus metrics on prometheus-client.

The counters, their thread safety (they are bumped from the event loop and from the writer
threads), the registry and the collection are prometheus-client's. Three things are this
module's:

* the latency histograms count equal observations in one call (``observe(value, count)``:
  the quotes of one message share their receive stamp) and are collected as prometheus-client
  histogram families; the library's Histogram observes one value at a time, ~2 us each,
  which per quote would add half again to the cache writer's cost;
* values owned by other components (aggregator late ticks, client reconnects, queue depths)
  are read at scrape time through callables, by one collector, so the hot path keeps no
  second copy of them; a callable returning None leaves its gauge out (e.g. the last tick's
  age before the first tick);
* the text is rendered here from the collected samples, in format 0.0.4 as before the move to
  prometheus-client: integral values without ``.0`` and histogram bounds as ``le="5"``, not
  the library's ``le="5.0"`` -- the ``le`` value is a label, and dashboards and recording
  rules written against the old series match on it. The ``_created`` series are left out,
  as before.
"""

import math
import threading
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as _Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

PREFIX = "pocketquant_streamer_"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _fmt(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class Counter:
    def __init__(self, registry: CollectorRegistry, name: str, help_text: str) -> None:
        self._metric = _Counter(name, help_text, registry=registry)
        self._registry, self._sample = registry, name
        self.inc = self._metric.inc

    @property
    def value(self) -> float:
        return self._registry.get_sample_value(self._sample) or 0.0


class LabelledCounter:
    """A counter split by one label whose values are known up front (all exported from the
    start, zeros included, so a rate() over them never starts from a missing series)."""

    def __init__(self, registry: CollectorRegistry, name: str, help_text: str, label: str,
                 values: Iterable[str]) -> None:
        self._metric = _Counter(name, help_text, [label], registry=registry)
        self._children = {v: self._metric.labels(v) for v in values}
        self._registry, self._sample, self.label = registry, name, label

    def inc(self, value: str, amount: float = 1.0) -> None:
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = self._metric.labels(value)
        child.inc(amount)

    def get(self, value: str) -> float:
        return self._registry.get_sample_value(self._sample, {self.label: value}) or 0.0

    def as_dict(self) -> dict[str, int]:
        return {v: int(self.get(v)) for v in list(self._children)}


class Histogram(Collector):
    """A histogram that records ``count`` equal observations in one call: the quotes of one
    message share their receive stamp, and prometheus-client's Histogram.observe takes one
    value at a time (~2 us each, a cost per quote in the cache writer's thread). Collected
    as a prometheus-client HistogramMetricFamily."""

    def __init__(self, registry: CollectorRegistry, name: str, help_text: str, buckets: Iterable[float]) -> None:
        self.name, self.help = name, help_text
        self.buckets = tuple(sorted(buckets)) + (math.inf,)
        self._counts = [0] * len(self.buckets)
        self._sum = 0.0
        self._count = 0
        self._lock = threading.Lock()  # observed from the writer threads
        registry.register(self)

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

    def collect(self):
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, c in zip(self.buckets, counts, strict=True):
            cumulative += c
            buckets.append((_fmt(bound), cumulative))
        family = HistogramMetricFamily(self.name, self.help)
        family.add_metric([], buckets, total)
        yield family


class LiveValues(Collector):
    """Gauges and counters whose values other components own, read at scrape time."""

    def __init__(self) -> None:
        self._entries: list[tuple[str, str, str, Callable[[], float | None]]] = []

    def add(self, kind: str, name: str, help_text: str, fn: Callable[[], float | None]) -> None:
        self._entries.append((kind, name, help_text, fn))

    def collect(self):
        for kind, name, help_text, fn in self._entries:
            family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, help_text)
            value = fn()
            if value is not None:
                family.add_metric([], float(value))
            yield family


class Registry:
    """The streamer's CollectorRegistry, with the prefix applied and the text rendering."""

    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self.collectors = CollectorRegistry(auto_describe=True)
        self._live = LiveValues()
        self.collectors.register(self._live)

    def counter(self, name: str, help_text: str) -> Counter:
        return Counter(self.collectors, self.prefix + name, help_text)

    def labelled_counter(self, name: str, help_text: str, label: str, values: Iterable[str]) -> LabelledCounter:
        return LabelledCounter(self.collectors, self.prefix + name, help_text, label, values)

    def histogram(self, name: str, help_text: str, buckets: Iterable[float]) -> Histogram:
        return Histogram(self.collectors, self.prefix + name, help_text, buckets)

    def gauge(self, name: str, help_text: str, fn: Callable[[], float | None]) -> None:
        self._live.add("gauge", self.prefix + name, help_text, fn)

    def counter_fn(self, name: str, help_text: str, fn: Callable[[], float | None]) -> None:
        self._live.add("counter", self.prefix + name, help_text, fn)

    def render(self) -> str:
        lines: list[str] = []
        for family in self.collectors.collect():
            name = family.name + "_total" if family.type == "counter" else family.name
            help_text = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {family.type}")
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                labels = ""
                if sample.labels:
                    labels = "{" + ",".join(
                        f'{k}="{_fmt(float(v)) if k == "le" else _escape(v)}"' for k, v in sample.labels.items()
                    ) + "}"
                lines.append(f"{sample.name}{labels} {_fmt(sample.value)}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


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
