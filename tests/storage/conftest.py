"""The MongoDB server of the storage tests (tests/storage/mongo_wire.py says which one)."""

import os
import socket

import pytest

from tests.storage.mongo_wire import MONGO_URL_ENV, WireServer, throwaway_database
from tests.support import free_port


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory) -> str:
    """URL of the MongoDB server: POCKETQUANT_TEST_MONGODB_URL, else a private wire server."""
    if os.environ.get(MONGO_URL_ENV):
        yield os.environ[MONGO_URL_ENV]
        return
    server = WireServer(tmp_path_factory.mktemp("secantus"), free_port())
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def mongo_client(mongo_url):
    """A pymongo client on the test server; databases made through ``mongo_database`` are
    dropped afterwards."""
    import pymongo

    client = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    yield client
    client.close()


@pytest.fixture
def mongo_database(mongo_client):
    """A throwaway database name on the test server, dropped after the test."""
    name = throwaway_database()
    yield name
    mongo_client.drop_database(name)
