"""The 13 bar intervals and their TradingView resolution strings.

One spelling rule everywhere an interval is typed (CLI, API, settings): a count and a unit --
``m`` minute, ``h`` hour, ``d`` day, ``w`` week, ``M`` month, the count 1 when left out -- or
TradingView's bare minute count (``60``). Any spelling of the same span names the same interval
(``60m``, ``1H``, ``60`` are all ``1h``); a span that is not one of the 13 is an error. Only
``m`` and ``M`` are case-sensitive, because ``1m`` is a minute and ``1M`` a month (as on
TradingView and in Dagster partition keys). Days, weeks and months are sessions, not fixed
lengths, so ``24h`` is not ``1d`` and ``7d`` is not ``1w``.
"""

import re
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
        """An Interval from any spelling the module's rule allows (``1h``, ``60m``, ``1H``, ``60``)."""
        if isinstance(value, Interval):
            return value
        if isinstance(value, str):
            found = _BY_NAME.get(value) or _spelled(value)
            if found is not None:
                return found
        names = ", ".join(i.value for i in cls)
        if isinstance(value, str) and value and _SPELLING.fullmatch(value):
            raise InvalidIntervalError(
                f"invalid interval {value!r}: not one of the 13 intervals ({names}); 1d, 1w"
                " and 1M are trading sessions, so 24h is not 1d and 7d not 1w")
        raise InvalidIntervalError(
            f"invalid interval {value!r}: expected one of {names}, or the same span as a count"
            " and a unit (m, h, d, w, M: 60m = 1h; 1m is a minute, 1M a month) or as"
            " TradingView's minute count (60 = 1h)"
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

_BY_MINUTES = {m: i for i, m in _MINUTES.items()}
_SPELLING = re.compile(r"([1-9][0-9]{0,5})?([mhHdDwWM]?)")
_SESSION_UNITS = {"d": Interval.D1, "w": Interval.W1, "M": Interval.MN1}


def _spelled(value: str) -> "Interval | None":
    """The interval a count-and-unit or bare-minutes spelling names, if it is one of the 13."""
    match = _SPELLING.fullmatch(value)
    if match is None or not value:
        return None
    digits, unit = match.groups()
    count = int(digits) if digits else 1
    if unit in ("", "m"):
        return _BY_MINUTES.get(count)
    if unit in ("h", "H"):
        return _BY_MINUTES.get(count * 60)
    session_unit = unit if unit == "M" else unit.lower()
    return _SESSION_UNITS[session_unit] if count == 1 else None


ALL_INTERVALS: tuple[Interval, ...] = tuple(Interval)
