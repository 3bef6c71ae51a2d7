"""Helpers shared by the tests in tests/dagster (a plain module: `conftest` names collide
across test directories)."""

from pocketquant_pipelines.storage.registry import SymbolInfo


def register(store, instance, *symbols: str) -> None:
    """What `pocketquant symbols add` + the registry sensor do, for tests that need partitions."""
    for s in symbols:
        store.add_symbol(SymbolInfo(symbol=s))
    instance.add_dynamic_partitions("symbols", list(symbols))
