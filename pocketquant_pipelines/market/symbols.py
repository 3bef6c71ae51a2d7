"""Symbols in TradingView's ``EXCHANGE:CODE`` form.

Validation is strict because symbols become Dagster partition keys, where ``|``, ``,``, ``[``,
``]``, ``...`` and whitespace make partitions invisible or impossible to backfill.

A symbol is never rewritten into another one: only ASCII lower case is upper-cased. Unicode
case mapping would turn ``nasdaq:straße`` into ``NASDAQ:STRASSE`` (and ``ı`` into ``I``),
registering a symbol nobody asked for, so anything outside ASCII is refused before
upper-casing: TradingView's symbols are ASCII.
"""

import re
from dataclasses import dataclass

from pocketquant_pipelines.errors import InvalidSymbolError

_EXCHANGE = re.compile(r"[A-Z0-9_]+")
# Codes seen on TradingView: AAPL, BTCUSDT, NQ1!, BRK.B, BTCUSDT.P, 6E1!, EUR/USD-like pairs.
_CODE = re.compile(r"[A-Z0-9_.!&/^-]+")
# TradingView's longest symbols are a few dozen characters; a longer one is a mistake (and
# becomes a Dagster partition key and a store key in every table).
MAX_SYMBOL_LENGTH = 64


@dataclass(frozen=True, slots=True, order=True)
class Symbol:
    exchange: str
    code: str

    def __str__(self) -> str:
        return f"{self.exchange}:{self.code}"

    @classmethod
    def parse(cls, value: "Symbol | str | None") -> "Symbol":
        if isinstance(value, Symbol):
            return value
        if not isinstance(value, str):
            raise InvalidSymbolError(f"invalid symbol {value!r}: expected a string EXCHANGE:CODE")
        if len(value) > MAX_SYMBOL_LENGTH:
            raise InvalidSymbolError(f"invalid symbol {value[:40]!r}... ({len(value)} characters): longer "
                                     f"than {MAX_SYMBOL_LENGTH}; TradingView symbols are EXCHANGE:CODE, e.g. NASDAQ:AAPL")
        if not value.isascii():
            bad = next(ch for ch in value if not ch.isascii())
            raise InvalidSymbolError(
                f"invalid symbol {value!r}: {bad!r} is not ASCII; TradingView symbols are "
                "EXCHANGE:CODE in A-Z 0-9 _ . ! & / ^ -")
        text = value.upper()  # ASCII only here: no character becomes another or several
        problem = _problem(text)
        if problem:
            raise InvalidSymbolError(f"invalid symbol {value!r}: {problem}")
        exchange, code = text.split(":")
        return cls(exchange, code)


def _problem(text: str) -> str | None:
    if not text:
        return "empty; expected EXCHANGE:CODE, e.g. NASDAQ:AAPL"
    if any(ch.isspace() for ch in text):
        return "contains whitespace"
    for bad in ("|", ",", "[", "]"):
        if bad in text:
            return f"contains {bad!r}, which breaks Dagster partition keys"
    if "..." in text:
        return "contains '...', which Dagster reads as a partition range"
    if text.count(":") != 1:
        return "expected exactly one ':' as in EXCHANGE:CODE, e.g. NASDAQ:AAPL"
    exchange, code = text.split(":")
    if not _EXCHANGE.fullmatch(exchange):
        return f"exchange {exchange!r} must be letters, digits or '_'"
    if not _CODE.fullmatch(code):
        return f"code {code!r} has characters outside A-Z 0-9 _ . ! & / ^ -"
    return None


def normalize_symbol(value: "Symbol | str") -> str:
    """The canonical string form (``NASDAQ:AAPL``) used as storage key and partition key."""
    return str(Symbol.parse(value))
