"""Shared by both live-cache backends: argument checks before the payloads are serialised
(the JSON forms themselves are ``storage.payloads``)."""

from collections.abc import Sequence

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.storage.payloads import bar_payload, to_json
from pocketquant_pipelines.storage.validation import check_channel, check_payload, check_symbol


def quote_json(symbol: object, quote: object) -> tuple[str, str]:
    return check_symbol(symbol), to_json(check_payload(quote, "quote"), "quote")


def current_bars_json(symbol: object, bars: Sequence[Bar]) -> tuple[str, list[tuple[Interval, str]]]:
    """(canonical symbol, [(interval, bar json)]); every bar must belong to ``symbol``.
    A later bar of the same interval in the list wins."""
    symbol = check_symbol(symbol)
    out: dict[Interval, str] = {}
    for bar in bars:
        if not isinstance(bar, Bar):
            raise InvalidInputError(f"{bar!r} is not a Bar")
        if check_symbol(bar.symbol) != symbol:
            raise InvalidInputError(f"bar of {bar.symbol!r} passed to set_current_bars({symbol!r})")
        interval = Interval.parse(bar.interval)
        out[interval] = to_json(bar_payload(bar), "bar")
    return symbol, list(out.items())


def publish_json(channel: object, data: object) -> tuple[str, str]:
    return check_channel(channel), to_json(check_payload(data), "payload")


def check_patterns(patterns: tuple[object, ...]) -> tuple[str, ...]:
    if not patterns:
        raise InvalidInputError("subscribe() needs at least one channel pattern, e.g. 'pq:quotes:*'")
    return tuple(check_channel(p) for p in patterns)


def batch_json(quotes, current_bars, messages, quote_ttl_s, bar_ttl_s):
    """Validate and serialise a whole write_batch before anything is written, so a bad item
    rejects the batch instead of half-writing it."""
    from pocketquant_pipelines.storage.validation import check_ttl

    quote_ttl, bar_ttl = check_ttl(quote_ttl_s), check_ttl(bar_ttl_s)
    q = [quote_json(symbol, quote) for symbol, quote in (quotes or {}).items()]
    b = [current_bars_json(symbol, bars) for symbol, bars in (current_bars or {}).items()]
    m = [publish_json(channel, data) for channel, data in messages]
    return q, b, m, quote_ttl, bar_ttl
