"""Plain records returned by the client."""

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from pocketquant_pipelines.market.bar_columns import BarColumns
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import Interval


@dataclass(frozen=True, slots=True)
class SymbolMetadata:
    """What ``symbol_resolved`` told us about a symbol."""

    symbol: str
    name: str | None = None
    description: str | None = None
    type: str | None = None
    currency: str | None = None
    timezone: str | None = None
    session: str | None = None
    pricescale: int | None = None
    has_volume: bool = True  # visible_plots_set == "ohlc" means no volume
    raw: dict = field(default_factory=dict)
    # The exchange calendar as sent (market.calendar parses it): the holiday list, the
    # top-level corrections when present, and the subsessions whose ``subsession_id`` one
    # carries the corrections in force otherwise.
    session_holidays: str | None = None
    corrections: str | None = None
    subsession_id: str | None = None
    subsessions: tuple[dict, ...] = ()
    resolved_at: datetime | None = None  # when this client read the symbol_resolved (UTC)

    def calendar_fields(self) -> dict:
        """The calendar part of the payload, in ``symbol_resolved``'s own shape."""
        out: dict = {"subsession_id": self.subsession_id, "subsessions": list(self.subsessions)}
        if self.session_holidays is not None:
            out["session_holidays"] = self.session_holidays
        if self.corrections is not None:
            out["corrections"] = self.corrections
        return out


@dataclass(frozen=True, slots=True)
class HistoryResult:
    """One history fetch. The bars arrive as validated columns (ascending, unique times);
    ``bars`` builds Bar objects on first use and ``frame`` a DataFrame, so a caller that
    writes columns to the store (the sync) never pays for 5000 Python objects."""

    symbol: str
    interval: Interval
    columns: BarColumns
    metadata: SymbolMetadata
    requested: int
    depth_reached: bool        # history exhausted (data_completed end / account depth) before N
    update_mode: str | None = None  # "streaming", "delayed_streaming_900", ...
    pages: int = 1             # timescale_update batches received (1 + request_more_data pages)
    # rows dated beyond now + POCKETQUANT_CLOCK_SKEW_S or before the epoch: rejected, not in columns
    implausible_times: int = 0
    _bars: list[Bar] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def bars(self) -> list[Bar]:
        if self._bars is None:
            object.__setattr__(self, "_bars", self.columns.to_bars())  # frozen: cache once
        return self._bars

    @property
    def frame(self) -> pd.DataFrame:
        return self.columns.to_frame()


@dataclass
class ClientStats:
    connected: bool = False
    connections: int = 0
    reconnects: int = 0
    frames_received: int = 0
    decode_errors: int = 0
    last_message_at: datetime | None = None
