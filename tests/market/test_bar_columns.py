"""BarColumns: the validated columnar form of one series that history fetches return."""

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from pocketquant_pipelines.errors import InvalidBarError
from pocketquant_pipelines.market.bar_columns import BarColumns
from pocketquant_pipelines.market.bars import Bar, bars_to_frame
from pocketquant_pipelines.market.intervals import Interval

T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


def some_bars(n=5, volume=True):
    return [Bar("NASDAQ:AAPL", Interval.M5, T0 + timedelta(minutes=5 * i), 10 + i, 12 + i, 9 + i, 11 + i,
                float(100 * i) if volume and i % 2 else None) for i in range(n)]


def test_round_trip_through_bars_and_frame():
    bars = some_bars()
    cols = BarColumns.from_bars("NASDAQ:AAPL", Interval.M5, bars[::-1])  # any order in, ascending out
    assert cols.to_bars() == bars and len(cols) == 5
    assert cols.to_frame().equals(bars_to_frame(bars))
    assert all(type(b.open) is float and b.time.tzinfo is UTC for b in cols.to_bars())


@pytest.mark.parametrize("column, value, why", [
    ("high", 8.0, "breaks the bar rules"),          # high below low
    ("open", math.inf, "breaks the bar rules"),
    ("volume", -1.0, "breaks the bar rules"),
    ("time", -1e12, "breaks the bar rules"),        # before year 1: no datetime can hold it
])
def test_checked_construction_names_the_bad_row(column, value, why):
    cols = BarColumns.from_bars("NASDAQ:AAPL", Interval.M5, some_bars())
    arrays = {f: getattr(cols, f).copy() for f in ("time", "open", "high", "low", "close", "volume")}
    arrays[column][0 if column == "time" else 3] = value
    with pytest.raises(InvalidBarError, match=f"row [03] .*{why}"):
        BarColumns.from_arrays("NASDAQ:AAPL", Interval.M5, *arrays.values())


def test_rows_sharing_a_microsecond_key_keep_the_first():
    t = np.array([60.0, 60.0000000001, 120.0])
    one = np.ones(3)
    cols = BarColumns.from_arrays("X:Y", Interval.M1, t, one, one * 2, one / 2, np.array([1.0, 1.5, 1.0]),
                                  np.full(3, np.nan))
    assert cols.time.tolist() == [60.0, 120.0] and cols.close.tolist() == [1.0, 1.0]
    assert [b.volume for b in cols.to_bars()] == [None, None]


def test_empty():
    cols = BarColumns.empty("X:Y", Interval.D1)
    assert len(cols) == 0 and cols.to_bars() == [] and cols.to_frame().empty
