"""How commands open the stores: every failure to reach, create or write one is one error line
naming the setting that points at it (POCKETQUANT_DATA_DIR, MONGODB_URL, REDIS_URL).

Before a command opens an embedded store file it runs SQLite's quick check on it (one pass
over the file): a damaged file is one error naming it, never read or written as if sound.

A command that only reads never creates POCKETQUANT_DATA_DIR: a directory that does not exist
means nothing was stored there (or the setting has a typo), and saying so beats answering
"no bars" from a fresh empty store. Commands that write may create it.
"""

from __future__ import annotations

import os
from pathlib import Path

from pocketquant_pipelines.errors import ConfigError, StoreUnavailableError


def check_data_dir(settings, write: bool) -> Path:
    """POCKETQUANT_DATA_DIR as the embedded stores need it: a directory that exists (a write
    may create it) and that SQLite may write its journal files into (reads need that too)."""
    path = settings.data_dir
    var = f"POCKETQUANT_DATA_DIR={str(path)!r}"
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{var} is not a directory (it is a file); point it at a directory")
    if not path.exists():
        if not write:
            raise ConfigError(f"{var} does not exist: nothing is stored there yet (a command that "
                              "writes, such as `pocketquant symbols add` or `pocketquant sync`, creates it)")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(f"cannot create {var}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK) or _read_only_mount(path):
        raise StoreUnavailableError(f"{var} is not writable (the embedded stores write their "
                                    "journal files there, even to read)")
    return path


def _read_only_mount(path: Path) -> bool:
    # os.access says yes to root on a read-only file system
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _driver_reason(exc: BaseException) -> str:
    """The first clause of a driver's error: pymongo appends its whole topology description."""
    text = " ".join(str(exc).split())
    for cut in (" (configured timeouts", ", Timeout:", ", full error:"):
        text = text.split(cut, 1)[0]
    return text[:200] or type(exc).__name__


def open_bar_store(settings, write: bool = False):
    from pocketquant_pipelines.settings import redact_url
    from pocketquant_pipelines.storage.factory import open_bar_store as open_store

    if settings.mongodb_url is None:
        from pocketquant_pipelines.storage.sqlite_check import quick_check

        check_data_dir(settings, write)
        quick_check(settings.bar_store_path, "bar store")  # before opening: opening writes
        return open_store(settings)
    import pymongo.errors

    url = redact_url(settings.mongodb_url.get_secret_value())
    try:
        return open_store(settings)
    except pymongo.errors.PyMongoError as exc:
        raise StoreUnavailableError(
            f"cannot reach MongoDB at {url} (MONGODB_URL) within MONGODB_TIMEOUT_S="
            f"{settings.mongodb_timeout_s:g}: {_driver_reason(exc)}") from None
    except ValueError as exc:  # pymongo's URI parser (settings catch most of it first)
        raise ConfigError(f"MONGODB_URL {url}: {_driver_reason(exc)}") from None


def open_live_cache(settings, write: bool = False):
    """The live cache, checked reachable (a Redis that is down fails here, in one line)."""
    from pocketquant_pipelines.settings import redact_url
    from pocketquant_pipelines.storage.factory import open_live_cache as open_cache

    if settings.redis_url is None:
        from pocketquant_pipelines.storage.sqlite_check import quick_check

        check_data_dir(settings, write)
        quick_check(settings.live_cache_path, "live cache")
        return open_cache(settings)
    import redis

    secret = settings.redis_url.get_secret_value()
    url = redact_url(secret)
    try:
        probe = redis.Redis.from_url(secret, socket_connect_timeout=5, socket_timeout=5)
    except ValueError as exc:  # redis-py's URL parser (settings catch most of it first)
        raise ConfigError(f"REDIS_URL {url}: {_driver_reason(exc)}") from None
    try:
        probe.ping()
    except redis.RedisError as exc:
        raise StoreUnavailableError(f"cannot reach Redis at {url} (REDIS_URL): {_driver_reason(exc)}") from None
    finally:
        probe.close()
    return open_cache(settings)
