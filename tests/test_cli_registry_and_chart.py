"""`symbols update`, `symbols list --search/--streamed`, and `chart`, through the real CLI
entry point (``pocketquant_pipelines.cli.main``) on an embedded store."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pocketquant_pipelines.charts import DOWN, UP, candlestick_png
from pocketquant_pipelines.cli import main
from pocketquant_pipelines.market.bars import Bar
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.settings import load_settings
from pocketquant_pipelines.storage.factory import open_bar_store


@pytest.fixture
def env(tmp_path, monkeypatch):
    for key in ("MONGODB_URL", "REDIS_URL", "TRADINGVIEW_WS_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("POCKETQUANT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)  # no project .env
    return tmp_path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_update_changes_the_registry_the_streamer_and_dagster_read(env, capsys):
    assert run(capsys, "symbols", "add", "NASDAQ:AAPL", "--offline", "--stream")[0] == 0
    assert run(capsys, "symbols", "add", "BINANCE:BTCUSDT", "--offline", "--name", "Bitcoin")[0] == 0

    code, out, _ = run(capsys, "symbols", "update", "nasdaq:aapl", "--name", "Apple",
                       "--description", "Apple Inc. common stock", "--no-stream")
    assert code == 0 and "updated NASDAQ:AAPL" in out
    with open_bar_store(load_settings()) as store:
        info = store.get_symbol("NASDAQ:AAPL")
        assert (info.name, info.description, info.stream) == ("Apple", "Apple Inc. common stock", False)
        assert store.list_symbols(stream_only=True) == []  # what the streamer follows

    assert run(capsys, "symbols", "update", "BINANCE:BTCUSDT", "--stream")[0] == 0
    code, out, _ = run(capsys, "symbols", "list", "--streamed", "-f", "csv")
    assert code == 0 and "BINANCE:BTCUSDT" in out and "NASDAQ:AAPL" not in out
    code, out, _ = run(capsys, "symbols", "list", "--search", "COMMON STOCK")
    assert code == 0 and "NASDAQ:AAPL" in out and "BINANCE" not in out
    code, out, _ = run(capsys, "symbols", "list", "--not-streamed", "--search", "btc")
    assert code == 0 and "no symbols match" in out
    code, out, _ = run(capsys, "symbols", "update", "NASDAQ:AAPL", "--name", "")
    with open_bar_store(load_settings()) as store:
        assert store.get_symbol("NASDAQ:AAPL").name is None


@pytest.mark.parametrize("argv, needle", [
    (["symbols", "update", "NASDAQ:NOPE", "--name", "x"], "NASDAQ:NOPE is not registered"),
    (["symbols", "update", "NASDAQ:AAPL"], "nothing to update"),
    (["symbols", "update", "NASDAQ:AAPL", "--name", "x" * 300], "at most 200 characters"),
    (["symbols", "update", "NASDAQ:AAPL", "--description", "two\nlines"], "on one line"),
    (["symbols", "list", "--search", " "], "--search"),
    (["chart", "NASDAQ:AAPL", "-o", "chart.jpg"], "chart.jpg"),
    (["chart", "NASDAQ:AAPL", "-o", "/nonexistent/dir/c.png"], "/nonexistent/dir"),
    (["chart", "NASDAQ:AAPL", "-o", "c.png"], "no bars stored for NASDAQ:AAPL 1d"),
    (["chart", "NASDAQ:AAPL", "-i", "7m", "-o", "c.png"], "7m"),
    (["chart", "NASDAQ:AAPL", "-o", "c.png", "--start", "2026-02-01", "--end", "2026-01-01"], "--end"),
])
def test_bad_input_is_one_line_naming_it(env, capsys, argv, needle):
    assert run(capsys, "symbols", "add", "NASDAQ:AAPL", "--offline")[0] == 0
    code, _, err = run(capsys, *argv)
    lines = [line for line in err.splitlines() if line.startswith("error")]
    assert code != 0 and len(lines) == 1 and needle in lines[0], err
    assert "Traceback" not in err


def _bars(n: int, up: bool) -> list[Bar]:
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    out = []
    for k in range(n):
        base = 100.0 + k
        o, c = (base, base + 1) if up else (base + 1, base)
        out.append(Bar("NASDAQ:AAPL", Interval.D1, t0 + timedelta(days=k), o, base + 1.5, base - 0.5, c, 1000.0 + k))
    return out


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)


def _has(pixels: np.ndarray, hex_color: str) -> bool:
    rgb = np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)])
    return bool((np.abs(pixels.astype(int) - rgb).sum(axis=1) < 12).any())


def test_chart_draws_the_stored_bars_as_candles_with_volume(env, capsys):
    assert run(capsys, "symbols", "add", "NASDAQ:AAPL", "--offline")[0] == 0
    with open_bar_store(load_settings()) as store:
        store.upsert_bars(_bars(30, up=True))
    code, _, err = run(capsys, "chart", "NASDAQ:AAPL", "-i", "1d", "-o", "c.png")
    assert code == 0 and "wrote c.png (30 bars of NASDAQ:AAPL 1d)" in err
    image = Image.open(env / "c.png")
    assert image.format == "PNG" and image.size == (1000, 550)
    pixels = _pixels(env / "c.png")
    assert _has(pixels, UP) and not _has(pixels, DOWN)  # every stored bar closed up

    code, _, _ = run(capsys, "chart", "NASDAQ:AAPL", "-n", "5", "-o", "last5.png")
    assert code == 0


def test_falling_bars_are_red_and_an_empty_frame_still_draws(tmp_path):
    bars = _bars(10, up=False)
    frame = pd.DataFrame([{"open": b.open, "high": b.high, "low": b.low, "close": b.close,
                           "volume": b.volume} for b in bars],
                         index=pd.DatetimeIndex([b.time for b in bars], name="time"))
    candlestick_png(frame, "down", tmp_path / "down.png")
    pixels = _pixels(tmp_path / "down.png")
    assert _has(pixels, DOWN) and not _has(pixels, UP)
    empty = frame.iloc[:0]
    assert candlestick_png(empty, "nothing").startswith(b"\x89PNG")


def test_the_strategy_example_runs_on_stored_bars(env, capsys, monkeypatch):
    import runpy

    from pocketquant_pipelines import api
    from pocketquant_pipelines.settings import PROJECT_ROOT

    monkeypatch.setattr(api, "_default", None)  # the module functions open on this test's settings

    with open_bar_store(load_settings()) as store:
        store.upsert_bars([Bar("NASDAQ:AAPL", Interval.H1, b.time, b.open, b.high, b.low, b.close, b.volume)
                           for b in _bars(40, up=True)])
    example = runpy.run_path(str(PROJECT_ROOT / "examples" / "sma_crossover.py"))
    try:
        assert example["main"](["NASDAQ:AAPL"]) == 0
    finally:
        api._default.close()
    out = capsys.readouterr().out
    assert "NASDAQ:AAPL 1h: 40 bars, last close 140.00" in out and "no live quote" in out
