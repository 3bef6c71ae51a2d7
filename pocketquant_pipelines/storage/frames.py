"""Column-wise conversion between Bar lists, numpy columns and the read_bars DataFrame.

Every backend returns the same frame shape: index ``time`` (datetime64[us, UTC]), float64
open/high/low/close/volume (NaN = no volume), ``source`` (pandas ``str``) and ``partial``
(bool). Frames are built from whole numpy columns, never from per-row Python objects, so a
1M-bar read costs about what decoding the same columns from Parquet costs.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from pocketquant_pipelines.errors import InvalidBarError, InvalidInputError
from pocketquant_pipelines.market.bar_columns import BarColumns
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.symbols import normalize_symbol
from pocketquant_pipelines.storage.base import HistoryCoverage, Source

# Sources are stored as small integer codes; the order is part of the on-disk format.
SOURCE_CODES: tuple[Source, ...] = (Source.HISTORY, Source.STREAM)
SOURCE_CODE = {s: i for i, s in enumerate(SOURCE_CODES)}
HISTORY_CODE = SOURCE_CODE[Source.HISTORY]
_SOURCE_NAMES = pa.array([s.value for s in SOURCE_CODES], pa.string())
_STR_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas 3's default ``str`` dtype
_TIME_DTYPE = "datetime64[us, UTC]"
PRICE_FIELDS = ("open", "high", "low", "close", "volume")


def check_source(source: object) -> Source:
    try:
        return Source(source)
    except ValueError:
        raise InvalidInputError(
            f"invalid source {source!r}: expected one of {', '.join(s.value for s in Source)}"
        ) from None


@dataclass(slots=True)
class BarBatch:
    """One upsert batch as columns: ``series`` indexes ``keys`` (canonical symbol, interval).

    Rows are sorted by (series, time) and de-duplicated (the last occurrence of a key in the
    input wins, as if the bars had been written one after another).
    """

    keys: list[tuple[str, Interval]]
    series: np.ndarray  # int64 index into keys
    time: np.ndarray    # int64 epoch microseconds
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray  # NaN = no volume

    def __len__(self) -> int:
        return len(self.time)

    def groups(self):
        """(series index, slice) per series, in series order."""
        if not len(self.time):
            return
        bounds = np.flatnonzero(np.diff(self.series)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [len(self.series)]))
        for s, e in zip(starts.tolist(), ends.tolist()):
            yield int(self.series[s]), slice(s, e)


def batch_from_bars(bars: Sequence[Bar]) -> BarBatch:
    """Validate the key parts of every bar (values were validated by Bar itself) and turn the
    list into sorted, de-duplicated columns."""
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
    # timestamp() is exact to the microsecond at these magnitudes once rounded.
    time = np.rint(np.fromiter((b.time.timestamp() for b in bars), np.float64, n) * 1e6).astype(np.int64)
    cols = [np.fromiter((getattr(b, f) for b in bars), np.float64, n) for f in ("open", "high", "low", "close")]
    volume = np.fromiter((math.nan if b.volume is None else b.volume for b in bars), np.float64, n)
    order = np.lexsort((time, series))  # stable: equal keys keep input order
    series, time = series[order], time[order]
    cols = [c[order] for c in cols]
    volume = volume[order]
    if n > 1:
        last = np.ones(n, dtype=bool)
        last[:-1] = (series[1:] != series[:-1]) | (time[1:] != time[:-1])
        if not last.all():
            series, time, volume = series[last], time[last], volume[last]
            cols = [c[last] for c in cols]
    return BarBatch(keys, series, time, *cols, volume)


def batch_from_columns(columns: BarColumns) -> BarBatch:
    """One validated series (ascending, one row per key by construction) as a batch: no
    per-bar Python work at all, which is what makes a 5000-bar sync cheap."""
    key = (normalize_symbol(columns.symbol), Interval.parse(columns.interval))
    n = len(columns)
    time = np.rint(columns.time * 1e6).astype(np.int64)
    return BarBatch([key] if n else [], np.zeros(n, dtype=np.int64), time,
                    columns.open, columns.high, columns.low, columns.close, columns.volume)


def replace_mask(old_source: np.ndarray, old_partial: np.ndarray, new_source: int,
                 new_partial: bool) -> np.ndarray:
    """The precedence rule of every backend (BarStore's docstring), per existing row: True
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


def coverage_of_frame(frame: pd.DataFrame, history_start=None) -> HistoryCoverage | None:
    """The history coverage of a read_bars frame: its rows whose source is history."""
    if not len(frame):
        return None
    times = frame.index[(frame["source"] == Source.HISTORY.value).to_numpy(dtype=bool)]
    if not len(times):
        return None
    return HistoryCoverage(times[0].to_pydatetime(), times[-1].to_pydatetime(), len(times),
                           history_start)


def source_column(codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    indices = pa.array(np.asarray(codes, dtype=np.int8))
    strings = pa.DictionaryArray.from_arrays(indices, _SOURCE_NAMES).cast(pa.string())
    return pd.array(strings, dtype=_STR_DTYPE)


def bars_frame(time_us: np.ndarray, open_: np.ndarray, high: np.ndarray, low: np.ndarray,
               close: np.ndarray, volume: np.ndarray, source_codes: np.ndarray,
               partial: np.ndarray) -> pd.DataFrame:
    index = pd.DatetimeIndex(np.asarray(time_us, dtype=np.int64).view("datetime64[us]"),
                             dtype=_TIME_DTYPE, name="time")
    return pd.DataFrame(
        {
            "open": np.asarray(open_, dtype=np.float64),
            "high": np.asarray(high, dtype=np.float64),
            "low": np.asarray(low, dtype=np.float64),
            "close": np.asarray(close, dtype=np.float64),
            "volume": np.asarray(volume, dtype=np.float64),
            "source": source_column(source_codes),
            "partial": np.asarray(partial, dtype=bool),
        },
        index=index,
    )


def empty_bars_frame() -> pd.DataFrame:
    f = np.empty(0, dtype=np.float64)
    return bars_frame(np.empty(0, np.int64), f, f, f, f, f, np.empty(0, np.int8), np.empty(0, bool))


def prepare_upsert(bars: "Sequence[Bar] | BarColumns", source: object,
                   partial: object) -> tuple[Source, "BarBatch"]:
    """The input checks every backend's upsert_bars starts with: a valid source, a boolean
    partial flag, and the bars (a list of Bars, or one series' BarColumns) as a validated
    columnar batch."""
    source = check_source(source)
    if not isinstance(partial, bool):
        raise InvalidInputError(f"partial {partial!r} must be True or False")
    if partial and source is Source.HISTORY:
        # "partial" means an in-progress bar the streamer flushed; history is the final word
        raise InvalidInputError("partial=True is for stream writes: history bars are final "
                                "(source='history')")
    if isinstance(bars, BarColumns):
        return source, batch_from_columns(bars)
    return source, batch_from_bars(bars)
