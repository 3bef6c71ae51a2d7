"""A durable backend: the bar store, the ingest log and the symbol registry in one database.

The three roles share one database because a bar write and its ingest entry commit together,
and the registry lives beside the bars it describes. Every backend passes
tests/storage/test_conformance.py unchanged and may be opened by several processes at once
(Dagster runs, the streamer, the CLI). Callers type against the role they use
(``BarStore``, ``IngestLog``, ``SymbolRegistry``); ``open_bar_store`` hands out this union.
"""

from abc import abstractmethod
from typing import Protocol

from pocketquant_pipelines.storage.bars import BarStore
from pocketquant_pipelines.storage.ingest import IngestLog
from pocketquant_pipelines.storage.registry import SymbolRegistry


class DurableStore(BarStore, IngestLog, SymbolRegistry, Protocol):
    @abstractmethod
    def ping(self) -> bool: ...

    def close(self) -> None:
        """Release connections (a backend without any keeps this no-op)."""  # noqa: B027

    def __enter__(self) -> "DurableStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
