"""What the streamer needs from TradingView, as types: a quote client and the quote source it
opens. ``pocketquant_pipelines.tradingview.client.TradingViewClient`` and its ``QuoteStream``
implement them; so do the tests' scripted doubles, so the tests run the service's one path.
"""

from collections.abc import AsyncIterator, Iterable
from typing import Protocol, runtime_checkable

from pocketquant_pipelines.market.ticks import Tick
from pocketquant_pipelines.tradingview.models import ClientStats, SymbolMetadata


@runtime_checkable
class QuoteSource(Protocol):
    """Live ticks of a changing set of symbols."""

    stats: ClientStats  # connected, reconnects, decode_errors: read by /health and /metrics

    async def subscribe(self, *symbols: str) -> None: ...

    async def unsubscribe(self, *symbols: str) -> None: ...

    def batches(self) -> AsyncIterator[list[Tick]]:
        """The ticks in arrival order, one list per WebSocket message (one hand-over per
        message, not per tick); ends when the source is closed, raises when it fails for good."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class QuoteClient(Protocol):
    def quote_stream(self, symbols: Iterable[str] = ()) -> QuoteSource: ...

    async def resolve_symbol(self, symbol: str) -> SymbolMetadata:
        """What ``symbol_resolved`` says about ``symbol`` (timezone, session, calendar)."""
        ...

    async def close(self) -> None: ...
