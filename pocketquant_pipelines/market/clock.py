"""Clock sanity: which timestamps a market can really have produced.

A tick or bar dated after ``now + skew`` (a server clock gone wrong, a corrupt frame, a year-3000
test value) or before the epoch would freeze aggregation (every later tick looks late), write
bars under keys no history has, and make an incremental sync ask for nothing. Such times are
rejected at the edge -- the tick path, the history decoder, the sync planner -- and counted.

``now`` is passed in (epoch seconds): the market core reads no clock of its own.
"""

import numpy as np

EPOCH_FLOOR = 0.0  # 1970-01-01T00:00:00Z; TradingView has no bar before it


def implausible_reason(t: float, now: float, skew_s: float) -> str | None:
    """None for a plausible epoch time ``t``; else ``"future"`` or ``"before_epoch"``."""
    if t > now + skew_s:
        return "future"
    if not t >= EPOCH_FLOOR:  # also catches NaN
        return "before_epoch"
    return None


def plausible_mask(times: np.ndarray, now: float, skew_s: float) -> np.ndarray:
    """Boolean mask over epoch seconds: True where the time is plausible."""
    t = np.asarray(times, dtype=np.float64)
    return (t >= EPOCH_FLOOR) & (t <= now + skew_s)
