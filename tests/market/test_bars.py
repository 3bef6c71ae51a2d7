"""The bar record: validation errors name the bad value; DataFrame and dict round trips."""

import math
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from pocketquant_pipelines.errors import InvalidBarError, InvalidInputError
from pocketquant_pipelines.market.bars import (
    Bar,
    bar_from_dict,
    bar_to_dict,
    bars_from_frame,
    bars_to_frame,
    empty_frame,
)
from pocketquant_pipelines.market.intervals import Interval

T0 = datetime(2024, 7, 16, 13, 30, tzinfo=UTC)


def make(**changes) -> Bar:
    values = dict(symbol="NASDAQ:AAPL", interval=Interval.H1, time=T0, open=10.0, high=12.0,
                  low=9.0, close=11.0, volume=100.0)
    values.update(changes)
    return Bar(**values)


def test_a_valid_bar():
    bar = make()
    assert bar.key == ("NASDAQ:AAPL", "1h", T0)
    assert make(volume=None).volume is None
    assert make(volume=0.0).volume == 0.0
    assert make(open=9.0, high=9.0, low=9.0, close=9.0).high == 9.0  # a flat bar is fine
    assert Bar.from_epoch("NASDAQ:AAPL", Interval.H1, T0.timestamp(), 10, 12, 9, 11, None).time == T0


@pytest.mark.parametrize("changes, needle", [
    ({"open": math.nan}, "open nan"),
    ({"high": math.inf}, "high inf"),
    ({"low": -math.inf}, "low -inf"),
    ({"close": math.nan}, "close nan"),
    ({"close": "11"}, "close '11'"),
    ({"open": True}, "open True"),
    ({"high": 8.0}, "high 8.0 < low 9.0"),
    ({"open": 12.5}, "open 12.5"),
    ({"close": 8.5}, "close 8.5"),
    ({"volume": -1.0}, "volume -1.0 is negative"),
    ({"volume": math.nan}, "volume nan"),
    ({"volume": math.inf}, "volume inf"),
    ({"time": datetime(2024, 7, 16, 13, 30)}, "datetime.datetime(2024, 7, 16, 13, 30)"),
    ({"time": datetime(2024, 7, 16, 15, 30, tzinfo=timezone(timedelta(hours=2)))}, "2024-07-16T15:30:00+02:00"),
    ({"time": "2024-07-16T13:30:00+00:00"}, "'2024-07-16T13:30:00+00:00'"),
])
def test_invalid_bars_are_rejected_naming_the_value(changes, needle):
    with pytest.raises(InvalidBarError) as info:
        make(**changes)
    assert needle in str(info.value)
    assert isinstance(info.value, InvalidInputError)


def _bars(volumes):
    return [
        make(time=T0 + timedelta(hours=k), open=10.0 + k, high=12.5 + k, low=9.25 + k, close=11.0 + k,
             volume=v)
        for k, v in enumerate(volumes)
    ]


@pytest.mark.parametrize("volumes", [[100.0, 0.0, 2.5], [None, None, None], [1.0, None, 3.0], []])
def test_frame_round_trip(volumes):
    bars = _bars(volumes)
    frame = bars_to_frame(bars)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame.index.name == "time" and str(frame.index.tz) == "UTC"
    assert all(str(dtype) == "float64" for dtype in frame.dtypes)
    assert len(frame) == len(bars)
    if volumes:
        # A missing volume is NaN in the frame and None again on the way back.
        assert frame["volume"].isna().tolist() == [v is None for v in volumes]
    back = bars_from_frame("NASDAQ:AAPL", Interval.H1, frame)
    assert back == bars
    assert all(b.time.tzinfo is not None and b.time.utcoffset() == timedelta(0) for b in back)


def test_empty_frame_matches_the_empty_conversion():
    assert bars_from_frame("NASDAQ:AAPL", Interval.H1, empty_frame()) == []
    pd.testing.assert_frame_equal(bars_to_frame([]), empty_frame())


def test_frame_from_another_zone_comes_back_in_utc():
    frame = bars_to_frame(_bars([1.0]))
    frame.index = frame.index.tz_convert("America/New_York")
    assert bars_from_frame("NASDAQ:AAPL", Interval.H1, frame)[0].time == T0


def test_bad_frames_are_rejected():
    frame = bars_to_frame(_bars([1.0, 2.0]))
    naive = frame.copy()
    naive.index = naive.index.tz_localize(None)
    with pytest.raises(InvalidBarError, match="tz-aware"):
        bars_from_frame("NASDAQ:AAPL", Interval.H1, naive)
    broken = frame.copy()
    broken.iloc[1, broken.columns.get_loc("high")] = 0.0
    with pytest.raises(InvalidBarError, match=r"2024, 7, 16, 14, 30.*high 0.0 < low 10.25"):
        bars_from_frame("NASDAQ:AAPL", Interval.H1, broken)


@pytest.mark.parametrize("volume", [12.5, None])
def test_dict_round_trip(volume):
    bar = make(volume=volume, interval=Interval.MN1)
    data = bar_to_dict(bar)
    assert data["interval"] == "1M" and data["time"] == "2024-07-16T13:30:00+00:00"
    assert bar_from_dict(data) == bar
