"""The JSON on the live cache's wire: quotes and bars, as stored under ``pq:quote:*`` /
``pq:curbar:*`` and published on ``pq:quotes:*`` / ``pq:bars:*`` (docs/streamer.md).

Every writer builds them here: the backends' checked ``write_batch`` (stdlib json, which
rejects NaN), the Redis round writer (orjson, compact; a float may differ in notation only,
e.g. ``1e-7`` for ``1e-07``) and the streamer's tick path.
"""

import json
from collections.abc import Mapping

import orjson

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.market.bars import Bar, bar_from_dict, bar_to_dict

_orjson_dumps = orjson.dumps


def quote_payload(tick, time_text: str, received_at: float) -> dict:
    """``Tick.to_dict()`` plus ``received_at`` (epoch seconds the message arrived), with the
    time text given: the tick path takes it from a cache instead of an isoformat() per tick."""
    return {
        "symbol": tick.symbol, "time": time_text, "price": tick.price, "volume": tick.volume,
        "bid": tick.bid, "ask": tick.ask, "cumulative_volume": tick.cumulative_volume,
        "received_at": received_at,
    }


def bar_payload(bar: Bar) -> dict:
    """An in-progress bar: ``bar_to_dict``."""
    return bar_to_dict(bar)


def completed_bar_payload(bar: Bar, partial: bool) -> dict:
    """A completed bar on ``pq:bars:*``: the bar and whether it was watched from its start."""
    return {**bar_to_dict(bar), "partial": partial}


def to_json(data: Mapping[str, object], what: str) -> str:
    """Compact JSON text; a value JSON cannot carry (NaN, an object) is a one-line error."""
    try:
        return json.dumps(data, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} {data!r} is not JSON-serialisable: {exc}") from None


def to_json_bytes(data: Mapping[str, object]) -> bytes:
    """Compact JSON bytes for payloads the streamer built itself (already valid)."""
    return _orjson_dumps(data)


def bar_json_bytes(bar: Bar) -> bytes:
    """``bar_payload(bar)`` as compact JSON bytes without the intermediate ISO string: orjson
    writes an aware UTC datetime exactly as ``isoformat()`` does (tested)."""
    return _orjson_dumps({"symbol": bar.symbol, "interval": bar.interval, "time": bar.time, "open": bar.open,
                          "high": bar.high, "low": bar.low, "close": bar.close, "volume": bar.volume})


def bar_from_json(raw: str | bytes) -> Bar:
    return bar_from_dict(json.loads(raw))
