"""A damaged or full store is one clear error, `pocketquant doctor` names the damage, and what
was accepted before stays readable.

Damage is made the way it happens: bytes of garbage written into the middle of the file, a
chunk of bars rewritten with values no write of ours produces (high below low, open 1e300),
the file cut short; and a full disk on a real 1 MB tmpfs.
"""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pocketquant_pipelines.errors import StoreDamagedError
from pocketquant_pipelines.storage.bars import Source
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.storage.sqlite_check import check_sqlite_bar_store
from pocketquant_pipelines.storage.sqlite_store import SQLiteBarStore, decode_chunk, encode_chunk

from .helpers import series

ROOT = Path(__file__).resolve().parents[2]
AAPL = "NASDAQ:AAPL"


def pocketquant(*argv, data_dir: Path, timeout=120):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TRADINGVIEW_", "STREAMER_", "REDIS_", "MONGODB_", "SYNC_", "POCKETQUANT_"))}
    env.update({"POCKETQUANT_DATA_DIR": str(data_dir), "TRADINGVIEW_WS_URL": "ws://127.0.0.1:9/socket.io/websocket"})
    return subprocess.run([sys.executable, "-m", "pocketquant_pipelines", *argv], env=env, cwd=data_dir.parent,
                          capture_output=True, text=True, timeout=timeout)


