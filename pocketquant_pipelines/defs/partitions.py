"""Partitions of the bar assets: symbol (dynamic) x interval (static, the 13 intervals).

Key format: Dagster sorts dimension names, so a key string is ``"<interval>|<symbol>"``, e.g.
``"1d|NASDAQ:AAPL"``. Keys are case-sensitive (``1m`` minute, ``1M`` month). The key order of
``get_partition_keys`` is interval-major with symbols in registration order, so a key range
``"1d|<first>" .. "1d|<last>"`` covers one interval for every symbol.

Only ``symbol_registry_sensor`` adds or removes symbol partitions (one owner avoids races).
Symbols are validated with ``market.symbols`` before they become keys: Dagster does not
validate dynamic keys, and ``| , [ ] ...`` would make a partition invisible.
"""

from collections.abc import Iterable

import dagster as dg

from pocketquant_pipelines.market.intervals import ALL_INTERVALS, Interval
from pocketquant_pipelines.market.symbols import normalize_symbol

SYMBOLS_PARTITIONS_NAME = "symbols"
INTERVAL_KEYS: list[str] = [i.value for i in ALL_INTERVALS]

symbol_partitions = dg.DynamicPartitionsDefinition(name=SYMBOLS_PARTITIONS_NAME)
interval_partitions = dg.StaticPartitionsDefinition(INTERVAL_KEYS)
bars_partitions = dg.MultiPartitionsDefinition(
    {"symbol": symbol_partitions, "interval": interval_partitions}
)


def partition_key(symbol: str, interval: Interval | str) -> dg.MultiPartitionKey:
    """The partition key of (symbol, interval); validates both (errors name the bad value)."""
    return dg.MultiPartitionKey(
        {"symbol": normalize_symbol(symbol), "interval": Interval.parse(interval).value}
    )


def key_str(symbol: str, interval: Interval | str) -> str:
    return str(partition_key(symbol, interval))


def split_key(key: "dg.MultiPartitionKey | str") -> tuple[str, Interval]:
    """(symbol, Interval) of a key object or a key string ``"1d|NASDAQ:AAPL"``."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims["symbol"], Interval.parse(dims["interval"])
    interval, sep, symbol = str(key).partition("|")
    if not sep:
        raise ValueError(f"partition key {key!r} is not '<interval>|<symbol>'")
    return symbol, Interval.parse(interval)


def keys_for(symbols: Iterable[str], intervals: Iterable[Interval | str] = ALL_INTERVALS) -> list[str]:
    """Key strings for the cross product, interval-major like Dagster's own ordering."""
    syms = list(symbols)
    return [key_str(s, i) for i in intervals for s in syms]
