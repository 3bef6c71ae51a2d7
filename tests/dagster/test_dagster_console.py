"""What the Dagster UI shows of a sync, read from a real (temporary) instance after real runs
against the simulator: run tags, the run log, per-key check evaluations, a failed symbol's
partitions, the overview table and the lineage from TradingView."""

import dagster as dg

from pocketquant_pipelines.defs.checks import RANGE_CHECK_NAMES
from pocketquant_pipelines.defs.history import historical_bars, progress_due
from pocketquant_pipelines.defs.keys import HISTORICAL_BARS, STREAMED_BARS, SYNC_OVERVIEW, TRADINGVIEW
from pocketquant_pipelines.defs.overview import sync_overview
from pocketquant_pipelines.defs.status import sync_status

from dagster_helpers import register

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
SYMBOLS = ["NASDAQ:AAPL", "NASDAQ:NOSUCH", "BINANCE:BTCUSDT"]


def _messages(instance, run_id) -> list[str]:
    return [e.user_message for e in instance.all_logs(run_id) if e.user_message]


def test_a_long_run_logs_about_ten_progress_lines_and_always_the_last():
    for total, lines in ((1, 0), (4, 4), (10, 10), (25, 9), (100, 10), (1300, 10)):
        due = [n for n in range(1, total + 1) if progress_due(n, total)]
        assert len(due) == lines and (not due or due[-1] == total), (total, due)


def test_a_range_run_with_a_bad_symbol_reads_as_sync_status(instance, resources, store):
    register(store, instance, *SYMBOLS)
    result = dg.materialize(
        [historical_bars], instance=instance, resources=resources, raise_on_error=False,
        tags={RANGE_START: "1d|NASDAQ:AAPL", RANGE_END: "1d|BINANCE:BTCUSDT"},
    )
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    # the run names what it covers, in tags the Runs page filters by
    assert run.tags["pocketquant/interval"] == "1d"
    assert run.tags["pocketquant/symbols"] == ", ".join(SYMBOLS)
    assert run.tags["pocketquant/range"] == "1d × 3 symbols (NASDAQ:AAPL .. BINANCE:BTCUSDT): 3 partition(s)"

    # the log names each key as it syncs and ends with a summary table
    log = _messages(instance, result.run_id)
    assert any(m.startswith("1d|NASDAQ:AAPL: NASDAQ:AAPL 1d [first, simulator]: fetched 300") for m in log)
    assert any(m.startswith("1d|NASDAQ:NOSUCH: FAILED: SymbolNotFoundError") for m in log)
    # progress as the keys finish (about ten lines in a long run, every key in a short one)
    assert [m for m in log if m.startswith("progress:")] == [
        f"progress: {n} of 3 partition(s) done" for n in (1, 2, 3)]
    [summary] = [m for m in log if m.startswith("sync summary")]
    lines = summary.splitlines()
    assert lines[3].startswith("1d|NASDAQ:NOSUCH") and "FAILED" in lines[3]
    assert lines[-1] == "2 synced, 1 failed, 600 new bars"

    # every check, streamed_vs_history included, was evaluated per healthy key, none for the bad one
    evals = {(e.partition, e.check_name): e for e in result.get_asset_check_evaluations()}
    for symbol in ("NASDAQ:AAPL", "BINANCE:BTCUSDT"):
        for name in RANGE_CHECK_NAMES:
            assert (f"1d|{symbol}", name) in evals
        stream = evals[(f"1d|{symbol}", "streamed_vs_history")]
        assert stream.passed and "the streamer wrote no bar of this series" in stream.description
    assert not [k for k in evals if k[0] == "1d|NASDAQ:NOSUCH"]

    # the materialization carries a preview of the newest bars
    [aapl] = [m for m in result.asset_materializations_for_node("historical_bars")
              if m.partition == "1d|NASDAQ:AAPL"]
    preview = aapl.metadata["latest_bars"]
    assert len(preview.records) == 5
    newest = store.read_bars("NASDAQ:AAPL", "1d").index[-1]
    assert preview.records[0].data["time"] == newest.strftime("%Y-%m-%d %H:%M UTC")

    # status: the failed partition with its time and reason; the healthy ones materialized
    rows = {(r.symbol, r.interval): r for r in sync_status(instance, store)}
    bad = rows[("NASDAQ:NOSUCH", "1d")]
    assert bad.status == "FAILED" and bad.last_error_at is not None
    assert "NASDAQ:NOSUCH" in bad.last_error
    assert rows[("NASDAQ:AAPL", "1d")].status == "MATERIALIZED"

    # the overview table says the same for every series on one page
    overview = dg.materialize([sync_overview], instance=instance, resources=resources)
    [mat] = overview.asset_materializations_for_node("sync_overview")
    table = {(r.data["symbol"], r.data["interval"]): r.data for r in mat.metadata["series"].records}
    assert table[("NASDAQ:NOSUCH", "1d")]["last_outcome"].startswith("FAILED ")
    assert table[("NASDAQ:AAPL", "1d")]["bars"] == 300
    assert table[("NASDAQ:AAPL", "1d")]["depth"] == "300 of 300"
    assert mat.metadata["failed_series"].value == 1
    assert "| NASDAQ:NOSUCH | 1d | FAILED |" in mat.metadata["overview"].value


def test_a_single_bad_partition_fails_with_one_line(instance, resources, store):
    register(store, instance, "NASDAQ:NOSUCH")
    result = dg.materialize([historical_bars], partition_key="1d|NASDAQ:NOSUCH", instance=instance,
                            resources=resources, raise_on_error=False)
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    description = failure.step_failure_data.user_failure_data.description
    assert "\n" not in description and description.startswith("1d|NASDAQ:NOSUCH: SymbolNotFoundError")


def test_lineage_starts_at_tradingview():
    from pocketquant_pipelines.definitions import defs

    graph = defs().resolve_asset_graph()
    assert graph.get(TRADINGVIEW).is_external
    assert TRADINGVIEW in graph.get(HISTORICAL_BARS).parent_keys
    assert TRADINGVIEW in graph.get(STREAMED_BARS).parent_keys
    assert graph.get(SYNC_OVERVIEW).partitions_def is None
    assert {graph.get(k).group_name for k in graph.get_all_asset_keys()} == {"market_data"}
