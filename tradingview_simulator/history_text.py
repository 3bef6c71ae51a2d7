"""JSON text of history frames (``timescale_update``) composed from cached per-bar fragments.

Why: building a 5000-bar ``timescale_update`` as a dict and ``json.dumps``-ing it costs ~25 ms
of server CPU per request (~17 ms of float repr, ~6 ms of a zone-aware ``fromtimestamp`` per
bar for the time-scale marks), so a benchmark against the simulator would mostly time the
simulator's JSON encoder. A real server keeps its history encoded; so does this module. Per
(symbol model, interval) it keeps, for each complete bar already sent, the bar's JSON fragments
(``t,o,h,l,c(,v)``, its ``changes`` time, its mark stamp) and its exchange-local date facts, and
joins them into a frame with string joins: a warm 5000-bar request costs ~2 ms.

The text is byte-identical to ``json_text`` of what :func:`payloads.series_payload` and
:func:`payloads.timescale_marks` build (the reference, compared in
tests/simulator/test_history_text.py): every fragment is cut out of that same ``json_text``
output, and the mark weights follow the same rules, vectorised.

A cached bar is used only if its time *and* integer values equal the bar being sent (one numpy
comparison per request), so a bar still forming is never served stale; the last bar of a
request, the one that may be forming, is not stored at all.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections import OrderedDict
from datetime import date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.sessions import bar_end
from pocketquant_pipelines.market.timeutil import from_epoch
from pocketquant_pipelines.market.bar_columns import BarColumns
from tradingview_simulator.payloads import NODE, bar_values, json_text
from tradingview_simulator.symbol_model import SymbolModel
from tradingview_simulator.unit_bars import take

if TYPE_CHECKING:
    from tradingview_simulator.connection_state import SeriesState

# Memory bound: a cached bar costs ~350 bytes (three str fragments, values, date facts), so
# 150_000 bars is ~50 MB: thirty 5000-bar histories. One (model, interval) keeps at most
# 25_000 bars (a paid 20_000-bar history plus live growth), the newest; the least recently
# used (model, interval) is evicted first.
MAX_ROWS = 150_000
MAX_ENTRY_ROWS = 25_000
_INDEX_TABLE_MAX = 1 << 17  # index fragments are tabled up to here, formatted beyond

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_ORD, _YEAR, _MONTH, _WEEK, _MINUTE = range(5)  # columns of the date facts
_MARK_HEAD = np.array([",[%d," % w for w in range(71)], dtype=object)  # by weight


class _Fragments:
    """Per bar: row text ``t,o,h,l,c(,v)``, ``changes`` text, mark stamp text, date facts."""

    __slots__ = ("times", "vals", "rows", "changes", "stamps", "facts")

    def __init__(self, times, vals, rows, changes, stamps, facts):
        self.times = times      # int64 (n,)
        self.vals = vals        # float64 (n, 6): time, o, h, l, c, v (NaN volume as -1): the cache key
        self.rows = rows        # object (n,) of str
        self.changes = changes  # object (n,) of str
        self.stamps = stamps    # object (n,) of str
        self.facts = facts      # int64 (n, 5): local date ordinal, year, month, ISO week, minute

    def __len__(self) -> int:
        return int(self.times.shape[0])

    def take(self, idx) -> "_Fragments":
        return _Fragments(*(getattr(self, name)[idx] for name in self.__slots__))

    @staticmethod
    def concat(parts: list["_Fragments"]) -> "_Fragments":
        return _Fragments(*(np.concatenate([getattr(p, name) for p in parts]) for name in _Fragments.__slots__))


def _objects(items: list[str]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _date_facts(zone: ZoneInfo, times: list[int]) -> np.ndarray:
    """Local date ordinal, year, month, ISO week number and minute of each time: what
    ``timescale_marks`` reads off ``datetime.fromtimestamp(t, zone)`` (exact, DST included)."""
    n = len(times)
    facts = np.empty((n, 5), dtype=np.int64)
    if not n:
        return facts
    local = [datetime.fromtimestamp(t, zone) for t in times]
    facts[:, _ORD] = [d.toordinal() for d in local]
    facts[:, _MINUTE] = [d.minute for d in local]
    days, inverse = np.unique(facts[:, _ORD], return_inverse=True)
    per_day = [date.fromordinal(int(o)) for o in days]  # a few per thousand bars
    facts[:, _YEAR] = np.asarray([d.year for d in per_day], dtype=np.int64)[inverse]
    facts[:, _MONTH] = np.asarray([d.month for d in per_day], dtype=np.int64)[inverse]
    facts[:, _WEEK] = np.asarray([d.isocalendar()[1] for d in per_day], dtype=np.int64)[inverse]
    return facts


def _mark_parts(zone: ZoneInfo, times: np.ndarray, intraday: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(changes texts, stamp texts, date facts) of ``times``, computed from scratch."""
    listed = times.tolist()
    facts = _date_facts(zone, listed)
    changes = json_text([float(t) for t in listed])[1:-1].split(",") if listed else []
    # Daily and longer marks carry 00:00 UTC of the exchange-local date.
    stamps = listed if intraday else ((facts[:, _ORD] - _EPOCH_ORDINAL) * 86_400).tolist()
    return _objects(changes), _objects([str(s) for s in stamps]), facts


