"""MongoDB bar store (pymongo).

Collections in ``settings.mongodb_database``:

- ``bars``: one document per bar ``{symbol, interval, time, open, high, low, close, volume,
  source, partial, written_at}``; unique index (symbol, interval, time). A regular
  collection, not a time-series one: time-series collections allow no unique index, and the
  unique key is what makes re-syncs idempotent.
- ``stream_bars``: the stream shadow copy, same shape and index.
- ``ingest_log``: ``{seq, symbol, interval, source, first_time, last_time, count, written_at,
  logged_at}``, unique index on seq; ``counters`` holds ``{_id: "ingest_seq", seq}`` ($inc).
- ``symbols``: the registry, ``_id`` = canonical symbol.
- ``history_coverage``: per series ``{_id: "<interval>|<symbol>", symbol, interval,
  first_time, last_time, bars, history_start}``: what history has written (BarStore).
  Recomputed from the series' history documents after every history write (one
  aggregation over the series), so it converges even when a writer died between its bars
  and its record; ``counters`` ``{_id: "schema", coverage: 1}`` marks a database whose
  records were built (a database from before them gets them on first open).
- ``series_extent``: per series ``{_id: "<interval>|<symbol>", symbol, interval, first_time,
  last_time}`` of the canonical bars, widened with ``$min``/``$max`` after every write (``extent:
  1`` in the schema counter, built on first open like coverage). It tells "latest N" and
  ``last_bar_time`` where to start reading; the reads also cover what lies outside it, so a
  writer that died before widening it costs bars read, never bars missed.

``time``, ``first_time``, ``last_time``, ``written_at``, ``added_at``, ``updated_at`` are int64
epoch microseconds (UTC), exact and zone-free like the embedded store.

Every lookup is a key range of the unique index (the series and a time window), never a long
``$in`` list, so a call's cost follows the bars it touches: upsert reads the batch's time
range (split where its keys are far apart), a full read sorts on time after equality on the
series (the index order), and "latest N" reads bounded windows back from the series' last time.

Upsert: fetch the batch's existing keys, compare in Python (values, and the precedence rule
of ``frames.replace_mask``), then ``bulk_write`` UpdateOne (upsert=True) only for new or
changed bars; that is what yields the inserted / updated / unchanged / refused counts. A
stream write's UpdateOne also filters on the row it may replace (``source: "stream"``, and
``partial: true`` for a partial write): if history wrote the key between our read and our
write, the filter misses, the upsert's insert hits the unique index (E11000), and the key is
compared again -- and refused. Without a replica-set transaction a batch is not atomic across
documents, but every step is idempotent, so a retried batch converges to the same state; the
ingest entries are written after the bars they describe.

Ingest seq values come from ``$inc`` before the entries are inserted, so two writers can
commit seq 6 before seq 5. ``ingest_since`` therefore stops at a gap younger than
``INGEST_GAP_GRACE_S`` (the earlier entry is still on its way) and only steps over an older
gap (its writer died between $inc and insert).
"""

import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from pocketquant_pipelines.errors import ConfigError, UnknownSymbolError
from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.market.bar_columns import BarColumns
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.timeutil import utcnow
from pocketquant_pipelines.storage.bars import HistoryCoverage, Source, UpsertResult
from pocketquant_pipelines.storage.durable import DurableStore
from pocketquant_pipelines.storage.frames import (
    SOURCE_CODE, TablesFromFrames, bars_frame, check_source, empty_bars_frame, prepare_upsert,
    replace_mask,
)
from pocketquant_pipelines.storage.ingest import IngestEntry, IngestPage
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.storage.registry_records import (
    check_update_fields, info_from_record, info_to_record, prepare_new,
)
from pocketquant_pipelines.storage.validation import (
    check_interval, check_limit, check_page_limit, check_stored_bars, check_symbol, format_seq_cursor,
    from_us, parse_seq_cursor, time_range_us, to_us,
)

log = get_logger(__name__)

INGEST_GAP_GRACE_S = 30.0
# A gap wider than this many bar lengths between a batch's keys starts another range lookup:
# a range read returns every stored bar inside it, so a sparse batch is read as several
# short ranges (at most this many stored bars per key) rather than one long one.
_RUN_GAP_STEPS = 16
_OPEN_LO, _OPEN_HI = time_range_us(None, None)
_WRITE_BATCH = 10_000
_VALUE_FIELDS = ("open", "high", "low", "close", "volume", "source", "partial")
_READ_PROJECTION = {"_id": 0, "time": 1, "open": 1, "high": 1, "low": 1, "close": 1,
                    "volume": 1, "source": 1, "partial": 1}


