"""Throughput of BarAggregator (ticks/s on one core), against a plain running-OHLC loop.

    .venv/bin/python bench/aggregator.py                 # 2,000,000 ticks, 5 rounds
    .venv/bin/python bench/aggregator.py --ticks 500000 --repeat 1 --markdown

Workloads (synthetic, deterministic, ticks 0.1-2 s apart like a liquid symbol's quote stream):

* baseline      a bare for-loop keeping ONE running OHLC+volume: the cost floor of touching
                every tick in Python at all.
* 24x7          BarAggregator, all 13 intervals, BINANCE-style 24x7 session (Etc/UTC).
* session       BarAggregator, all 13 intervals, America/New_York 0930-1600; ticks only
                while the market is open (what the quote stream delivers), spanning DST.
* session+closed same session, ticks around the clock: ~79 % fall outside the session and
                are dropped and counted.
* +calendar     the two session workloads again with the NYSE calendar the simulator sends
                (holidays 2018-2027, 13:00 early closes, a dayoff): what a synced US symbol
                streams with. Same ticks, so the difference is the calendar's cost.
* Tick objects  the 24x7 workload through ``on_tick(Tick)`` (datetime -> epoch per tick).

Times are CPU seconds of this process (``time.process_time``), not wall-clock: on a shared
machine that measures what one core can do rather than how busy the neighbours were.

Not a test: nothing here asserts a time. docs/benchmarks.md (## Aggregator) records results.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pocketquant_pipelines.market.aggregator import BarAggregator  # noqa: E402
from pocketquant_pipelines.market.calendar import (  # noqa: E402
    build_calendar,
    parse_corrections,
    parse_holidays,
)
from pocketquant_pipelines.market.sessions import (  # noqa: E402
    SESSION_24X7,
    Session,
    bar_bounds_epoch,
    first_start_at_or_after_epoch,
)
from pocketquant_pipelines.market.intervals import Interval  # noqa: E402
from pocketquant_pipelines.market.ticks import Tick  # noqa: E402
from tradingview_simulator.calendars import NYSE_CORRECTIONS, NYSE_HOLIDAYS  # noqa: E402

NY = Session.parse("0930-1600", "America/New_York")
NY_CALENDAR = Session.parse("0930-1600", "America/New_York",
                            build_calendar(parse_holidays(NYSE_HOLIDAYS), parse_corrections(NYSE_CORRECTIONS)))
START = datetime(2024, 2, 26, 14, 30, tzinfo=UTC).timestamp()  # a Monday open (EST); DST on 03-10


def make_ticks(n: int, seed: int, session: Session | None) -> list[tuple[float, float, float]]:
    """``n`` ticks 0.1-2 s apart; with a session, closed periods are skipped (next open)."""
    rng = random.Random(seed)
    t, price = START, 100.0
    out = []
    while len(out) < n:
        t += rng.uniform(0.1, 2.0)
        if session is not None and bar_bounds_epoch(t, Interval.M1, session) is None:
            t = first_start_at_or_after_epoch(t, Interval.M1, session) + rng.uniform(0.0, 2.0)
        price = max(0.01, price + rng.gauss(0.0, 0.02))
        out.append((t, price, float(rng.randrange(1, 50))))
    return out


def baseline(ticks) -> float:
    o = h = l = c = None
    v = 0.0
    started = time.process_time()
    for t, p, vol in ticks:
        if o is None:
            o = h = l = p
        elif p > h:
            h = p
        elif p < l:
            l = p
        c = p
        v += vol
    elapsed = time.process_time() - started
    assert c is not None
    return elapsed


def run_aggregator(ticks, session: Session) -> tuple[float, int, BarAggregator]:
    agg = BarAggregator("BENCH:X", session)
    on_tick = agg.on_tick_values
    completed = 0
    started = time.process_time()
    for t, p, vol in ticks:
        done = on_tick(t, p, vol)
        if done:
            completed += len(done)
    elapsed = time.process_time() - started
    return elapsed, completed, agg


def run_tick_objects(tick_objects, session: Session) -> tuple[float, int, BarAggregator]:
    agg = BarAggregator("BENCH:X", session)
    on_tick = agg.on_tick
    completed = 0
    started = time.process_time()
    for tick in tick_objects:
        done = on_tick(tick)
        if done:
            completed += len(done)
    elapsed = time.process_time() - started
    return elapsed, completed, agg


def aggregator_workload(ticks, session: Session):
    def run() -> tuple[float, str]:
        elapsed, completed, agg = run_aggregator(ticks, session)
        note = f"{completed:,} bars"
        if agg.out_of_session_ticks:
            note += f", {agg.out_of_session_ticks:,} out-of-session"
        return elapsed, note
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ticks", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=5,
                        help="rounds; workloads are interleaved per round and the best round is reported")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    n = args.ticks

    crypto = make_ticks(n, seed=1, session=None)
    session_ticks = make_ticks(n, seed=2, session=NY)
    around_clock = make_ticks(n, seed=3, session=None)
    objects = [Tick("BENCH:X", datetime.fromtimestamp(t, UTC), p, v) for t, p, v in crypto[: n // 4]]

    def objects_run() -> tuple[float, str]:
        elapsed, completed, _ = run_tick_objects(objects, SESSION_24X7)
        return elapsed, f"{completed:,} bars"

    workloads = [
        ("baseline: one running OHLC", n, lambda: (baseline(crypto), "-")),
        ("24x7, 13 intervals", n, aggregator_workload(crypto, SESSION_24X7)),
        ("session NY, 13 intervals", n, aggregator_workload(session_ticks, NY)),
        ("session NY + closed hours", n, aggregator_workload(around_clock, NY)),
        ("session NY + NYSE calendar", n, aggregator_workload(session_ticks, NY_CALENDAR)),
        ("session NY + calendar + closed", n, aggregator_workload(around_clock, NY_CALENDAR)),
        ("24x7 via on_tick(Tick)", len(objects), objects_run),
    ]
    # Interleaving the workloads round by round spreads the noise of a shared machine evenly
    # over them instead of penalising whichever ran during a busy spell.
    times: dict[str, list[float]] = {name: [] for name, _, _ in workloads}
    notes: dict[str, str] = {}
    for _ in range(args.repeat):
        for name, _, run in workloads:
            elapsed, notes[name] = run()
            times[name].append(elapsed)

    floor = min(times[workloads[0][0]]) / n  # seconds per tick of the cost floor
    span_days = (crypto[-1][0] - crypto[0][0]) / 86_400
    header = ("workload", "ticks", "ticks/s (best)", "ticks/s (median)", "us/tick", "x floor", "notes")
    table = [header]
    for name, count, _ in workloads:
        best, median = min(times[name]), statistics.median(times[name])
        table.append((name, f"{count:,}", f"{count / best:,.0f}", f"{count / median:,.0f}",
                      f"{1e6 * best / count:.2f}", f"{(best / count) / floor:.1f}", notes[name]))
    print(f"# BarAggregator throughput: python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} cpu(s) visible, one core used; CPU time; {args.repeat} interleaved rounds; "
          f"24x7 ticks span {span_days:.1f} days")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for row in table[1:]:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        for row in table:
            print("  ".join(cell.ljust(w) if i in (0, 6) else cell.rjust(w)
                            for i, (cell, w) in enumerate(zip(row, widths))))


if __name__ == "__main__":
    main()
