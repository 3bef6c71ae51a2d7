"""The check judgements as plain functions over bar frames (the same functions the Dagster
asset checks and the range-run path call)."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pocketquant_pipelines.defs.checks import (
    evaluate_duplicates,
    evaluate_freshness,
    evaluate_gaps,
    evaluate_ohlc,
)
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.sessions import SESSION_24X7, Session, bar_starts_between

AAPL_SESSION = Session.parse("0930-1600", "America/New_York")


def frame_at(times, close=100.0) -> pd.DataFrame:
    n = len(times)
    return pd.DataFrame(
        {"open": np.full(n, close), "high": np.full(n, close + 1), "low": np.full(n, close - 1),
         "close": np.full(n, close), "volume": np.full(n, 10.0)},
        index=pd.DatetimeIndex(times, name="time").tz_convert("UTC"),
    )


def aapl_days(start, end, interval="1d"):
    return bar_starts_between(start, end, Interval.parse(interval), AAPL_SESSION)


def test_ohlc_sanity_passes_clean_bars_and_names_a_planted_bad_bar():
    times = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=i) for i in range(5)]
    frame = frame_at(times)
    assert evaluate_ohlc(frame).passed
    frame.iloc[2, frame.columns.get_loc("high")] = 98.0  # high below open/close
    frame.iloc[4, frame.columns.get_loc("volume")] = -1.0
    out = evaluate_ohlc(frame)
    assert not out.passed and out.blocking and out.severity == "ERROR"
    assert out.metadata["bad_bars"] == 2
    bad_times = [e["time"] for e in out.metadata["examples"].data]
    assert bad_times == [times[2].isoformat(), times[4].isoformat()]


def test_ohlc_sanity_accepts_missing_volume():
    frame = frame_at([datetime(2024, 1, 1, tzinfo=UTC)])
    frame["volume"] = np.nan  # indices (SP:SPX) have no volume
    assert evaluate_ohlc(frame).passed


def test_duplicates_detects_a_planted_duplicate_and_disorder():
    t = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=i) for i in range(4)]
    assert evaluate_duplicates(frame_at(t)).passed
    dup = evaluate_duplicates(frame_at([t[0], t[1], t[1], t[2]]))
    assert not dup.passed and dup.metadata["duplicate_times"] == 1
    assert dup.metadata["examples"].data == [t[1].isoformat()]
    disordered = evaluate_duplicates(frame_at([t[1], t[0], t[2]]))
    assert not disordered.passed and disordered.metadata["ascending"] is False


def test_duplicates_reports_repeats_in_the_fetched_batch():
    t = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=i) for i in range(3)]
    out = evaluate_duplicates(frame_at(t), fetched_duplicate_times=2)
    assert not out.passed and "repeated 2" in out.description


def test_weekend_is_not_a_gap_for_aapl_daily_bars():
    days = aapl_days(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))
    assert len(days) > 15
    # the session has no weekend days: consecutive stored days across a weekend are complete
    assert any((b - a) >= timedelta(days=3) for a, b in zip(days, days[1:], strict=False))
    out = evaluate_gaps(frame_at(days), "1d", AAPL_SESSION)
    assert out.passed, out.description
    assert out.metadata["missing_bars"] == 0


def test_nights_are_not_gaps_for_aapl_intraday_bars():
    hours = aapl_days(datetime(2024, 1, 3, tzinfo=UTC), datetime(2024, 1, 10, tzinfo=UTC), "1h")
    assert evaluate_gaps(frame_at(hours), "1h", AAPL_SESSION).passed


def test_a_planted_gap_is_reported_with_its_range():
    days = aapl_days(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))
    missing = days[5:8]
    kept = [d for d in days if d not in missing]
    out = evaluate_gaps(frame_at(kept), "1d", AAPL_SESSION)
    assert not out.passed and out.severity == "WARN" and not out.blocking
    assert out.metadata["missing_bars"] == 3
    assert out.metadata["missing_ranges"].data == [
        {"from": missing[0].isoformat(), "to": missing[-1].isoformat(), "bars": 3}
    ]


def test_the_same_weekend_is_a_gap_for_a_24x7_market():
    days = aapl_days(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 20, tzinfo=UTC))
    crypto_days = [d.replace(hour=0, minute=0) for d in days]
    out = evaluate_gaps(frame_at(crypto_days), "1d", SESSION_24X7)
    assert not out.passed and out.metadata["missing_bars"] >= 4  # two weekends


@pytest.mark.parametrize("interval", ["1m", "1h", "1d"])
def test_freshness_current_vs_stale(interval):
    ivl = Interval.parse(interval)
    now = datetime(2024, 1, 10, 12, 0, 30, tzinfo=UTC)
    starts = bar_starts_between(now - timedelta(days=20), now, ivl, SESSION_24X7)
    assert evaluate_freshness(frame_at(starts), ivl, SESSION_24X7, now=now).passed
    # the bar in progress may still be missing: one bar of slack
    assert evaluate_freshness(frame_at(starts[:-1]), ivl, SESSION_24X7, now=now).passed
    stale = evaluate_freshness(frame_at(starts[:-5]), ivl, SESSION_24X7, now=now)
    assert not stale.passed and stale.severity == "WARN"
    assert stale.metadata["lag_seconds"] > 0


def test_freshness_does_not_flag_a_closed_market_on_saturday():
    saturday = datetime(2024, 1, 13, 12, 0, tzinfo=UTC)
    days = aapl_days(datetime(2023, 12, 1, tzinfo=UTC), saturday)
    assert days[-1].weekday() == 4  # Friday's bar is the latest one
    assert evaluate_freshness(frame_at(days), "1d", AAPL_SESSION, now=saturday).passed
