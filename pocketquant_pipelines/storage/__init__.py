"""Storage roles behind small protocols, each with interchangeable backends.

- ``bars.BarStore``: durable bars, their stream shadow copy, history coverage;
- ``ingest.IngestLog``: one entry per write batch, read by cursor;
- ``registry.SymbolRegistry``: the symbols and what TradingView said of them;
- ``durable.DurableStore``: the three in one database (SQLite or MongoDB);
- ``live.LiveCache``: latest quotes, in-progress bars, pub/sub (embedded or Redis).

``open_bar_store(settings)`` / ``open_live_cache(settings)`` pick the backend from
configuration: MONGODB_URL / REDIS_URL when set, the embedded backends otherwise.
See docs/storage.md.
"""

from pocketquant_pipelines.storage.factory import open_bar_store, open_live_cache

__all__ = ["open_bar_store", "open_live_cache"]
