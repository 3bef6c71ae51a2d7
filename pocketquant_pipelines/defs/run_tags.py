"""Run tags that say what a sync run covers, so the Runs page reads as sync status.

Dagster's run filter matches a tag key and value exactly, so the tags are split by what a
user filters on:

* ``pocketquant/symbol``: the one symbol a run covers (``NASDAQ:AAPL``), or ``<n> symbols``;
* ``pocketquant/interval``: the one interval (``1d``), or ``<n> intervals``;
* ``pocketquant/symbols`` / ``pocketquant/intervals`` (runs of several): every symbol / interval,
  comma-separated (cut at ``MAX_LISTED`` with ``+n more``), to read on the run's row;
* ``pocketquant/range``: one line, e.g. ``1d × 4 symbols (BINANCE:BTCUSDT .. SP:SPX)``.

The same tags are set on scheduled and sensor run requests (visible while queued) and added
by the asset itself for runs launched from the UI or by a backfill.
"""

from collections.abc import Iterable

from pocketquant_pipelines.defs.partitions import INTERVAL_KEYS, split_key

SYMBOL_TAG = "pocketquant/symbol"
INTERVAL_TAG = "pocketquant/interval"
SYMBOLS_TAG = "pocketquant/symbols"
INTERVALS_TAG = "pocketquant/intervals"
RANGE_TAG = "pocketquant/range"
MAX_LISTED = 12


def _listed(values: list[str]) -> str:
    shown = ", ".join(values[:MAX_LISTED])
    return shown + (f", +{len(values) - MAX_LISTED} more" if len(values) > MAX_LISTED else "")


def coverage_tags(keys: Iterable[str]) -> dict[str, str]:
    """Tags naming the symbols and intervals of ``keys`` (``"<interval>|<symbol>"`` strings)."""
    symbols: list[str] = []
    intervals: set[str] = set()
    count = 0
    for key in keys:
        symbol, interval = split_key(key)
        if symbol not in symbols:
            symbols.append(symbol)
        intervals.add(interval.value)
        count += 1
    if not count:
        return {}
    ordered = [i for i in INTERVAL_KEYS if i in intervals]
    one_symbol = symbols[0] if len(symbols) == 1 else None
    one_interval = ordered[0] if len(ordered) == 1 else None
    what_symbols = one_symbol or f"{len(symbols)} symbols ({symbols[0]} .. {symbols[-1]})"
    what_intervals = one_interval or (f"{len(ordered)} intervals" if len(ordered) < len(INTERVAL_KEYS)
                                      else "all intervals")
    tags = {
        SYMBOL_TAG: one_symbol or f"{len(symbols)} symbols",
        INTERVAL_TAG: one_interval or f"{len(ordered)} intervals",
        RANGE_TAG: f"{what_intervals} × {what_symbols}: {count} partition(s)",
    }
    # the lists only where they say more than the single tags (fewer tags to read on a row)
    if one_symbol is None:
        tags[SYMBOLS_TAG] = _listed(symbols)
    if one_interval is None:
        tags[INTERVALS_TAG] = ", ".join(ordered)
    return tags
