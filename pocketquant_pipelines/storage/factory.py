"""Pick the backend of each storage role from configuration, never from code.

- ``open_bar_store``: MongoDB when MONGODB_URL is set (database MONGODB_DATABASE), else the
  embedded SQLite store at ``settings.bar_store_path``. Either is a ``DurableStore``: bar
  store, ingest log and symbol registry in one database.
- ``open_live_cache``: Redis when REDIS_URL is set, else the embedded SQLite cache at
  ``settings.live_cache_path``.

Server client libraries are imported only when their backend is chosen.
"""

from pocketquant_pipelines.logging import get_logger
from pocketquant_pipelines.settings import Settings
from pocketquant_pipelines.storage.durable import DurableStore
from pocketquant_pipelines.storage.live import LiveCache

log = get_logger(__name__)


def open_bar_store(settings: Settings) -> DurableStore:
    if settings.mongodb_url:
        from pocketquant_pipelines.storage.mongo_store import MongoBarStore

        store: DurableStore = MongoBarStore(url=settings.mongodb_url.get_secret_value(),
                                            database=settings.mongodb_database,
                                            timeout_s=settings.mongodb_timeout_s)
        log.debug("bar_store_opened", backend="mongodb", database=settings.mongodb_database)
        return store
    from pocketquant_pipelines.storage.sqlite_store import SQLiteBarStore

    log.debug("bar_store_opened", backend="sqlite", path=str(settings.bar_store_path))
    return SQLiteBarStore(settings.bar_store_path)


def open_live_cache(settings: Settings) -> LiveCache:
    if settings.redis_url:
        from pocketquant_pipelines.storage.redis_cache import RedisLiveCache

        log.debug("live_cache_opened", backend="redis")
        return RedisLiveCache(url=settings.redis_url.get_secret_value())
    from pocketquant_pipelines.storage.embedded_cache import EmbeddedLiveCache

    log.debug("live_cache_opened", backend="embedded", path=str(settings.live_cache_path))
    return EmbeddedLiveCache(settings.live_cache_path)
