"""Column-wise conversion between Bar lists, BarColumns, Arrow tables and DataFrames.

Every backend reads into the same Arrow table (``BARS_SCHEMA``, the Parquet dataset's
schema): ``time`` (timestamp[us, UTC]), float64 open/high/low/close/volume (null = no
volume), ``source`` (string) and ``partial`` (bool). The DataFrame of ``read_bars`` is that
table's pandas view: index ``time``, NaN for no volume. Tables are built from whole numpy
columns, never from per-row Python objects, so a 1M-bar read costs about what decoding the
same columns from Parquet costs.
"""

import dataclasses
import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pocketquant_pipelines.errors import InvalidBarError, InvalidInputError
from pocketquant_pipelines.market.bar_columns import BarColumns
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.symbols import normalize_symbol
from pocketquant_pipelines.market.timeutil import utcnow
from pocketquant_pipelines.storage.bars import HistoryCoverage, Source
from pocketquant_pipelines.storage.validation import from_us, to_us

# Sources are stored as small integer codes; the order is part of the on-disk format.
SOURCE_CODES: tuple[Source, ...] = (Source.HISTORY, Source.STREAM)
SOURCE_CODE = {s: i for i, s in enumerate(SOURCE_CODES)}
HISTORY_CODE = SOURCE_CODE[Source.HISTORY]
_SOURCE_NAMES = pa.array([s.value for s in SOURCE_CODES], pa.string())
_TIME_TYPE = pa.timestamp("us", tz="UTC")
PRICE_FIELDS = ("open", "high", "low", "close", "volume")

# What a store read yields and what a Parquet dataset file holds: one schema for both.
BARS_SCHEMA = pa.schema([
    ("time", _TIME_TYPE),
    ("open", pa.float64()),
    ("high", pa.float64()),
    ("low", pa.float64()),
    ("close", pa.float64()),
    ("volume", pa.float64()),
    ("source", pa.string()),
    ("partial", pa.bool_()),
])


def check_source(source: object) -> Source:
    try:
        return Source(source)
    except ValueError:
        raise InvalidInputError(
            f"invalid source {source!r}: expected one of {', '.join(s.value for s in Source)}"
        ) from None


def columns_of_bars(bars: Sequence[Bar]) -> list[BarColumns]:
    """Validate the key parts of every bar (values were validated by Bar itself) and turn the
    list into one BarColumns per series, in the order the series first appear, each sorted
    and de-duplicated: the last occurrence of a key wins, as if the bars had been written one
    after another."""
    n = len(bars)
    key_index: dict[tuple[str, object], int] = {}
    keys: list[tuple[str, Interval]] = []
    series = np.empty(n, dtype=np.int64)
    for i, b in enumerate(bars):
        if not isinstance(b, Bar):
            raise InvalidBarError(f"bar #{i} is {b!r}, not a Bar")
        raw = (b.symbol, b.interval)
        k = key_index.get(raw)
        if k is None:
            canon = (normalize_symbol(b.symbol), Interval.parse(b.interval))
            k = keys.index(canon) if canon in keys else len(keys)
            if k == len(keys):
                keys.append(canon)
            key_index[raw] = k
        series[i] = k
    time = np.fromiter((b.time.timestamp() for b in bars), np.float64, n)
    cols = [np.fromiter((getattr(b, f) for b in bars), np.float64, n) for f in ("open", "high", "low", "close")]
    volume = np.fromiter((math.nan if b.volume is None else b.volume for b in bars), np.float64, n)
    # the key is the start to the microsecond; timestamp() is exact to it once rounded
    us = np.rint(time * 1e6).astype(np.int64)
    order = np.lexsort((us, series))  # stable: equal keys keep input order
    series, us, time, volume = series[order], us[order], time[order], volume[order]
    cols = [c[order] for c in cols]
    if n > 1:
        last = np.ones(n, dtype=bool)
        last[:-1] = (series[1:] != series[:-1]) | (us[1:] != us[:-1])
        if not last.all():
            series, time, volume = series[last], time[last], volume[last]
            cols = [c[last] for c in cols]
    bounds = np.flatnonzero(np.diff(series)) + 1
    starts, ends = [0, *bounds.tolist()], [*bounds.tolist(), len(series)]
    return [BarColumns(*keys[int(series[s])], time[s:e], *(c[s:e] for c in cols), volume[s:e])
            for s, e in zip(starts, ends) if e > s]