class MongoBarStore(TablesFromFrames, DurableStore):
    def __init__(self, url: str | None = None, database: str = "pocketquant", client=None,
                 timeout_s: float = 10.0):
        """Pass ``url`` (a MONGODB_URL) or an existing ``client`` (a pymongo.MongoClient).
        The store closes only a client it made."""
        if not isinstance(database, str) or not database or any(c in database for c in '/\\. "$'):
            raise ConfigError(f"MONGODB_DATABASE={database!r} is not a valid database name")
        self._owns_client = client is None
        if client is None:
            if not url:
                raise ConfigError("MongoBarStore needs a MONGODB_URL or a client")
            import pymongo

            client = pymongo.MongoClient(str.__str__(url), serverSelectionTimeoutMS=round(timeout_s * 1000),
                                         appname="pocketquant")
        self._client = client
        self.database = database
        db = client[database]
        self._bars = db["bars"]
        self._stream = db["stream_bars"]
        self._ingest = db["ingest_log"]
        self._counters = db["counters"]
        self._symbols = db["symbols"]
        self._coverage = db["history_coverage"]
        self._extent = db["series_extent"]
        key = [("symbol", 1), ("interval", 1), ("time", 1)]
        self._bars.create_index(key, unique=True, name="symbol_interval_time")
        self._stream.create_index(key, unique=True, name="symbol_interval_time")
        self._ingest.create_index([("seq", 1)], unique=True, name="seq")
        self._ingest.create_index([("source", 1), ("seq", 1)], name="source_seq")
        self._build_coverage_once()
        self._build_extent_once()

    def _build_coverage_once(self) -> None:
        """Coverage records for a database written before they existed (idempotent: a
        concurrent opener computes the same records)."""
        if self._counters.find_one({"_id": "schema", "coverage": 1}) is not None:
            return
        built = 0
        for row in self._bars.aggregate([
            {"$match": {"source": Source.HISTORY.value}},
            {"$group": {"_id": {"symbol": "$symbol", "interval": "$interval"}}},
        ]):
            self._refresh_coverage(row["_id"]["symbol"], Interval(row["_id"]["interval"]))
            built += 1
        self._counters.update_one({"_id": "schema"}, {"$set": {"coverage": 1}}, upsert=True)
        if built:
            log.info("bar_store_migrated", store="mongo", database=self.database,
                     series_with_history=built)

    def _build_extent_once(self) -> None:
        """Extent records for a database written before they existed (idempotent: $min/$max)."""
        if self._counters.find_one({"_id": "schema", "extent": 1}) is not None:
            return
        built = 0
        for row in self._bars.aggregate([
            {"$group": {"_id": {"symbol": "$symbol", "interval": "$interval"},
                        "first": {"$min": "$time"}, "last": {"$max": "$time"}}},
        ]):
            self._widen_extent(row["_id"]["symbol"], Interval(row["_id"]["interval"]),
                               int(row["first"]), int(row["last"]))
            built += 1
        self._counters.update_one({"_id": "schema"}, {"$set": {"extent": 1}}, upsert=True)
        if built:
            log.info("bar_store_migrated", store="mongo", database=self.database,
                     series_with_extent=built)

    def _widen_extent(self, symbol: str, interval: Interval, first: int, last: int) -> None:
        self._extent.update_one(
            {"_id": f"{interval.value}|{symbol}"},
            {"$min": {"first_time": first}, "$max": {"last_time": last},
             "$setOnInsert": {"symbol": symbol, "interval": interval.value}},
            upsert=True)

    def __repr__(self) -> str:
        return f"MongoBarStore(database={self.database!r})"

    # --- bars ---------------------------------------------------------------------------------
    def upsert_bars(self, bars: Sequence[Bar] | BarColumns, source: Source = Source.HISTORY,
                    partial: bool = False) -> UpsertResult:
        source, batch, now_us = prepare_upsert(bars, source, partial)
        if not batch:
            return UpsertResult()
        total = UpsertResult()
        pending_entries = []
        for cols in batch:
            symbol, interval = cols.symbol, cols.interval
            docs = self._docs(cols, source, partial, now_us)
            result, changed = self._write(self._bars, symbol, interval, docs, source, partial)
            if changed:
                times = [d["time"] for d in changed]
                self._widen_extent(symbol, interval, min(times), max(times))
            if source is Source.STREAM:
                self._write(self._stream, symbol, interval, docs, source, partial)
            else:
                self._refresh_coverage(symbol, interval)
            total = total + result
            if result.written:
                times = [d["time"] for d in changed]
                pending_entries.append({
                    "symbol": symbol, "interval": interval.value, "source": source.value,
                    "first_time": min(times), "last_time": max(times), "count": result.written,
                    "written_at": now_us,
                })
        if pending_entries:
            self._append_ingest(pending_entries)
        log.debug("bars_upserted", store="mongo", source=source.value, series=len(batch),
                  inserted=total.inserted, updated=total.updated, unchanged=total.unchanged,
                  refused=total.refused)
        return total

    @staticmethod
    def _docs(cols: BarColumns, source, partial, now_us) -> list[dict]:
        symbol, interval = cols.symbol, cols.interval
        return [
            {"symbol": symbol, "interval": interval.value, "time": t, "open": o, "high": h,
             "low": lo, "close": c, "volume": None if math.isnan(v) else v,
             "source": source.value, "partial": partial, "written_at": now_us}
            for t, o, h, lo, c, v in zip(cols.time_us.tolist(), cols.open.tolist(),
                                         cols.high.tolist(), cols.low.tolist(),
                                         cols.close.tolist(), cols.volume.tolist())
        ]

    def _write(self, coll, symbol: str, interval: Interval, docs: list[dict], source: Source,
               partial: bool, retry: bool = True):
        from pymongo import InsertOne, UpdateOne
        from pymongo.errors import BulkWriteError

        existing = self._existing(coll, symbol, interval, [d["time"] for d in docs])
        olds = [existing.get(d["time"]) for d in docs]
        found = [o for o in olds if o is not None]
        allowed = iter(replace_mask(
            np.fromiter((SOURCE_CODE[Source(o["source"])] for o in found), np.int8, len(found)),
            np.fromiter((bool(o.get("partial")) for o in found), bool, len(found)),
            SOURCE_CODE[source], partial).tolist())
        # a stream write replaces only what it may replace, also under a racing history write
        guard: dict = {}
        if source is Source.STREAM:
            guard = {"source": Source.STREAM.value, **({"partial": True} if partial else {})}
        ops, changed, new_docs = [], [], []
        inserted = updated = refused = 0
        for d, old in zip(docs, olds):
            if old is None:
                inserted += 1
                new_docs.append(d)
                # Insert, not upsert: cheaper, and the unique index catches a racing writer.
                ops.append(InsertOne(dict(d)))
            elif not next(allowed):
                refused += 1
                continue
            elif any(old.get(f) != d[f] for f in _VALUE_FIELDS):
                updated += 1
                ops.append(UpdateOne({"symbol": symbol, "interval": interval.value,
                                      "time": d["time"], **guard}, {"$set": dict(d)}, upsert=True))
            else:
                continue
            changed.append(d)  # parallel to ops
        result = UpsertResult(inserted, updated, len(docs) - inserted - updated - refused, refused)
        raced: list[dict] = []
        for i in range(0, len(ops), _WRITE_BATCH):
            try:
                coll.bulk_write(ops[i:i + _WRITE_BATCH], ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if not retry or any(e.get("code") != 11000 for e in errors):
                    raise
                raced += [changed[i + e["index"]] for e in errors]
        if raced:
            # Another writer inserted these keys between our read and our insert: compare
            # again against what it wrote, and count them as that comparison says.
            keys = {d["time"] for d in raced}
            mine = [d for d in docs if d["time"] in keys]
            raced_inserts = sum(1 for d in new_docs if d["time"] in keys)
            again, again_changed = self._write(coll, symbol, interval, mine, source, partial,
                                               retry=False)
            result = UpsertResult(result.inserted - raced_inserts + again.inserted,
                                  result.updated - (len(mine) - raced_inserts) + again.updated,
                                  result.unchanged + again.unchanged,
                                  result.refused + again.refused)
            changed = [d for d in changed if d["time"] not in keys] + again_changed
        return result, changed

    @staticmethod
    def _existing(coll, symbol: str, interval: Interval, times: list[int]) -> dict[int, dict]:
        """The stored documents of these keys, read as key ranges of the series (an index range
        scan costs the bars inside it; a long $in list does not scale on every server)."""
        wanted = set(times)
        existing: dict[int, dict] = {}
        projection = {"_id": 0, "time": 1, **{f: 1 for f in _VALUE_FIELDS}}
        for first, last in _key_runs(sorted(wanted), interval.nominal_seconds * 1_000_000):
            for d in coll.find({"symbol": symbol, "interval": interval.value,
                                "time": {"$gte": first, "$lte": last}}, projection):
                if d["time"] in wanted:
                    existing[d["time"]] = d
        return existing

    def _latest(self, coll, symbol: str, interval: str, lo: int, hi: int, n: int,
                projection: dict) -> list[dict]:
        """The last ``n`` bars of the series in [lo, hi), in time order, read as bounded ranges
        walking back from the series' recorded last time, so the cost follows ``n`` and not
        the series' length (a sort+limit over the whole series reads all of it on some
        servers). The extent record only says where to start reading: bars a writer put
        outside it before recording them are read too, by the ranges above and below it."""
        def read(a: int, b: int) -> list[dict]:
            if a >= b:
                return []
            return list(coll.find({"symbol": symbol, "interval": interval,
                                   "time": {"$gte": a, "$lt": b}}, projection).sort("time", 1))

        # the extent records describe the canonical bars only
        ext = (self._extent.find_one({"_id": f"{interval}|{symbol}"}) if coll is self._bars
               else None)
        if ext is None:  # an empty series, or one whose first writer has not recorded it yet
            docs = list(coll.find({"symbol": symbol, "interval": interval,
                                   "time": {"$gte": lo, "$lt": hi}}, projection)
                        .sort("time", -1).limit(n))
            docs.reverse()
            return docs
        first, last = int(ext["first_time"]), int(ext["last_time"])
        parts: list[list[dict]] = []  # newest first
        cur = hi
        if last < _OPEN_HI and last + 1 < hi:
            parts.append(read(max(lo, last + 1), hi))
            cur = max(lo, last + 1)
        got = sum(map(len, parts))
        floor = max(lo, first)
        width = max(n, 1) * Interval(interval).nominal_seconds * 1_000_000
        while got < n and cur > floor:
            a = max(cur - width, floor)
            part = read(a, cur)
            parts.append(part)
            got += len(part)
            cur, width = a, width * 2
        if got < n and cur > lo:
            parts.append(read(lo, cur)[-(n - got):])
        docs = [d for part in reversed(parts) for d in part]
        return docs[-n:]

    def _refresh_coverage(self, symbol: str, interval: Interval) -> None:
        """Recompute the series' coverage record from its history documents."""
        cov = self._aggregate_coverage({"symbol": symbol, "interval": interval.value})
        _id = f"{interval.value}|{symbol}"
        if cov is None:
            self._coverage.delete_one({"_id": _id})
            return
        first, last, bars = cov
        self._coverage.update_one(
            {"_id": _id},
            {"$set": {"symbol": symbol, "interval": interval.value, "first_time": first,
                      "last_time": last, "bars": bars}},
            upsert=True)

    def _aggregate_coverage(self, flt: dict) -> tuple[int, int, int] | None:
        rows = list(self._bars.aggregate([
            {"$match": {**flt, "source": Source.HISTORY.value}},
            {"$group": {"_id": None, "first": {"$min": "$time"}, "last": {"$max": "$time"},
                        "bars": {"$sum": 1}}},
        ]))
        if not rows or not rows[0]["bars"]:
            return None
        return int(rows[0]["first"]), int(rows[0]["last"]), int(rows[0]["bars"])

    def _append_ingest(self, entries: list[dict]) -> None:
        from pymongo import ReturnDocument

        counter = self._counters.find_one_and_update(
            {"_id": "ingest_seq"}, {"$inc": {"seq": len(entries)}}, upsert=True,
            return_document=ReturnDocument.AFTER)
        first_seq = counter["seq"] - len(entries) + 1
        logged_at = to_us(utcnow())
        for i, e in enumerate(entries):
            e["seq"] = first_seq + i
            e["logged_at"] = logged_at
        self._ingest.insert_many(entries, ordered=True)

    def _key_filter(self, symbol, interval, start, end) -> dict:
        symbol, interval = check_symbol(symbol), check_interval(interval)
        flt: dict = {"symbol": symbol, "interval": interval.value}
        if start is not None or end is not None:
            lo, hi = time_range_us(start, end)
            rng = {}
            if start is not None:
                rng["$gte"] = lo
            if end is not None:
                rng["$lt"] = hi
            flt["time"] = rng
        return flt

    def _read(self, coll, symbol, interval, start, end, limit) -> pd.DataFrame:
        flt = self._key_filter(symbol, interval, start, end)
        limit = check_limit(limit)
        if limit == 0:
            return empty_bars_frame()
        if limit is None:
            # equality on (symbol, interval) and a sort on time: the unique index's order
            docs = list(coll.find(flt, _READ_PROJECTION).sort("time", 1))
        else:
            lo, hi = time_range_us(start, end)
            docs = self._latest(coll, flt["symbol"], flt["interval"], lo, hi, limit,
                                _READ_PROJECTION)
        if not docs:
            return empty_bars_frame()
        n = len(docs)
        # pymongo decodes one dict per document; pymongoarrow would avoid that (not a dependency).
        col = {f: np.fromiter((d[f] for d in docs), np.float64, n) for f in ("open", "high", "low", "close")}
        volume = np.fromiter((math.nan if d.get("volume") is None else d["volume"] for d in docs),
                             np.float64, n)
        time = np.fromiter((d["time"] for d in docs), np.int64, n)
        src = np.fromiter((SOURCE_CODE[Source(d["source"])] for d in docs), np.int8, n)
        partial = np.fromiter((bool(d.get("partial")) for d in docs), bool, n)
        check_stored_bars(check_symbol(symbol), check_interval(interval), time, col["open"], col["high"],
                          col["low"], col["close"], volume)
        return bars_frame(time, col["open"], col["high"], col["low"], col["close"], volume, src, partial)

    def read_bars(self, symbol: str, interval: Interval | str, start: datetime | None = None,
                  end: datetime | None = None, limit: int | None = None) -> pd.DataFrame:
        return self._read(self._bars, symbol, interval, start, end, limit)

    def read_stream_bars(self, symbol: str, interval: Interval | str,
                         start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        return self._read(self._stream, symbol, interval, start, end, None)

    def last_bar_time(self, symbol: str, interval: Interval | str) -> datetime | None:
        flt = self._key_filter(symbol, interval, None, None)
        docs = self._latest(self._bars, flt["symbol"], flt["interval"], _OPEN_LO, _OPEN_HI, 1,
                            {"_id": 0, "time": 1})
        return from_us(docs[-1]["time"]) if docs else None

    def count_bars(self, symbol: str, interval: Interval | str) -> int:
        return self._bars.count_documents(self._key_filter(symbol, interval, None, None))

    def history_coverage(self, symbol: str, interval: Interval | str, start: datetime | None = None,
                         end: datetime | None = None) -> HistoryCoverage | None:
        symbol, interval = check_symbol(symbol), check_interval(interval)
        lo, hi = time_range_us(start, end)
        doc = self._coverage.find_one({"_id": f"{interval.value}|{symbol}"})
        if doc is None or hi <= lo:
            return None
        history_start = None if doc.get("history_start") is None else from_us(doc["history_start"])
        first, last, bars = doc["first_time"], doc["last_time"], doc["bars"]
        if not (lo <= first and last < hi):
            # part of the record lies outside the range: count history's documents inside it
            cov = self._aggregate_coverage(self._key_filter(symbol, interval, start, end))
            if cov is None:
                return None
            first, last, bars = cov
        return HistoryCoverage(from_us(first), from_us(last), int(bars), history_start)

    def record_history_start(self, symbol: str, interval: Interval | str,
                             first_time: datetime) -> bool:
        symbol, interval = check_symbol(symbol), check_interval(interval)
        res = self._coverage.update_one({"_id": f"{interval.value}|{symbol}"},
                                        {"$set": {"history_start": to_us(first_time, "first_time")}})
        return res.matched_count == 1

    def bar_stats(self) -> list[dict]:
        rows = self._bars.aggregate([
            {"$group": {"_id": {"symbol": "$symbol", "interval": "$interval"},
                        "count": {"$sum": 1}, "first": {"$min": "$time"}, "last": {"$max": "$time"}}},
        ])
        stats = [{"symbol": r["_id"]["symbol"], "interval": Interval(r["_id"]["interval"]),
                  "count": int(r["count"]), "first_time": from_us(r["first"]),
                  "last_time": from_us(r["last"])} for r in rows]
        return sorted(stats, key=lambda s: (s["symbol"], s["interval"].value))

    def delete_bars(self, symbol: str, interval: Interval | str | None = None) -> int:
        flt: dict = {"symbol": check_symbol(symbol)}
        if interval is not None:
            flt["interval"] = check_interval(interval).value
        deleted = self._bars.delete_many(flt).deleted_count
        self._stream.delete_many(flt)
        self._coverage.delete_many(flt)
        self._extent.delete_many(flt)
        log.info("bars_deleted", store="mongo", symbol=flt["symbol"], interval=flt.get("interval"),
                 count=deleted)
        return deleted

    # --- ingest cursor ------------------------------------------------------------------------
    def ingest_since(self, cursor: str | None, limit: int = 1000,
                     source: Source | None = None) -> IngestPage:
        pos = parse_seq_cursor(cursor)
        limit = check_page_limit(limit)
        want = None if source is None else check_source(source).value
        grace_us = int(INGEST_GAP_GRACE_S * 1_000_000)
        now_us = to_us(utcnow())
        entries: list[IngestEntry] = []
        done = False
        while not done:
            docs = list(self._ingest.find({"seq": {"$gt": pos}}, {"_id": 0})
                        .sort("seq", 1).limit(max(limit, 500)))
            if not docs:
                break
            for d in docs:
                if d["seq"] != pos + 1 and now_us - d["logged_at"] < grace_us:
                    done = True  # an earlier seq is still being written: wait for it
                    break
                pos = d["seq"]
                if want is None or d["source"] == want:
                    entries.append(IngestEntry(
                        d["seq"], d["symbol"], Interval(d["interval"]), Source(d["source"]),
                        from_us(d["first_time"]), from_us(d["last_time"]), int(d["count"]),
                        from_us(d["written_at"])))
                    if len(entries) == limit:
                        done = True
                        break
        return IngestPage(entries, format_seq_cursor(pos))

    def latest_ingest_cursor(self) -> str:
        doc = self._ingest.find_one({}, {"_id": 0, "seq": 1}, sort=[("seq", -1)])
        return format_seq_cursor(0 if doc is None else doc["seq"])

    # --- symbol registry ----------------------------------------------------------------------
    @staticmethod
    def _to_doc(info: SymbolInfo) -> dict:
        rec = info_to_record(info)
        rec["_id"] = rec["symbol"]
        return rec

    @staticmethod
    def _from_doc(doc: dict) -> SymbolInfo:
        doc = dict(doc)
        doc.pop("_id", None)
        return info_from_record(doc)

    def add_symbol(self, info: SymbolInfo) -> bool:
        info = prepare_new(info)
        res = self._symbols.update_one({"_id": info.symbol}, {"$setOnInsert": self._to_doc(info)},
                                       upsert=True)
        added = res.upserted_id is not None
        if added:
            log.info("symbol_added", store="mongo", symbol=info.symbol, stream=info.stream)
        return added

    def get_symbol(self, symbol: str) -> SymbolInfo | None:
        doc = self._symbols.find_one({"_id": check_symbol(symbol)})
        return None if doc is None else self._from_doc(doc)

    def list_symbols(self, stream_only: bool = False) -> list[SymbolInfo]:
        flt = {"stream": True} if stream_only else {}
        return [self._from_doc(d) for d in self._symbols.find(flt).sort("_id", 1)]

    def update_symbol(self, symbol: str, **fields: object) -> SymbolInfo:
        from pymongo import ReturnDocument

        symbol = check_symbol(symbol)
        changes = check_update_fields(fields)
        changes["updated_at"] = to_us(utcnow())
        doc = self._symbols.find_one_and_update({"_id": symbol}, {"$set": changes},
                                                return_document=ReturnDocument.AFTER)
        if doc is None:
            raise UnknownSymbolError(symbol)
        log.info("symbol_updated", store="mongo", symbol=symbol, fields=sorted(fields))
        return self._from_doc(doc)

    def remove_symbol(self, symbol: str) -> bool:
        removed = self._symbols.delete_one({"_id": check_symbol(symbol)}).deleted_count == 1
        if removed:
            log.info("symbol_removed", store="mongo", symbol=symbol)
        return removed

    # --- lifecycle ----------------------------------------------------------------------------
    def ping(self) -> bool:
        try:
            return bool(self._client[self.database].command("ping").get("ok"))
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            return False

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


def _key_runs(times: list[int], step_us: int) -> list[tuple[int, int]]:
    """[first, last] ranges covering the sorted ``times``; a gap wider than
    ``_RUN_GAP_STEPS`` bar lengths starts the next range."""
    if not times:
        return []
    runs = []
    start = prev = times[0]
    for t in times[1:]:
        if t - prev > _RUN_GAP_STEPS * step_us:
            runs.append((start, prev))
            start = t
        prev = t
    runs.append((start, prev))
    return runs
