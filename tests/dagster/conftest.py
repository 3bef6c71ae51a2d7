"""Fixtures for the Dagster code location: a real simulator (on a free port,
in a thread), a temp Dagster instance, and resources pointed at both."""

import os
import warnings

import dagster as dg
import pytest

from pocketquant_pipelines.defs.resources import BarStoreResource, LiveCacheResource, TradingViewResource
from pocketquant_pipelines.settings import load_settings
from pocketquant_pipelines.storage.factory import open_bar_store

warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)


@pytest.fixture(scope="module")
def simulator():
    from tradingview_simulator.server import run_simulator_in_thread

    with run_simulator_in_thread(seed=7, resolve_delay_s=0.0) as server:
        yield server


@pytest.fixture
def data_dir(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, data_dir):
    # the resources read settings from the environment: keep the developer's .env/env out
    for var in ("MONGODB_URL", "REDIS_URL", "TRADINGVIEW_WS_URL", "TRADINGVIEW_AUTH_TOKEN",
                "TRADINGVIEW_USERNAME", "TRADINGVIEW_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("POCKETQUANT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("SYNC_FIRST_BARS", "300")
    monkeypatch.setenv("SYNC_OVERLAP_BARS", "2")
    monkeypatch.chdir(data_dir)  # no stray .env from the working directory


@pytest.fixture
def settings(data_dir):
    return load_settings(dict(os.environ))


@pytest.fixture
def store(settings):
    with open_bar_store(settings) as s:
        yield s


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst


@pytest.fixture
def resources(data_dir, simulator):
    return {
        "bar_store": BarStoreResource(data_dir=str(data_dir)),
        "live_cache": LiveCacheResource(data_dir=str(data_dir)),
        "tradingview": TradingViewResource(data_dir=str(data_dir), tradingview_ws_url=simulator.url),
    }
