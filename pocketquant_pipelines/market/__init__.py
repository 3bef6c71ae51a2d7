"""Market core: pure Python, no I/O, no Dagster.

Everything here is deterministic and side-effect free so it can be tested exhaustively and
shared by the simulator, the client, the Dagster assets and the streamer.
"""

from pocketquant_pipelines.market.bars import Bar, bars_from_frame, bars_to_frame
from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval
from pocketquant_pipelines.market.symbols import Symbol
from pocketquant_pipelines.market.ticks import Tick

__all__ = [
    "ALL_INTERVALS",
    "Bar",
    "Interval",
    "Symbol",
    "Tick",
    "bars_from_frame",
    "bars_to_frame",
]
