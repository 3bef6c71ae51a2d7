"""The plain sync function (what the asset and `pocketquant sync` call), against its own
simulator whose clock the test moves."""

from datetime import UTC, datetime, timedelta

import pytest

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.sync import source_from_url, sync_history, validate_bars
from pocketquant_pipelines.tradingview.client import TradingViewClient
from tradingview_simulator.server import run_simulator_in_thread


def test_incremental_sync_fills_an_outage_without_duplicates(settings, store):
    # two days in the past: the simulated clock never passes the wall clock, and the jump
    # below moves it 30 hours forward
    start = datetime.now(UTC) - timedelta(days=2)
    with run_simulator_in_thread(seed=5, resolve_delay_s=0.0, sim_start=start) as sim:
        cfg = settings.model_copy(update={"tradingview_ws_url": sim.url})
        store.add_symbol(SymbolInfo(symbol="BINANCE:BTCUSDT"))

        def sync(**kw):
            # the jump below runs the simulator ahead of the wall clock: the client's clock
            # sanity must use the same (simulated) now as the sync
            client = TradingViewClient.from_settings(cfg, clock=lambda: sim.sim_now().timestamp())
            return sync_history(store, client, "BINANCE:BTCUSDT", "1h",
                                first_bars=200, overlap_bars=2, now=sim.sim_now(), **kw)

        first = sync()
        assert (first.mode, first.requested_bars, first.inserted) == ("first", 200, 200)
        assert first.source == "simulator" and first.stored_bars == 200
        assert store.get_symbol("BINANCE:BTCUSDT").session == "24x7"  # from symbol_resolved

        sim.clock.jump(30 * 3600)  # a 30-hour outage, longer than any overlap
        second = sync()
        assert second.mode == "incremental" and 32 <= second.requested_bars <= 34
        assert second.inserted == 30 and second.updated + second.unchanged == second.fetched - 30
        frame = store.read_bars("BINANCE:BTCUSDT", "1h")
        assert len(frame) == 230 and frame.index.is_unique
        steps = frame.index.to_series().diff().dropna().dt.total_seconds().unique()
        assert list(steps) == [3600.0]  # no hole where the outage was

        again = sync(bars=50)
        assert again.mode == "explicit" and again.inserted == 0
        assert store.count_bars("BINANCE:BTCUSDT", "1h") == 230
        meta = again.metadata()
        assert meta["symbol"] == "BINANCE:BTCUSDT" and isinstance(meta["last_bar_time"], str)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "10", True, 10**9])
def test_bar_count_validation_names_the_value(bad):
    with pytest.raises(InvalidInputError, match=repr(bad).replace("(", r"\(")):
        validate_bars(bad)


def test_source_from_url():
    assert source_from_url("wss://data.tradingview.com/socket.io/websocket") == "tradingview"
    assert source_from_url("ws://127.0.0.1:8765/socket.io/websocket") == "simulator"


def test_a_sync_fills_display_fields_but_never_overwrites_the_users(settings, store):
    with run_simulator_in_thread(seed=5, resolve_delay_s=0.0) as sim:
        cfg = settings.model_copy(update={"tradingview_ws_url": sim.url})
        store.add_symbol(SymbolInfo(symbol="NASDAQ:AAPL", name="Apple (my watchlist)"))
        store.add_symbol(SymbolInfo(symbol="BINANCE:BTCUSDT"))
        for symbol in ("NASDAQ:AAPL", "BINANCE:BTCUSDT"):
            sync_history(store, TradingViewClient.from_settings(cfg), symbol, "1d",
                         first_bars=5, overlap_bars=2)
        aapl, btc = store.get_symbol("NASDAQ:AAPL"), store.get_symbol("BINANCE:BTCUSDT")
        assert aapl.name == "Apple (my watchlist)"            # the user's, kept
        assert aapl.description and aapl.session               # the rest from symbol_resolved
        assert btc.name == "BTCUSDT" and btc.description       # empty ones filled