def canonical_columns(columns: BarColumns) -> list[BarColumns]:
    """One validated series (ascending, one row per key by construction) under its canonical
    key: no per-bar Python work at all, which is what makes a 5000-bar sync cheap."""
    if not len(columns):
        return []
    return [dataclasses.replace(columns, symbol=normalize_symbol(columns.symbol),
                                interval=Interval.parse(columns.interval))]


def replace_mask(old_source: np.ndarray, old_partial: np.ndarray, new_source: int,
                 new_partial: bool) -> np.ndarray:
    """The precedence rule of every backend (storage/bars.py), per existing row: True
    where a write of ``new_source`` (a source code) with ``new_partial`` may replace the row.

    History replaces anything; the stream never replaces history, and a partial stream bar
    never replaces a complete one."""
    old_source = np.asarray(old_source)
    if new_source == HISTORY_CODE:
        return np.ones(len(old_source), dtype=bool)
    replaceable = old_source != HISTORY_CODE
    if new_partial:
        replaceable &= np.asarray(old_partial, dtype=bool)
    return replaceable


def coverage_of_table(table: pa.Table, history_start=None) -> HistoryCoverage | None:
    """The history coverage of a read_bars_table table: its rows whose source is history."""
    if not table.num_rows:
        return None
    history = pc.equal(table.column("source"), Source.HISTORY.value)
    times = table.column("time").filter(history)
    if not len(times):
        return None
    return HistoryCoverage(from_us(times[0].value), from_us(times[-1].value), len(times),
                           history_start)


def time_us_column(table: pa.Table) -> np.ndarray:
    """The ``time`` column of a bars table as int64 epoch microseconds."""
    return table.column("time").cast(pa.int64()).to_numpy()


def first_last_time(table: pa.Table) -> tuple[datetime | None, datetime | None]:
    """Start of the first and of the last bar of a bars table (None, None when empty)."""
    if not table.num_rows:
        return None, None
    times = table.column("time")
    return from_us(times[0].value), from_us(times[-1].value)


@dataclasses.dataclass(frozen=True, slots=True)
class TableSummary:
    """What a bars table holds, at a glance: the figures syncs and dataset writes report."""

    rows: int
    first_time: datetime | None
    last_time: datetime | None
    stream_rows: int   # bars the stream wrote (``source`` is "stream")
    partial_rows: int  # in-progress bars flushed by the streamer (``partial`` is True)


def summarize_table(table: pa.Table) -> TableSummary:
    first_time, last_time = first_last_time(table)
    stream = pc.equal(table.column("source"), Source.STREAM.value)
    return TableSummary(rows=table.num_rows, first_time=first_time, last_time=last_time,
                        stream_rows=_count_true(stream), partial_rows=_count_true(table.column("partial")))


def _count_true(column) -> int:
    return int(pc.sum(column.cast(pa.int64())).as_py() or 0)


def source_array(codes: np.ndarray) -> pa.Array:
    """Source codes as the strings of the dataset schema."""
    indices = pa.array(np.asarray(codes, dtype=np.int8))
    return pa.DictionaryArray.from_arrays(indices, _SOURCE_NAMES).cast(pa.string())


