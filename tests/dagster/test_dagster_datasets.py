"""The Parquet dataset layout: readable as one hive-partitioned dataset by pandas/pyarrow,
per-series files replaced atomically."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from pocketquant_pipelines import datasets as ds


def frame(n=5, start=datetime(2024, 1, 1, tzinfo=UTC), volume=True):
    idx = pd.DatetimeIndex([start + timedelta(days=i) for i in range(n)], name="time")
    close = np.arange(n, dtype="float64") + 100
    return pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close,
                         "volume": np.full(n, 7.0) if volume else np.full(n, np.nan),
                         "source": ["history"] * n, "partial": [False] * n}, index=idx)


def test_pandas_reads_the_whole_dataset_with_real_symbols(tmp_path):
    ds.write_series(tmp_path, "NASDAQ:AAPL", "1d", frame(5))
    ds.write_series(tmp_path, "CME_MINI:NQ1!", "1h", frame(3))
    ds.write_series(tmp_path, "SP:SPX", "1d", frame(4, volume=False))
    df = pd.read_parquet(ds.dataset_root(tmp_path))
    counts = df.groupby(["symbol", "interval"], observed=True).size().to_dict()
    assert counts == {("CME_MINI:NQ1!", "1h"): 3, ("NASDAQ:AAPL", "1d"): 5, ("SP:SPX", "1d"): 4}
    assert str(df["time"].dtype) == "datetime64[us, UTC]"
    assert df.loc[df["symbol"] == "SP:SPX", "volume"].isna().all()
    # pyarrow's dataset API with hive partitioning sees the same values (URI-decoded)
    table = pads.dataset(ds.dataset_root(tmp_path), format="parquet", partitioning="hive").to_table()
    assert set(table.column("symbol").to_pylist()) == {"NASDAQ:AAPL", "CME_MINI:NQ1!", "SP:SPX"}
    assert sorted(ds.list_series(tmp_path)) == [("CME_MINI:NQ1!", "1h"), ("NASDAQ:AAPL", "1d"), ("SP:SPX", "1d")]
    only = ds.read_dataset(tmp_path, symbols=["nasdaq:aapl"])
    assert set(only["symbol"]) == {"NASDAQ:AAPL"} and len(only) == 5


def test_rewrite_replaces_the_file_and_leaves_no_temp_files(tmp_path):
    ds.write_series(tmp_path, "NASDAQ:AAPL", "1d", frame(5))
    written = ds.write_series(tmp_path, "NASDAQ:AAPL", "1d", frame(8))
    assert written.rows == 8 and written.path.name == "bars.parquet"
    assert list(written.path.parent.iterdir()) == [written.path]
    back = ds.read_series(tmp_path, "NASDAQ:AAPL", "1d")
    assert len(back) == 8 and back.index.name == "time"
    meta = pq.read_schema(written.path).metadata
    assert meta[b"pocketquant.symbol"] == b"NASDAQ:AAPL" and meta[b"pocketquant.interval"] == b"1d"


def test_an_empty_series_is_a_valid_file(tmp_path):
    written = ds.write_series(tmp_path, "NASDAQ:AAPL", "1M", frame(0))
    assert written.rows == 0 and written.first_time is None
    assert len(ds.read_series(tmp_path, "NASDAQ:AAPL", "1M")) == 0


def test_partial_and_source_columns_survive_and_are_counted(tmp_path):
    f = frame(6)
    f["source"] = ["history"] * 4 + ["stream"] * 2
    f["partial"] = [False] * 5 + [True]
    written = ds.write_series(tmp_path, "BINANCE:BTCUSDT", "1h", f)
    assert (written.partial_rows, written.stream_rows) == (1, 2)
    back = ds.read_series(tmp_path, "BINANCE:BTCUSDT", "1h")
    assert back["partial"].tolist() == [False] * 5 + [True]
    assert back["source"].tolist() == ["history"] * 4 + ["stream"] * 2
    whole = pd.read_parquet(ds.dataset_root(tmp_path))
    assert {"partial", "source"} <= set(whole.columns) and int(whole["partial"].sum()) == 1
