"""Bar builders shared by the storage tests."""

from datetime import UTC, datetime, timedelta

from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import Interval

T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


def bar(symbol: str, interval: Interval | str, time: datetime, close: float,
        volume: float | None = 100.0, spread: float = 1.0) -> Bar:
    """A valid bar whose values are a function of ``close`` (so equal close = equal bar)."""
    return Bar(symbol, Interval.parse(interval), time, close - spread / 4, close + spread, close - spread,
               close, volume)


def series(symbol: str = "NASDAQ:AAPL", interval: Interval | str = "1m", n: int = 100,
           start: datetime = T0, step: timedelta | None = None, base: float = 100.0,
           volume: float | None = 100.0) -> list[Bar]:
    interval = Interval.parse(interval)
    step = step or timedelta(seconds=interval.nominal_seconds)
    return [bar(symbol, interval, start + i * step, base + i * 0.5, volume) for i in range(n)]