def _key_rows(bars: BarColumns) -> np.ndarray:
    """What a cached bar must equal to be reused: its time and every value."""
    return np.column_stack((bars.time, bars.open, bars.high, bars.low, bars.close,
                            np.nan_to_num(bars.volume, nan=-1.0)))


def _fresh(model: SymbolModel, interval: Interval, bars: BarColumns, vals: np.ndarray) -> _Fragments:
    """Fragments of ``bars`` from scratch: cut out of the reference ``json_text`` of the rows."""
    n = len(bars)
    times = bars.time.astype(np.int64)
    rows = json_text(bar_values(model.spec, bars))[2:-2].split("],[") if n else []
    changes, stamps, facts = _mark_parts(ZoneInfo(model.spec.timezone), times, interval.is_intraday)
    return _Fragments(times, vals, _objects(rows), changes, stamps, facts)


def _weights(facts: np.ndarray) -> np.ndarray:
    """``timescale_marks``' weights, vectorised. Its if/elif chain picks the first true rule of
    year, month, ISO week number, day, minute; writing the rules lowest priority first, each
    overwriting, gives the same result."""
    minute = facts[:, _MINUTE]
    w = np.where(minute == 0, 30, np.where(minute % 15 == 0, 22, np.where(minute % 5 == 0, 21, 20)))
    for col, weight in ((_ORD, 40), (_WEEK, 50), (_MONTH, 60), (_YEAR, 70)):
        w[1:][facts[1:, col] != facts[:-1, col]] = weight
    if len(w):
        w[0] = 70  # the first bar of every batch
    return w


# --------------------------------------------------------------------------- the cache


