"""The one formatter every command prints through: numbers never in scientific notation,
prices to the symbol's pricescale, times in UTC, CSV/JSON at full precision."""

import io
import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pocketquant_pipelines.commands import formatting as fmt


@pytest.mark.parametrize(("value", "pricescale", "shown"), [
    (12_345_678.0, None, "12345678"),       # a day's volume: .6g would print 1.23457e+07
    (1.5e15, None, "1500000000000000"),
    (1e-7, None, "0.0000001"),
    (37581.93, 100, "37581.93"),
    (37581.9, 100, "37581.90"),
    (4150.25, 1, "4150"),
    (0.00001234, 100000000, "0.00001234"),
    (101.515625, 128, "101.515625"),        # 1/128ths: not a power of ten, all significant digits
    (142.93, None, "142.93"),
    (None, 100, "-"),
    (math.nan, None, "-"),
    (42, None, "42"),
])
def test_table_numbers(value, pricescale, shown):
    assert fmt.number(value, pricescale) == shown


def test_csv_cells_keep_full_precision_without_exponents():
    assert fmt.plain(0.1 + 0.2) == "0.30000000000000004"
    assert fmt.plain(1e16) == "10000000000000000"
    assert fmt.plain(2.5e-8) == "0.000000025"
    assert float(fmt.plain(509.357421875)) == 509.357421875
    assert (fmt.plain(None), fmt.plain(math.nan), fmt.plain(True), fmt.plain(False)) == ("", "", "true", "false")


def test_times_are_utc():
    ny = timezone(timedelta(hours=-5))
    t = datetime(2026, 1, 30, 9, 30, 15, tzinfo=ny)
    assert fmt.utc_time(t) == "2026-01-30 14:30"
    assert fmt.utc_time(t, seconds=True) == "2026-01-30 14:30:15"
    assert fmt.utc_time("2026-01-30T09:30:00-05:00") == "2026-01-30 14:30"
    assert fmt.iso(t) == "2026-01-30T14:30:15+00:00"
    assert fmt.utc_time(None) == "-"
    assert fmt.plain(datetime(2026, 1, 30, tzinfo=UTC)) == "2026-01-30T00:00:00+00:00"


def test_table_columns_align_and_missing_cells_show_a_dash():
    out = io.StringIO()
    fmt.table(["NAME", "PRICE"], [["BTC", "37581.93"], ["SPX", None]], out, align="<>")
    assert out.getvalue().splitlines() == ["NAME     PRICE", "----  --------", "BTC   37581.93", "SPX          -"]
    out = io.StringIO()
    fmt.table(["interval", "state"], [["1m", "x"]], out, rule=False, indent="  ")
    assert out.getvalue() == "  interval  state\n  1m        x\n"


def test_streaming_table_prints_its_header_before_the_first_row_only():
    out = io.StringIO()
    table = fmt.StreamingTable(["A", "B"], [3, 4], out, align="<>")
    assert out.getvalue() == ""
    table.row(["x", 1])
    table.row(["yy", 22])
    assert out.getvalue().splitlines() == ["A       B", "---  ----", "x       1", "yy     22"]


def test_json_lines_have_null_for_nan_and_iso_times():
    out = io.StringIO()
    fmt.write_json_lines([{"v": math.nan, "t": datetime(2026, 1, 30, tzinfo=UTC), "p": 0.1 + 0.2}], out)
    assert json.loads(out.getvalue()) == {"v": None, "t": "2026-01-30T00:00:00+00:00", "p": 0.1 + 0.2}


def test_csv_writer():
    out = io.StringIO()
    fmt.write_csv(["a", "b"], [[1e16, None], ["x,y", True]], out)
    assert out.getvalue() == 'a,b\n10000000000000000,\n"x,y",true\n'
