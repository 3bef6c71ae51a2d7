"""The strategy's API (``pocketquant_pipelines.api``) against a running system: the simulator as
TradingView, a real ``python -m streamer`` process, bars synced by the CLI, on the embedded
defaults and on Redis. Everything read back goes through the public API only."""

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pytest

from pocketquant_pipelines import api
from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.settings import PROJECT_ROOT, load_settings
from tradingview_simulator import run_simulator_in_thread
from tests.support import cli, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

BTC = "BINANCE:BTCUSDT"
SIM_START = datetime(2026, 1, 30, 15, 0, 5, tzinfo=UTC)


@pytest.fixture(scope="module", params=["embedded", "redis"])
def system(request, tmp_path_factory):
    """(api client, env) on a running simulator + streamer; the store holds synced 1h bars.
    One system per backend, shared by the tests of this module (they only read)."""
    tmp_path = tmp_path_factory.mktemp(f"api-{request.param}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "TRADINGVIEW_", "REDIS_"))}
    env.update({"POCKETQUANT_DATA_DIR": str(tmp_path / "data"), "STREAMER_HEALTH_PORT": "0",
                "STREAMER_REGISTRY_POLL_S": "0.2", "STREAMER_STORE_BATCH_MS": "100",
                "STREAMER_CACHE_FLUSH_MS": "50", "SYNC_FIRST_BARS": "300"})
    if request.param == "redis":
        redis_proc = request.getfixturevalue("redis_server_proc")
        if redis_proc.proc is None:  # a fault test took it away
            redis_proc.start()
        env["REDIS_URL"] = redis_proc.url
    with run_simulator_in_thread(seed=4, speed=60, sim_start=SIM_START, resolve_delay_s=0.0) as sim:
        env["TRADINGVIEW_WS_URL"] = sim.url
        for args in (["symbols", "add", BTC, "--stream", "--name", "Bitcoin / Tether"],
                     ["sync", BTC, "-i", "1h", "-i", "1d"]):
            done = cli(env, *args)
            assert done.returncode == 0, done.stderr
        streamer = subprocess.Popen([sys.executable, "-m", "streamer"], env=env, cwd=PROJECT_ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        client = api.PocketQuant(load_settings(env, dotenv_path=tmp_path / "none.env"))
        try:
            yield client, env
        finally:
            client.close()
            streamer.terminate()
            streamer.wait(timeout=30)


def test_bars_quotes_current_bars_and_subscriptions(system):
    client, _ = system

    frame = client.bars(BTC, "1h")
    assert len(frame) >= 300 and frame.index.tz is not None and str(frame.index.tz) == "UTC"
    assert {"open", "high", "low", "close", "volume", "source", "partial"} <= set(frame.columns)
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    latest = client.bars(BTC, "1h", limit=5)
    assert list(latest.index) == list(frame.index[-5:])
    window = client.bars(BTC, "1h", start=frame.index[10], end=frame.index[20])
    assert list(window.index) == list(frame.index[10:20])
    table = client.bars_arrow(BTC, "1h")
    assert isinstance(table, pa.Table) and table.num_rows == len(frame)
    assert table.column("close").to_pylist() == frame["close"].tolist()

    quote = wait_for(lambda: client.latest_quote(BTC), 60, "a cached quote")
    assert quote.symbol == BTC and quote.price > 0 and quote.age_s < 30
    current = wait_for(lambda: (c := client.current_bars(BTC)).bars and c, 30, "current bars")
    assert set(current.bars) == {"1m", "3m", "5m", "15m", "30m", "45m", "1h", "2h", "3h", "4h",
                                 "1d", "1w", "1M"}
    assert current.age_s is not None and current.age_s < 30

    quotes = list(client.subscribe_quotes([BTC], timeout=20, limit=3))
    assert len(quotes) == 3 and all(q.symbol == BTC and q.price > 0 for q in quotes)
    # at 60x a simulated minute lasts one second: a completed 1m bar arrives quickly
    bars = list(client.subscribe_bars(BTC, ["1m"], timeout=30, limit=2))
    assert len(bars) == 2 and all(b.symbol == BTC and b.interval.value == "1m" for b in bars)
    assert bars[1].time > bars[0].time and all(b.low <= b.open <= b.high for b in bars)

    async def first_async():
        got = []
        async for q in client.asubscribe_quotes(BTC, timeout=20, limit=2):
            got.append(q)
        async for b in client.asubscribe_bars([BTC], "1m", timeout=30, limit=1):
            got.append(b)
        return got

    got = asyncio.run(first_async())
    assert [type(g).__name__ for g in got] == ["Quote", "Quote", "Bar"]

    (info,) = client.symbols(search="bitcoin")
    assert info.symbol == BTC and info.stream and info.timezone
    assert client.symbols(streamed=False) == []


def test_bad_arguments_are_one_line_errors(system):
    client, _ = system
    for call, needle in [
        (lambda: client.bars("NOT A SYMBOL", "1h"), "NOT A SYMBOL"),
        (lambda: client.bars(BTC, "7m"), "7m"),
        (lambda: client.bars(BTC, "1h", start="yesterday-ish"), "yesterday-ish"),
        (lambda: client.bars(BTC, "1h", limit=0), "limit=0"),
        (lambda: list(client.subscribe_quotes([])), "no symbols"),
    ]:
        with pytest.raises(InvalidInputError) as err:
            call()
        assert needle in str(err.value) and "\n" not in str(err.value)


def test_module_functions_follow_the_settings(system, monkeypatch):
    _, env = system
    for key in ("POCKETQUANT_DATA_DIR", "REDIS_URL"):
        if key in env:
            monkeypatch.setenv(key, env[key])
        else:
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(api, "_default", None)
    try:
        assert isinstance(api.bars(BTC, "1d"), pd.DataFrame) and len(api.bars(BTC, "1d")) > 0
        assert api.symbols()[0].symbol == BTC
    finally:
        if api._default is not None:
            api._default.close()
