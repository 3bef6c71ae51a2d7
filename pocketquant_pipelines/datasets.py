"""Parquet datasets of stored bars, laid out for pandas, polars, DuckDB and Spark to read as is.

Layout (hive partitioning, one file per series)::

    <POCKETQUANT_DATA_DIR>/datasets/ohlcv/
        interval=1d/
            symbol=NASDAQ%3AAAPL/bars.parquet
            symbol=CME_MINI%3ANQ1%21/bars.parquet
        interval=1h/...

* Partition values are URI-encoded (``urllib.parse.quote(value, safe="")``) because symbols
  carry ``:`` and sometimes ``/`` or ``!``. pyarrow's hive partitioning decodes them by default
  (``segment_encoding="uri"``), so ``pd.read_parquet(".../datasets/ohlcv")`` yields the columns
  ``interval`` and ``symbol`` with the real values (``NASDAQ:AAPL``).
* Each file holds one series in the store's read schema (``storage.frames.BARS_SCHEMA``: what
  ``read_bars_table`` yields, written as it is): column ``time`` (timestamp[us, UTC], the bar
  start, ascending, unique) and float64 ``open high low close volume`` (volume null where the
  market has none),
  plus ``source`` (history/stream: who wrote the bar) and ``partial`` (True for an in-progress
  bar the streamer flushed at shutdown: not a complete bar; a backtest should drop or treat
  it as such). Both columns are always present. The symbol and interval are not repeated
  inside the file (they come from the path) but are kept in the file's schema metadata
  (``pocketquant.symbol`` / ``pocketquant.interval``) for readers of a single file.
* Files are written atomically: a temporary file in the same directory, fsync, then
  ``os.replace``. Readers never see a half-written file.
"""

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.symbols import normalize_symbol
from pocketquant_pipelines.storage.frames import (
    BARS_SCHEMA, TableSummary, frame_to_table, summarize_table, table_to_frame,
)

DATASET_NAME = "ohlcv"
FILE_NAME = "bars.parquet"

def dataset_root(data_dir: Path) -> Path:
    """The dataset directory to hand to pandas/polars/DuckDB."""
    return Path(data_dir) / "datasets" / DATASET_NAME


def series_path(data_dir: Path, symbol: str, interval: Interval | str) -> Path:
    symbol = normalize_symbol(symbol)
    interval = Interval.parse(interval)
    return (dataset_root(data_dir) / f"interval={quote(interval.value, safe='')}"
            / f"symbol={quote(symbol, safe='')}" / FILE_NAME)


@dataclass(frozen=True)
class DatasetWrite(TableSummary):
    """A written series file: where, how large, and what its table holds."""

    path: Path
    bytes: int


def dataset_table(bars: pa.Table | pd.DataFrame, symbol: str, interval: Interval) -> pa.Table:
    """What a series file holds: a store read (``read_bars_table``) as it is, or a
    read_bars-shaped frame converted column by column, with the series named in the schema
    metadata."""
    table = bars if isinstance(bars, pa.Table) else frame_to_table(bars)
    if not table.schema.equals(BARS_SCHEMA):
        table = table.select(BARS_SCHEMA.names).cast(BARS_SCHEMA)
    return table.replace_schema_metadata({
        b"pocketquant.symbol": symbol.encode(),
        b"pocketquant.interval": interval.value.encode(),
    })


def write_series(data_dir: Path, symbol: str, interval: Interval | str,
                 bars: pa.Table | pd.DataFrame) -> DatasetWrite:
    """Replace the series file with ``bars`` (a BarStore.read_bars_table table, or a
    read_bars frame), atomically."""
    symbol = normalize_symbol(symbol)
    interval = Interval.parse(interval)
    path = series_path(data_dir, symbol, interval)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = dataset_table(bars, symbol, interval)
    fd, tmp = tempfile.mkstemp(prefix=".bars-", suffix=".parquet.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            pq.write_table(table, fh, compression="zstd")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    summary = summarize_table(table)
    return DatasetWrite(**asdict(summary), path=path, bytes=path.stat().st_size)


def read_series(data_dir: Path, symbol: str, interval: Interval | str) -> pd.DataFrame:
    """One series back as a frame indexed by ``time`` (UTC), like BarStore.read_bars."""
    return table_to_frame(pq.read_table(series_path(data_dir, symbol, interval)))


def read_dataset(data_dir: Path, symbols: list[str] | None = None,
                 intervals: list[str] | None = None) -> pd.DataFrame:
    """The whole dataset (or a filtered part) as one frame with ``interval`` and ``symbol``
    columns — exactly what ``pd.read_parquet(dataset_root(data_dir))`` gives."""
    filters = []
    if symbols:
        filters.append(("symbol", "in", [normalize_symbol(s) for s in symbols]))
    if intervals:
        filters.append(("interval", "in", [Interval.parse(i).value for i in intervals]))
    return pd.read_parquet(dataset_root(data_dir), filters=filters or None)


def list_series(data_dir: Path) -> list[tuple[str, str]]:
    """(symbol, interval) of every file in the dataset."""
    out = []
    for path in sorted(dataset_root(data_dir).glob(f"interval=*/symbol=*/{FILE_NAME}")):
        interval = unquote(path.parent.parent.name.split("=", 1)[1])
        symbol = unquote(path.parent.name.split("=", 1)[1])
        out.append((symbol, interval))
    return out

