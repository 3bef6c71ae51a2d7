"""`pocketquant live` outside market hours: no cached quote, so it shows the last stored bar
as stale with its age, in the symbol's price scale (a real process, real embedded store)."""

import os
import subprocess
import sys
from datetime import UTC, datetime

from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.settings import load_settings
from pocketquant_pipelines.storage.bars import Source
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.storage.factory import open_bar_store

AAPL = "NASDAQ:AAPL"


def test_live_shows_the_last_stored_bar_as_stale_with_its_age(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "REDIS_", "TRADINGVIEW_"))}
    env["POCKETQUANT_DATA_DIR"] = str(tmp_path / "data")
    with open_bar_store(load_settings(env, dotenv_path=tmp_path / "none.env")) as store:
        store.add_symbol(SymbolInfo(AAPL, pricescale=100))
        store.upsert_bars([Bar(AAPL, "1m", datetime(2026, 1, 30, 20, 59, tzinfo=UTC),
                               187.2, 187.5, 187.1, 187.3, 1200.0)], source=Source.HISTORY)
    done = subprocess.run([sys.executable, "-m", "pocketquant_pipelines", "live", AAPL], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith(f"{AAPL}  STALE: no live quote in the last 60 s")
    assert "last stored 1m bar 2026-01-30 20:59 UTC close 187.30 (" in line and line.endswith(" ago)")


def test_live_without_quote_or_bar_says_so_and_fails(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "REDIS_", "TRADINGVIEW_"))}
    env["POCKETQUANT_DATA_DIR"] = str(tmp_path / "data")
    (tmp_path / "data").mkdir()  # an existing, empty data dir (a missing one is its own error)
    done = subprocess.run([sys.executable, "-m", "pocketquant_pipelines", "live", AAPL], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "no cached quote and no stored bar" in done.stdout
