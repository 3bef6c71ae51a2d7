"""The ingest log role: one entry per write batch and series, read by cursor.

A bar store appends entries in the same write as the bars they describe (see
``BarStore.upsert_bars``); sensors page through them to react to new bars.
"""

from abc import abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.storage.bars import Source


@dataclass(frozen=True, slots=True)
class IngestEntry:
    """One write batch for one (symbol, interval, source): what a sensor needs to react to."""

    seq: int
    symbol: str
    interval: Interval
    source: Source
    first_time: datetime  # earliest bar start in the batch
    last_time: datetime   # latest bar start in the batch
    count: int            # bars inserted or updated (unchanged bars are not logged)
    written_at: datetime


@dataclass(frozen=True, slots=True)
class IngestPage:
    entries: list[IngestEntry]
    cursor: str  # pass back to ingest_since to continue; opaque, monotonic


class IngestLog(Protocol):
    @abstractmethod
    def ingest_since(self, cursor: str | None, limit: int = 1000,
                     source: Source | None = None) -> IngestPage:
        """Entries written after ``cursor`` (None = from the beginning), oldest first."""

    @abstractmethod
    def latest_ingest_cursor(self) -> str:
        """Cursor of the newest entry (a sensor starting fresh may skip history with it)."""