class FragmentCache:
    """(model token, interval) -> _Fragments sorted by time, LRU-ordered, thread-safe (servers
    in several threads may share a process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: OrderedDict[tuple[int, Interval], _Fragments] = OrderedDict()
        self.tokens: weakref.WeakKeyDictionary[SymbolModel, int] = weakref.WeakKeyDictionary()
        self.dead: list[int] = []  # tokens of collected models; purged under the lock
        self.counter = itertools.count(1)

    def _token(self, model: SymbolModel) -> int:
        # Not id(model): ids are reused after collection; tokens never are.
        token = self.tokens.get(model)
        if token is None:
            token = self.tokens[model] = next(self.counter)
            # The finalizer may run inside our own locked section (GC): it only appends.
            weakref.finalize(model, self.dead.append, token)
        return token

    def fragments(self, model: SymbolModel, interval: Interval, bars: BarColumns) -> _Fragments:
        """The batch's fragments: cached where time and values match, the rest from scratch
        (then stored, except the batch's last bar)."""
        n = len(bars)
        vals = _key_rows(bars)
        with self.lock:
            self._purge()
            key = (self._token(model), interval)
            entry = self.entries.get(key)
            if entry is not None:
                self.entries.move_to_end(key)
            if entry is not None and len(entry) and n:
                pos = np.minimum(np.searchsorted(entry.times, bars.time), len(entry) - 1)
                hit = (entry.vals[pos] == vals).all(axis=1)  # column 0 is the time
            else:
                pos, hit = None, np.zeros(n, dtype=bool)
            if hit.all():
                return entry.take(pos) if pos is not None else _fresh(model, interval, bars, vals)
            miss = np.flatnonzero(~hit)
            fresh = _fresh(model, interval, take(bars, miss), vals[miss])
            if pos is None:
                out = fresh
            else:
                out = entry.take(pos)
                for name in _Fragments.__slots__:
                    getattr(out, name)[miss] = getattr(fresh, name)
            keep = miss < n - 1  # the last bar may still be forming: not stored
            if keep.any():
                self._store(key, entry, fresh.take(keep))
            return out

    def _store(self, key, entry: _Fragments | None, new: _Fragments) -> None:
        if entry is None or not len(entry):
            merged = new
        elif new.times[0] > entry.times[-1]:
            merged = _Fragments.concat([entry, new])   # live growth
        elif new.times[-1] < entry.times[0]:
            merged = _Fragments.concat([new, entry])   # request_more_data pages
        else:
            old = entry.take(~np.isin(entry.times, new.times))  # replaced, if values differ
            merged = _Fragments.concat([old, new])
            merged = merged.take(np.argsort(merged.times, kind="stable"))
        if len(merged) > MAX_ENTRY_ROWS:
            # Fancy indexing copies: a slice's view would keep every trimmed str alive.
            merged = merged.take(np.arange(len(merged) - MAX_ENTRY_ROWS, len(merged)))
        self.entries[key] = merged
        self.entries.move_to_end(key)
        total = sum(len(e) for e in self.entries.values())
        while total > MAX_ROWS and len(self.entries) > 1:
            _, evicted = self.entries.popitem(last=False)
            total -= len(evicted)

    def _purge(self) -> None:
        while self.dead:
            token = self.dead.pop()
            for key in [k for k in self.entries if k[0] == token]:
                del self.entries[key]

    def rows(self) -> int:
        with self.lock:
            return sum(len(e) for e in self.entries.values())

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


CACHE = FragmentCache()


# --------------------------------------------------------------------------- composition


class _IndexTable:
    """``fmt % i`` for i = 0, 1, ...: tabled once (grown on demand) instead of formatted
    per bar per request."""

    def __init__(self, fmt: str):
        self.fmt = fmt
        self.items: list[str] = []
        self.lock = threading.Lock()

    def get(self, lo: int, hi: int) -> list[str]:
        if hi > len(self.items):
            if hi > _INDEX_TABLE_MAX:
                return [self.fmt % i for i in range(lo, hi)]
            with self.lock:
                have = len(self.items)
                if hi > have:
                    top = min(_INDEX_TABLE_MAX, max(hi, 2 * have, 1024))
                    self.items.extend(self.fmt % i for i in range(have, top))
        return self.items[lo:hi]


_ENTRY_SEP = _IndexTable(']},{"i":%d,"v":[')   # closes bar i-1's entry, opens bar i's
_MARK_TAIL = _IndexTable(",%d]")


def _entries_text(rows: list[str], first: int) -> str:
    """``{"i":first,"v":[row]},{"i":first+1,...}`` (the body of ``"s":[...]``)."""
    n = len(rows)
    if not n:
        return ""
    parts: list[str] = [""] * (2 * n + 1)
    parts[0] = '{"i":%d,"v":[' % first
    parts[1:2 * n:2] = rows
    parts[2:2 * n:2] = _ENTRY_SEP.get(first + 1, first + n)
    parts[2 * n] = "]}"
    return "".join(parts)


def _marks_text(frag_changes: list[str], stamps: list[str], facts: np.ndarray, first: int) -> str:
    """The third timescale_update element, as ``json_text(timescale_marks(...))`` writes it."""
    n = len(stamps)
    if n:
        parts: list[str] = [""] * (3 * n)
        parts[0::3] = _MARK_HEAD[_weights(facts)].tolist()
        parts[1::3] = stamps
        parts[2::3] = _MARK_TAIL.get(first, first + n)
        marks = "".join(parts)[1:]
    else:
        marks = ""
    return ('{"index":%d,"zoffset":0,"changes":[' % first + ",".join(frag_changes)
            + '],"marks":[' + marks + '],"index_diff":[]}')


def history_params(series: SeriesState, bars: BarColumns, first_index: int) -> tuple[str, str]:
    """JSON texts of a history ``timescale_update``'s p[1] and p[2]: equal to
    ``json_text(series_payload(series, bars, first_index))`` and
    ``json_text(timescale_marks(series.model, bars, first_index, series.interval))``."""
    model = series.model
    frag = CACHE.fragments(model, series.interval, bars)
    lbs = ""
    if series.last_time is not None and series.loaded:
        close = bar_end(from_epoch(series.last_time), series.interval, model.session)
        lbs = ',"lbs":{"bar_close_time":%d}' % int(close.timestamp())
    body = ('{"node":' + json_text(f"{NODE}-runner-1") + ',"s":[' + _entries_text(frag.rows.tolist(), first_index)
            + '],"ns":{"d":"","indexes":[]},"t":' + json_text(series.turnaround) + lbs + "}")
    series_text = "{" + json_text(series.sid) + ":" + body + "}"
    return series_text, _marks_text(frag.changes.tolist(), frag.stamps.tolist(), frag.facts, first_index)


def future_marks_text(model: SymbolModel, times: np.ndarray, first_index: int, interval: Interval) -> str:
    """Marks of future bar times (request_more_tickmarks): not bars, so not cached; equal to
    ``json_text(timescale_marks(model, <bars at times>, first_index, interval))``."""
    changes, stamps, facts = _mark_parts(ZoneInfo(model.spec.timezone), times, interval.is_intraday)
    return _marks_text(changes.tolist(), stamps.tolist(), facts, first_index)


def frame_text(method: str, param_texts: list[str], now: float) -> str:
    """``json_text({"m": method, "p": [...], "t": int(now), "t_ms": int(now * 1000)})`` with
    params given as JSON texts (what ``Outbox.stamp`` sends)."""
    return ('{"m":' + json_text(method) + ',"p":[' + ",".join(param_texts)
            + '],"t":%d,"t_ms":%d}' % (int(now), int(now * 1000)))
