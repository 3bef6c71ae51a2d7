"""The live cache role: latest quotes, in-progress bars and pub/sub, fast and ephemeral.

Backends: Redis (``redis_cache``) and an embedded SQLite file (``embedded_cache``); both pass
the live-cache part of tests/storage/test_conformance.py.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import Interval


@dataclass(frozen=True, slots=True)
class LiveMessage:
    channel: str
    data: dict


class Subscription(ABC):
    @abstractmethod
    def get(self, timeout: float | None = None) -> LiveMessage | None:
        """Next message, or None after ``timeout`` seconds."""

    @abstractmethod
    def close(self) -> None: ...

    def __iter__(self) -> Iterator[LiveMessage]:
        while True:
            msg = self.get(timeout=1.0)
            if msg is not None:
                yield msg

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


QUOTE_TTL_S = 60
CURRENT_BAR_TTL_S = 300


def quote_channel(symbol: str) -> str:
    return f"pq:quotes:{symbol}"


def bar_channel(symbol: str, interval: Interval | str) -> str:
    return f"pq:bars:{symbol}:{Interval.parse(interval).value}"


QUOTES_PATTERN = "pq:quotes:*"
BARS_PATTERN = "pq:bars:*"


class LiveCache(ABC):
    """Latest quote per symbol (TTL 60 s), in-progress bar per (symbol, interval) (TTL 300 s),
    and pub/sub of quotes and completed bars. Quote dicts are Tick.to_dict()-shaped JSON."""

    @abstractmethod
    def set_quote(self, symbol: str, quote: Mapping[str, object], ttl_s: float = QUOTE_TTL_S) -> None: ...

    @abstractmethod
    def get_quote(self, symbol: str) -> dict | None: ...

    @abstractmethod
    def all_quotes(self) -> dict[str, dict]: ...

    @abstractmethod
    def set_current_bars(self, symbol: str, bars: Sequence[Bar],
                         ttl_s: float = CURRENT_BAR_TTL_S) -> None:
        """Write several in-progress bars of one symbol in one round trip."""

    @abstractmethod
    def get_current_bars(self, symbol: str) -> dict[Interval, Bar]: ...

    @abstractmethod
    def publish(self, channel: str, data: Mapping[str, object]) -> None: ...

    @abstractmethod
    def subscribe(self, *patterns: str) -> Subscription:
        """Glob patterns, e.g. QUOTES_PATTERN or quote_channel("NASDAQ:AAPL")."""

    def write_batch(
        self,
        quotes: Mapping[str, Mapping[str, object]] | None = None,
        current_bars: Mapping[str, Sequence[Bar]] | None = None,
        messages: Sequence[tuple[str, Mapping[str, object]]] = (),
        quote_ttl_s: float = QUOTE_TTL_S,
        bar_ttl_s: float = CURRENT_BAR_TTL_S,
    ) -> None:
        """Quotes (symbol -> quote), in-progress bars (symbol -> bars) and then messages
        ((channel, data), published in order), in as few round trips as the backend allows
        (one pipeline on Redis, one transaction embedded). Values are written before messages
        go out, so a subscriber that reacts to a message reads the new state."""
        for symbol, quote in (quotes or {}).items():
            self.set_quote(symbol, quote, quote_ttl_s)
        for symbol, bars in (current_bars or {}).items():
            self.set_current_bars(symbol, bars, bar_ttl_s)
        for channel, data in messages:
            self.publish(channel, data)

    @abstractmethod
    def ping(self) -> bool: ...

    def close(self) -> None:  # noqa: B027
        pass
