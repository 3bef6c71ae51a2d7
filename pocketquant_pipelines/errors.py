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
    """A store, cache or log cannot be read or written; one of the two kinds below."""


class StoreDamagedError(StorageError):
    """A store holds something no write of ours could have put there: a file SQLite cannot
    read, a chunk that does not decode, a bar that breaks the OHLC rules. The message names
    the file or the bar and points at ``pocketquant doctor``."""


class StoreUnavailableError(StorageError):
    """A store cannot be reached or written (server down, disk full, directory read-only).
    The message names the store and the setting that points at it."""
