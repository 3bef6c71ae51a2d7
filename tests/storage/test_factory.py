"""Backends are chosen by configuration: MONGODB_URL / REDIS_URL when set, embedded otherwise."""

import pytest

from pocketquant_pipelines.errors import ConfigError
from pocketquant_pipelines.settings import load_settings
from pocketquant_pipelines.storage import open_bar_store, open_live_cache
from pocketquant_pipelines.storage.embedded_cache import EmbeddedLiveCache
from pocketquant_pipelines.storage.sqlite_store import SQLiteBarStore
from tests.storage.helpers import series


def _settings(tmp_path, **env):
    return load_settings(env={"POCKETQUANT_DATA_DIR": str(tmp_path / "data"), **env},
                         dotenv_path=tmp_path / "no.env")


def test_embedded_defaults_live_in_the_data_dir(settings):
    with open_bar_store(settings) as store:
        assert isinstance(store, SQLiteBarStore)
        assert store.upsert_bars(series(n=3)).inserted == 3
    assert settings.bar_store_path.is_file()
    # A second open of the same settings sees the same data (another process would too).
    with open_bar_store(settings) as store:
        assert store.count_bars("NASDAQ:AAPL", "1m") == 3
    cache = open_live_cache(settings)
    assert isinstance(cache, EmbeddedLiveCache)
    cache.set_quote("NASDAQ:AAPL", {"price": 1.0})
    cache.close()
    assert settings.live_cache_path.is_file()


def test_redis_url_selects_redis(tmp_path, redis_server):
    from pocketquant_pipelines.storage.redis_cache import RedisLiveCache

    cache = open_live_cache(_settings(tmp_path, REDIS_URL=redis_server))
    assert isinstance(cache, RedisLiveCache)
    cache.set_quote("NASDAQ:AAPL", {"price": 1.0})
    assert cache.get_quote("NASDAQ:AAPL") == {"price": 1.0}
    cache.close()
    assert not (tmp_path / "data" / "live.sqlite3").exists()


def test_mongodb_url_selects_mongodb_with_the_configured_database(tmp_path, monkeypatch, mongo_url,
                                                                  mongo_client, mongo_database):
    # The configured URL names a host that is not here: the client the store makes is pointed
    # at the test server instead, after recording the URL it was given.
    import pymongo

    made = []
    real_client = pymongo.MongoClient

    def recording_client(url, **kwargs):
        made.append(url)
        return real_client(mongo_url, **kwargs)

    monkeypatch.setattr(pymongo, "MongoClient", recording_client)
    from pocketquant_pipelines.storage.mongo_store import MongoBarStore

    settings = _settings(tmp_path, MONGODB_URL="mongodb://user:pw@db.example:27017",
                         MONGODB_DATABASE=mongo_database)
    with open_bar_store(settings) as store:
        assert isinstance(store, MongoBarStore)
        assert store.database == mongo_database
        assert store.ping()
        assert store.upsert_bars(series(n=3)).inserted == 3
    assert made == ["mongodb://user:pw@db.example:27017"]  # the secret is revealed only here
    assert mongo_client[mongo_database]["bars"].count_documents({}) == 3
    assert not (tmp_path / "data" / "bars.sqlite3").exists()


def test_bad_database_name_is_a_config_error(mongo_client):
    from pocketquant_pipelines.storage.mongo_store import MongoBarStore

    with pytest.raises(ConfigError, match="'my.db'"):
        MongoBarStore(client=mongo_client, database="my.db")
