"""Error types shared by every layer.

Every error that comes from bad input subclasses ``ValueError`` and names the bad value
in its message, so the CLI, the API and a Dagster run's failure all read the same way.
"""


class PocketQuantError(Exception):
    """Base of every error raised on purpose by PocketQuant."""


class InvalidInputError(PocketQuantError, ValueError):
    """Bad input from a user, a config file or a caller. The message names the value."""


class InvalidSymbolError(InvalidInputError):
    pass


class InvalidIntervalError(InvalidInputError):
    pass


class InvalidBarError(InvalidInputError):
    pass


class InvalidSessionError(InvalidInputError):
    pass


class InvalidCalendarError(InvalidInputError):
    """A holiday list, session correction or calendar record we cannot use."""


class ConfigError(InvalidInputError):
    """A setting from the environment or .env has a value we cannot use."""


class UnknownSymbolError(PocketQuantError, KeyError):
    """A symbol is not in the registry (storage) — distinct from TradingView's symbol_error."""

    def __init__(self, symbol: str):
        super().__init__(symbol)
        self.symbol = symbol

    def __str__(self) -> str:
        return f"symbol {self.symbol!r} is not in the registry"


class StorageError(PocketQuantError):
    """A store, cache or log on disk cannot be read or written (damaged, full, unreachable)."""