def bars_table(time_us: np.ndarray, open_: np.ndarray, high: np.ndarray, low: np.ndarray,
               close: np.ndarray, volume: np.ndarray, source_codes: np.ndarray,
               partial: np.ndarray) -> pa.Table:
    """Whole numpy columns as a table in BARS_SCHEMA (NaN volume becomes null)."""
    return pa.Table.from_arrays([
        pa.array(np.asarray(time_us, dtype=np.int64), type=_TIME_TYPE),
        pa.array(np.asarray(open_, dtype=np.float64)),
        pa.array(np.asarray(high, dtype=np.float64)),
        pa.array(np.asarray(low, dtype=np.float64)),
        pa.array(np.asarray(close, dtype=np.float64)),
        pa.array(np.asarray(volume, dtype=np.float64), from_pandas=True),
        source_array(source_codes),
        pa.array(np.asarray(partial, dtype=bool)),
    ], schema=BARS_SCHEMA)


def empty_bars_table() -> pa.Table:
    return BARS_SCHEMA.empty_table()


def table_to_frame(table: pa.Table) -> pd.DataFrame:
    """The pandas view of a bars table: index ``time`` (datetime64[us, UTC]), float64 prices
    and volume (NaN = no volume), ``source`` (pandas ``str``), ``partial`` (bool).
    ``split_blocks`` keeps each column its own block, so no column is copied into a 2-D one."""
    return table.to_pandas(split_blocks=True).set_index("time")


def frame_to_table(frame: pd.DataFrame) -> pa.Table:
    """A read_bars-shaped frame (index ``time``) as a table in BARS_SCHEMA; a frame without
    ``source`` gets nulls there, one without ``partial`` gets False."""
    n = len(frame)
    time = pd.DatetimeIndex(frame.index)
    time = time.tz_localize("UTC") if time.tz is None else time.tz_convert("UTC")
    columns = [pa.array(time.as_unit("us"), type=_TIME_TYPE)]
    columns += [pa.array(frame[f].to_numpy(dtype=np.float64), from_pandas=True) for f in PRICE_FIELDS]
    columns.append(pa.array(frame["source"], type=pa.string(), from_pandas=True)
                   if "source" in frame.columns else pa.nulls(n, pa.string()))
    columns.append(pa.array(frame["partial"].fillna(False).to_numpy(dtype=bool))
                   if "partial" in frame.columns else pa.array(np.zeros(n, dtype=bool)))
    return pa.Table.from_arrays(columns, schema=BARS_SCHEMA)


class TablesFromFrames:
    """For a backend whose reads build DataFrames: ``read_bars_table`` is the Arrow form of
    its ``read_bars`` frame (a backend that decodes into columns implements it directly)."""

    def read_bars_table(self, symbol, interval, start=None, end=None, limit=None) -> pa.Table:
        return frame_to_table(self.read_bars(symbol, interval, start, end, limit))


def bars_frame(time_us: np.ndarray, open_: np.ndarray, high: np.ndarray, low: np.ndarray,
               close: np.ndarray, volume: np.ndarray, source_codes: np.ndarray,
               partial: np.ndarray) -> pd.DataFrame:
    return table_to_frame(bars_table(time_us, open_, high, low, close, volume, source_codes,
                                     partial))


def empty_bars_frame() -> pd.DataFrame:
    return table_to_frame(empty_bars_table())


def prepare_upsert(bars: Sequence[Bar] | BarColumns, source: object,
                   partial: object) -> tuple[Source, list[BarColumns], int]:
    """The input checks every backend's upsert_bars starts with: a valid source, a boolean
    partial flag, and the bars (a list of Bars, or one series' BarColumns) as one validated
    BarColumns per series, canonical symbol and interval, no empty series; with the write
    time (epoch microseconds) that every row of the batch carries."""
    source = check_source(source)
    if not isinstance(partial, bool):
        raise InvalidInputError(f"partial {partial!r} must be True or False")
    if partial and source is Source.HISTORY:
        # "partial" means an in-progress bar the streamer flushed; history is the final word
        raise InvalidInputError("partial=True is for stream writes: history bars are final "
                                "(source='history')")
    batch = canonical_columns(bars) if isinstance(bars, BarColumns) else columns_of_bars(bars)
    return source, batch, to_us(utcnow())
