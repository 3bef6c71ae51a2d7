"""Storage roles behind small interfaces (base.py) with interchangeable backends.

``open_bar_store(settings)`` / ``open_live_cache(settings)`` pick the backend from
configuration: MONGODB_URL / REDIS_URL when set, the embedded backends otherwise.
See docs/storage.md.
"""

from pocketquant_pipelines.storage.factory import open_bar_store, open_live_cache

__all__ = ["open_bar_store", "open_live_cache"]
