"""The 13 bar intervals and their TradingView resolution strings.

Names are case-sensitive on purpose: ``1m`` is one minute, ``1M`` one month (as on TradingView
and in Dagster partition keys, which are case-sensitive too).
"""

from enum import Enum

from pocketquant_pipelines.errors import InvalidIntervalError


class Interval(str, Enum):
    M1 = "1m"
    M3 = "3m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    M45 = "45m"
    H1 = "1h"
    H2 = "2h"
    H3 = "3h"
    H4 = "4h"
    D1 = "1d"
    W1 = "1w"
    MN1 = "1M"

    def __str__(self) -> str:  # partition keys and CLI output use the short name
        return self.value

    @property
    def minutes(self) -> int | None:
        """Length in minutes for intraday intervals, None for 1d/1w/1M (session-dependent)."""
        return _MINUTES.get(self)

    @property
    def is_intraday(self) -> bool:
        return self in _MINUTES

    @property
    def tv_resolution(self) -> str:
        """The resolution string our client sends in ``create_series``.

        Minutes are bare integers (``"60"`` not ``"1H"``): the web app sends minutes and every
        library accepts them (protocol notes §5.1).
        """
        return _TV_RESOLUTION[self]

    @property
    def nominal_seconds(self) -> int:
        """Approximate length, for sizing requests and freshness checks only (never alignment)."""
        if self in _MINUTES:
            return _MINUTES[self] * 60
        return {"1d": 86_400, "1w": 7 * 86_400, "1M": 30 * 86_400}[self.value]

    @classmethod
    def parse(cls, value: "Interval | str | None") -> "Interval":
        """Accept our names (``1h``), TradingView resolutions (``60``, ``1H``, ``D``) or an Interval."""
        if isinstance(value, Interval):
            return value
        if isinstance(value, str):
            found = _BY_NAME.get(value) or _BY_TV.get(value)
            if found is not None:
                return found
        raise InvalidIntervalError(
            f"invalid interval {value!r}: expected one of {', '.join(i.value for i in cls)}"
            " (case-sensitive: 1m is a minute, 1M a month) or a TradingView resolution"
            " (1, 3, 5, 15, 30, 45, 60, 120, 180, 240, 1D, 1W, 1M)"
        )

    @classmethod
    def from_tv_resolution(cls, value: str) -> "Interval":
        found = _BY_TV.get(value) if isinstance(value, str) else None
        if found is None:
            raise InvalidIntervalError(f"unsupported TradingView resolution {value!r}")
        return found


_MINUTES = {
    Interval.M1: 1, Interval.M3: 3, Interval.M5: 5, Interval.M15: 15, Interval.M30: 30,
    Interval.M45: 45, Interval.H1: 60, Interval.H2: 120, Interval.H3: 180, Interval.H4: 240,
}
_TV_RESOLUTION = {
    **{i: str(m) for i, m in _MINUTES.items()},
    Interval.D1: "1D", Interval.W1: "1W", Interval.MN1: "1M",
}
_BY_NAME = {i.value: i for i in Interval}
_BY_TV = {
    **{res: i for i, res in _TV_RESOLUTION.items()},
    "1H": Interval.H1, "2H": Interval.H2, "3H": Interval.H3, "4H": Interval.H4,
    "D": Interval.D1, "W": Interval.W1, "M": Interval.MN1,
}

ALL_INTERVALS: tuple[Interval, ...] = tuple(Interval)
