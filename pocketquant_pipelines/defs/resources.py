"""Resources: the bar store, the live cache and the TradingView client, configured from the
environment (``.env`` + env vars, see ``.env.example``).

Unset server URLs mean embedded backends (SQLite files under POCKETQUANT_DATA_DIR); an unset
TRADINGVIEW_WS_URL means TradingView itself. Each resource may override the data dir / URL
explicitly (tests and benchmarks do), otherwise it reads the settings when first used.

Clients are created lazily in the process that uses them — never at import time — because
code servers and run workers fork, and database/socket clients are not fork-safe. The
TradingView client is asyncio-bound, so it is created per use inside the running event loop
(``async with tradingview.open_client() as client``).

The location also sets the in-process executor: a historical run is one step doing its own
async fan-out, so a second subprocess per step would only add start-up time.
"""

import contextlib
import os
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from pocketquant_pipelines.settings import Settings, load_settings


class _SettingsMixin(dg.ConfigurableResource):
    data_dir: str | None = None
    """Overrides POCKETQUANT_DATA_DIR (embedded stores live there)."""
    tradingview_ws_url: str | None = None
    """Overrides TRADINGVIEW_WS_URL (e.g. the simulator's ws://127.0.0.1:PORT)."""

    def settings(self) -> Settings:
        env = dict(os.environ)
        if self.data_dir:
            env["POCKETQUANT_DATA_DIR"] = self.data_dir
        if self.tradingview_ws_url:
            env["TRADINGVIEW_WS_URL"] = self.tradingview_ws_url
        return load_settings(env)


class _OpenedOnce(_SettingsMixin):
    """A store opened on first use in a run and closed when the run's step ends."""

    _handle: Any = PrivateAttr(default=None)

    def _open(self, settings: Settings):
        raise NotImplementedError

    def get(self):
        if self._handle is None:
            self._handle = self._open(self.settings())
        return self._handle

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class BarStoreResource(_OpenedOnce):
    """The durable bar store (MongoDB when MONGODB_URL is set, else embedded SQLite)."""

    def _open(self, settings: Settings):
        from pocketquant_pipelines.storage.factory import open_bar_store

        return open_bar_store(settings)


class LiveCacheResource(_OpenedOnce):
    """The live cache (Redis when REDIS_URL is set, else embedded)."""

    def _open(self, settings: Settings):
        from pocketquant_pipelines.storage.factory import open_live_cache

        return open_live_cache(settings)


class TradingViewResource(_SettingsMixin):
    """Config for TradingView history requests; the client is opened per use."""

    @property
    def source(self) -> str:
        from pocketquant_pipelines.sync import source_from_url

        return source_from_url(self.settings().tradingview_ws_url)

    @contextlib.asynccontextmanager
    async def open_client(self):
        """A connected TradingViewClient for the current event loop; closed on exit."""
        from pocketquant_pipelines.tradingview.client import TradingViewClient

        client = TradingViewClient.from_settings(self.settings())
        try:
            yield client
        finally:
            await client.close()


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "bar_store": BarStoreResource(),
            "live_cache": LiveCacheResource(),
            "tradingview": TradingViewResource(),
        },
        executor=dg.in_process_executor,
    )