def one_line(proc) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture
def data_dir(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    with SQLiteBarStore(path / "bars.sqlite3") as store:
        store.add_symbol(SymbolInfo(symbol=AAPL))
        store.upsert_bars(series(AAPL, "1m", n=6000))
        store.upsert_bars(series(AAPL, "1d", n=300))
    return path


def _rewrite_first_daily_chunk(path: Path) -> tuple[int, int]:
    """Rewrite two bars of the first 1d chunk in place (high -1 < low, open 1e300), as a bad
    disk or a foreign writer would; returns their times (epoch us)."""
    conn = sqlite3.connect(path)
    sid, chunk, n, data = conn.execute(
        "SELECT c.series_id, c.chunk, c.n, c.data FROM bar_chunks c JOIN series s ON s.id = c.series_id"
        " WHERE s.interval = '1d' AND c.kind = 0 ORDER BY c.chunk LIMIT 1").fetchone()
    cols = {k: np.array(v) for k, v in decode_chunk(data, n).items()}
    cols["high"][5] = -1.0
    cols["open"][7] = 1e300
    conn.execute("UPDATE bar_chunks SET data = ? WHERE series_id = ? AND kind = 0 AND chunk = ?",
                 (encode_chunk(cols), sid, chunk))
    conn.commit()
    conn.close()
    return int(cols["time"][5]), int(cols["time"][7])


def test_a_rewritten_chunk_is_an_error_in_every_format_and_doctor_names_it(data_dir):
    path = data_dir / "bars.sqlite3"
    with SQLiteBarStore(path) as store:
        before = store.read_bars(AAPL, "1d")
    _rewrite_first_daily_chunk(path)
    with SQLiteBarStore(path) as store:
        with pytest.raises(StoreDamagedError, match=r"NASDAQ:AAPL 1d 2024-03-09T14:30:00Z .*high -1.0 < low"):
            store.read_bars(AAPL, "1d")
        assert len(store.read_bars(AAPL, "1m")) == 6000  # the other series is sound and reads
    for fmt in ("table", "csv", "json"):
        proc = pocketquant("bars", AAPL, "-i", "1d", "-f", fmt, data_dir=data_dir)
        line = one_line(proc)
        assert "NASDAQ:AAPL 1d 2024-03-09T14:30:00Z" in line and "doctor" in line and proc.stdout == ""
    doctor = pocketquant("doctor", data_dir=data_dir)
    assert doctor.returncode == 1 and "Traceback" not in doctor.stderr
    assert "2 bar(s)" in doctor.stdout and "high -1.0 < low" in doctor.stdout and "open 1e+300" in doctor.stdout
    assert "pocketquant sync NASDAQ:AAPL -i 1d --bars" in doctor.stdout
    # the fix doctor gives: history rewrites those keys (here: the same history write sync makes)
    with SQLiteBarStore(path) as store:
        store.upsert_bars(series(AAPL, "1d", n=300), source=Source.HISTORY)
        after = store.read_bars(AAPL, "1d")
    assert after.equals(before)  # every accepted bar is back, none lost
    assert pocketquant("doctor", data_dir=data_dir).returncode == 0


def test_garbage_in_the_middle_of_the_file_is_one_clear_error(data_dir):
    path = data_dir / "bars.sqlite3"
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2 // 4096 * 4096)
        f.write(os.urandom(8192))
    report = check_sqlite_bar_store(path)
    assert not report.ok
    assert any("integrity check" in f.what for f in report.findings)
    assert all(f.recovery for f in report.findings)
    for argv in (["bars", AAPL, "-i", "1d"], ["symbols", "list"], ["sync", AAPL],
                 ["symbols", "add", "--offline", "NASDAQ:MSFT"]):
        line = one_line(pocketquant(*argv, data_dir=data_dir))
        assert str(path) in line and "damaged" in line and "pocketquant doctor" in line
    doctor = pocketquant("doctor", data_dir=data_dir)
    assert doctor.returncode == 1 and "integrity check" in doctor.stdout and "restore it from a backup" in doctor.stdout


def test_a_truncated_file_is_one_clear_error(data_dir):
    path = data_dir / "bars.sqlite3"
    os.truncate(path, path.stat().st_size // 3)
    for argv in (["bars", AAPL], ["symbols", "list"], ["symbols", "add", "--offline", "NASDAQ:MSFT"]):
        line = one_line(pocketquant(*argv, data_dir=data_dir))
        assert str(path) in line and "damaged" in line and "malformed" in line
    with pytest.raises(StoreDamagedError, match=str(path)):
        SQLiteBarStore(path)
    doctor = pocketquant("doctor", data_dir=data_dir)
    assert doctor.returncode == 1 and "malformed" in doctor.stdout


def test_a_file_that_is_not_a_database_is_one_clear_error(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "bars.sqlite3").write_bytes(b"not a database " * 1000)
    line = one_line(pocketquant("symbols", "list", data_dir=data))
    assert "bars.sqlite3" in line and "damaged" in line


@pytest.fixture
def tiny_tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(mnt: Path) -> Path:
    filler = mnt / "filler"
    try:
        with open(filler, "wb") as f:
            for size in (65536, 4096, 512, 1):  # down to the last byte
                try:
                    while True:
                        f.write(b"\0" * size)
                        f.flush()
                except OSError:
                    pass
    except OSError:
        pass  # not even room for the file itself: full already
    return filler


def test_symbols_add_on_a_full_disk_is_one_line_and_loses_nothing(tiny_tmpfs):
    data = tiny_tmpfs / "data"
    added = pocketquant("symbols", "add", "--offline", AAPL, data_dir=data)
    assert added.returncode == 0, added.stderr
    filler = _fill(tiny_tmpfs)
    for code in ("NASDAQ:MSFT", "NASDAQ:NVDA"):
        line = one_line(pocketquant("symbols", "add", "--offline", code, data_dir=data))
        assert str(data) in line and ("disk is full" in line or "free space" in line), line
    filler.unlink(missing_ok=True)
    listed = pocketquant("symbols", "list", "-f", "csv", data_dir=data)
    assert listed.returncode == 0 and AAPL in listed.stdout  # what was accepted before is there
    assert "NASDAQ:MSFT" not in listed.stdout  # and a refused write left nothing half-done
    assert pocketquant("symbols", "add", "--offline", "NASDAQ:MSFT", data_dir=data).returncode == 0


def test_an_upsert_on_a_full_disk_is_one_error_and_the_store_reads_on(tiny_tmpfs):
    from pocketquant_pipelines.errors import StoreUnavailableError

    path = tiny_tmpfs / "data" / "bars.sqlite3"
    with SQLiteBarStore(path) as store:
        store.upsert_bars(series(AAPL, "1d", n=100))
        _fill(tiny_tmpfs)
        with pytest.raises(StoreUnavailableError, match="disk is full|free space"):
            for i in range(50):  # until the file outgrows the space it had
                store.upsert_bars(series(AAPL, "1m", n=4000, base=100 + i))
        assert len(store.read_bars(AAPL, "1d")) == 100


def test_bars_output_on_a_full_disk_is_one_line(tiny_tmpfs, data_dir):
    _fill(tiny_tmpfs)
    out = tiny_tmpfs / "bars.csv"
    line = one_line(pocketquant("bars", AAPL, "-i", "1m", "-f", "csv", "-o", str(out), data_dir=data_dir))
    assert "--output" in line and str(out) in line and "No space left" in line


def test_doctor_passes_a_sound_store_and_names_a_key_off_its_interval(tmp_path, data_dir):
    from datetime import timedelta

    from .helpers import T0, bar

    path = data_dir / "bars.sqlite3"
    report = check_sqlite_bar_store(path)
    assert report.ok, [f.what for f in report.findings]
    assert any("6300 in 2 series" in note for note in report.notes)
    with SQLiteBarStore(path) as store:
        store.upsert_bars([bar(AAPL, "1h", T0 + timedelta(seconds=30), 100.0)])
    [finding] = check_sqlite_bar_store(path).findings
    assert "NASDAQ:AAPL 1h" in finding.what and "2024-03-04T14:30:30Z" in finding.what
    assert "not bar starts" in finding.what and finding.recovery
