"""Asset checks on ``historical_bars`` partitions.

* ``ohlc_sanity`` (blocking, ERROR): low <= min(open, close) <= max(open, close) <= high,
  volume >= 0, finite prices.
* ``no_duplicate_bars`` (blocking, ERROR): bar start times are unique and ascending in the
  stored series, and the last fetched batch repeated no bar start.
* ``no_gaps`` (WARN): every bar start the symbol's session would produce between the first
  and last stored bar is present. Closed markets (nights, weekends, and the days the symbol's
  calendar closes: TradingView's holidays and dayoff corrections, and past days without a
  synced daily bar) produce no starts, so they are not gaps; early closes end a day's
  expected bars early. Missing ranges are listed in the metadata.
* ``fresh_last_bar`` (WARN): the last stored bar is not older than the latest bar the session
  has produced by now (one bar of slack for the bar in progress).
* ``history_depth`` (WARN): history reaches back at least the first-sync depth
  (``SYNC_FIRST_BARS`` bars), or the server has said its history ends sooner; otherwise the
  series is shallow (a first sync that never happened at full depth).
* ``plausible_bar_times`` (ERROR, not blocking): no stored bar is dated beyond now +
  ``POCKETQUANT_CLOCK_SKEW_S`` or before the epoch (the planner ignores such bars; this says
  they are there, with examples).

The judgements are plain functions over a bar frame (``evaluate_*``) so they are tested on
DataFrames directly; the Dagster checks below and the range-run path in ``history.py`` call
the same functions. Partitioned asset checks run as their own steps in single-partition runs;
in a range run (a backfill) Dagster would skip those steps, so ``historical_bars`` evaluates
the checks itself per synced key and yields one ``AssetCheckEvaluation`` per partition.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd

from pocketquant_pipelines.defs.keys import HISTORICAL_BARS
from pocketquant_pipelines.defs.partitions import bars_partitions, split_key
from pocketquant_pipelines.defs.resources import BarStoreResource
from pocketquant_pipelines.market.intervals import Interval
from pocketquant_pipelines.market.sessions import SESSION_24X7, Session, bar_starts_between
from pocketquant_pipelines.market.timeutil import utcnow
from pocketquant_pipelines.settings import Settings
from pocketquant_pipelines.storage.bars import HistoryCoverage
from pocketquant_pipelines.sync import EPOCH, plausible_coverage
from pocketquant_pipelines.storage.symbol_session import session_of_symbol

MAX_LISTED = 20  # examples / ranges shown in metadata


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    severity: str            # "ERROR" | "WARN"
    blocking: bool
    description: str
    metadata: dict = field(default_factory=dict)

    def to_result(self) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            check_name=self.name, passed=self.passed, metadata=self.metadata,
            severity=dg.AssetCheckSeverity(self.severity), description=self.description,
        )

    def to_evaluation(self, partition: str) -> dg.AssetCheckEvaluation:
        return dg.AssetCheckEvaluation(
            asset_key=HISTORICAL_BARS, check_name=self.name, passed=self.passed,
            metadata=self.metadata, severity=dg.AssetCheckSeverity(self.severity),
            description=self.description, blocking=self.blocking, partition=partition,
        )


def _iso(ts) -> str:
    return pd.Timestamp(ts).isoformat()


# --------------------------------------------------------------------------- OHLC sanity
def evaluate_ohlc(frame: pd.DataFrame) -> CheckOutcome:
    o, h, l, c = (frame[col].to_numpy(dtype="float64") for col in ("open", "high", "low", "close"))
    v = frame["volume"].to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(o) & np.isfinite(h) & np.isfinite(l) & np.isfinite(c)
        ok = (finite & (l <= np.minimum(o, c)) & (np.maximum(o, c) <= h)
              & (np.isnan(v) | (v >= 0)))
    bad = np.flatnonzero(~ok)
    examples = [
        {"time": _iso(frame.index[i]), "open": float(o[i]), "high": float(h[i]),
         "low": float(l[i]), "close": float(c[i]),
         "volume": None if np.isnan(v[i]) else float(v[i])}
        for i in bad[:MAX_LISTED]
    ]
    return CheckOutcome(
        "ohlc_sanity", passed=len(bad) == 0, severity="ERROR", blocking=True,
        description=("all bars satisfy low <= open/close <= high and volume >= 0" if len(bad) == 0
                     else f"{len(bad)} bar(s) violate low <= open/close <= high or volume >= 0"),
        metadata={"bars_checked": int(len(frame)), "bad_bars": int(len(bad)),
                  "examples": dg.MetadataValue.json(examples)},
    )


# --------------------------------------------------------------------------- duplicates
def evaluate_duplicates(frame: pd.DataFrame, fetched_duplicate_times: int = 0) -> CheckOutcome:
    index = pd.DatetimeIndex(frame.index)
    dup_mask = index.duplicated(keep=False)
    dup_times = sorted({_iso(t) for t in index[dup_mask]})
    ascending = bool(index.is_monotonic_increasing)
    problems = []
    if dup_times:
        problems.append(f"{len(dup_times)} bar start(s) stored more than once")
    if not ascending:
        problems.append("stored bars are not in ascending time order")
    if fetched_duplicate_times:
        problems.append(f"the last fetch repeated {fetched_duplicate_times} bar start(s)")
    return CheckOutcome(
        "no_duplicate_bars", passed=not problems, severity="ERROR", blocking=True,
        description="; ".join(problems) or "every bar start is unique",
        metadata={"bars_checked": int(len(frame)), "duplicate_times": int(len(dup_times)),
                  "fetched_duplicate_times": int(fetched_duplicate_times),
                  "ascending": ascending,
                  "examples": dg.MetadataValue.json(dup_times[:MAX_LISTED])},
    )


# --------------------------------------------------------------------------- gaps
def _ranges(missing: list[datetime], expected: list[datetime]) -> list[tuple[datetime, datetime, int]]:
    """Collapse missing starts into runs of consecutive expected starts: (first, last, count)."""
    pos = {t: i for i, t in enumerate(expected)}
    out: list[list] = []
    for t in missing:
        i = pos[t]
        if out and out[-1][3] == i - 1:
            out[-1][1], out[-1][2], out[-1][3] = t, out[-1][2] + 1, i
        else:
            out.append([t, t, 1, i])
    return [(a, b, n) for a, b, n, _ in out]


def evaluate_gaps(frame: pd.DataFrame, interval: Interval | str,
                  session: Session = SESSION_24X7) -> CheckOutcome:
    interval = Interval.parse(interval)
    if len(frame) < 2:
        return CheckOutcome("no_gaps", True, "WARN", False, "fewer than two bars: nothing to judge",
                            {"bars_checked": int(len(frame)), "missing_bars": 0})
    stored = [t.to_pydatetime() for t in pd.DatetimeIndex(frame.index).tz_convert("UTC")]
    first, last = stored[0], stored[-1]
    expected = bar_starts_between(first, last + timedelta(microseconds=1), interval, session)
    have = set(stored)
    missing = [t for t in expected if t not in have]
    expected_set = set(expected)
    unexpected = [t for t in stored if t not in expected_set]
    ranges = _ranges(missing, expected)
    listed = [{"from": a.isoformat(), "to": b.isoformat(), "bars": n} for a, b, n in ranges[:MAX_LISTED]]
    text = (f"{len(missing)} expected bar(s) missing in {len(ranges)} range(s) "
            f"for session {_described(session)}" if missing
            else f"no gaps against session {_described(session)}")
    return CheckOutcome(
        "no_gaps", passed=not missing, severity="WARN", blocking=False, description=text,
        metadata={"bars_checked": int(len(frame)), "expected_bars": int(len(expected)),
                  "missing_bars": int(len(missing)), "missing_ranges": dg.MetadataValue.json(listed),
                  "off_session_bars": int(len(unexpected)),
                  "session": f"{session.spec} {session.timezone}",
                  "calendar_closed_days": len(session.calendar.closed),
                  "calendar_corrected_days": len(session.calendar.corrected)},
    )


def _described(session: Session) -> str:
    """The session as the check's text names it; the calendar is why holidays are no gaps."""
    text = f"{session.spec} ({session.timezone})"
    calendar = session.calendar
    if calendar:
        text += f" with its calendar ({len(calendar.closed)} closed, {len(calendar.corrected)} corrected days)"
    return text


# --------------------------------------------------------------------------- freshness
def expected_latest_start(now: datetime, interval: Interval, session: Session) -> datetime | None:
    """Start of the newest bar the session has opened by ``now`` (None if none in lookback)."""
    lookback = max(timedelta(days=14), timedelta(seconds=3 * interval.nominal_seconds))
    starts = bar_starts_between(now - lookback, now + timedelta(microseconds=1), interval, session)
    return starts[-1] if starts else None


def evaluate_freshness(frame: pd.DataFrame, interval: Interval | str,
                       session: Session = SESSION_24X7, now: datetime | None = None) -> CheckOutcome:
    interval = Interval.parse(interval)
    now = now or utcnow()
    if len(frame) == 0:
        return CheckOutcome("fresh_last_bar", False, "WARN", False, "no bars stored",
                            {"last_bar_time": dg.MetadataValue.null()})
    last = pd.Timestamp(frame.index[-1]).to_pydatetime()
    latest = expected_latest_start(now, interval, session)
    if latest is None:
        return CheckOutcome("fresh_last_bar", True, "WARN", False,
                            "the session produced no bar in the lookback window",
                            {"last_bar_time": dg.MetadataValue.timestamp(last)})
    # one bar of slack: the newest bar may still be in progress and not yet served
    slack_starts = bar_starts_between(latest - timedelta(seconds=4 * interval.nominal_seconds + 86400 * 4),
                                      latest + timedelta(microseconds=1), interval, session)
    threshold = slack_starts[-2] if len(slack_starts) >= 2 else latest
    fresh = last >= threshold
    lag_s = max(0.0, (latest - last).total_seconds())
    return CheckOutcome(
        "fresh_last_bar", passed=fresh, severity="WARN", blocking=False,
        description=(f"last bar {last.isoformat()} is current (expected >= {threshold.isoformat()})"
                     if fresh else f"last bar {last.isoformat()} is stale: the session has produced "
                     f"bars up to {latest.isoformat()}"),
        metadata={"last_bar_time": dg.MetadataValue.timestamp(last),
                  "expected_latest_bar": dg.MetadataValue.timestamp(latest),
                  "lag_seconds": float(lag_s), "checked_at": dg.MetadataValue.timestamp(now)},
    )


# --------------------------------------------------------------------------- depth
def evaluate_depth(coverage: HistoryCoverage | None, first_bars: int) -> CheckOutcome:
    """Shallow = fewer history bars than a first sync asks for, while the server never said
    its history ends sooner (a young market is short, not shallow)."""
    ended = coverage is not None and coverage.history_start is not None
    bars = coverage.bars if coverage is not None else 0
    metadata = {
        "history_bars": int(bars), "first_sync_bars": int(first_bars), "history_ended": bool(ended),
        "history_first_time": (dg.MetadataValue.timestamp(coverage.first_time) if coverage
                               else dg.MetadataValue.null()),
        "history_start": (dg.MetadataValue.timestamp(coverage.history_start) if ended
                          else dg.MetadataValue.null()),
    }
    if coverage is None:
        return CheckOutcome("history_depth", False, "WARN", False,
                            "history has written no bar of this series yet", metadata)
    since = coverage.first_time.isoformat()
    if bars >= first_bars:
        text = f"{bars} history bars since {since} (first-sync depth {first_bars})"
    elif ended:
        text = (f"{bars} history bars since {since}: all the server has "
                f"(it said its history begins at {coverage.history_start.isoformat()})")
    else:
        text = (f"shallow: {bars} history bars since {since}, fewer than the first-sync depth "
                f"{first_bars}, and the server has not said its history ends there")
    return CheckOutcome("history_depth", passed=bars >= first_bars or ended, severity="WARN",
                        blocking=False, description=text, metadata=metadata)


# --------------------------------------------------------------------------- clock sanity
def evaluate_plausible_times(frame: pd.DataFrame, now: datetime, clock_skew_s: float) -> CheckOutcome:
    """Stored bars no market produced: dated beyond now + skew, or before the epoch."""
    bound = now + timedelta(seconds=clock_skew_s)
    index = pd.DatetimeIndex(frame.index)
    future = index > bound
    before = index < EPOCH
    bad = index[future | before]
    problems = []
    if future.any():
        problems.append(f"{int(future.sum())} bar(s) dated beyond {bound.isoformat()} "
                        f"(now + {clock_skew_s:g} s)")
    if before.any():
        problems.append(f"{int(before.sum())} bar(s) dated before 1970")
    return CheckOutcome(
        "plausible_bar_times", passed=not problems, severity="ERROR", blocking=False,
        description=("; ".join(problems) + ": the sync planner ignores them") if problems
        else "every stored bar is dated between 1970 and now + the clock skew",
        metadata={"bars_checked": int(len(frame)), "future_bars": int(future.sum()),
                  "before_epoch_bars": int(before.sum()), "latest_plausible": _iso(bound),
                  "examples": dg.MetadataValue.json([_iso(t) for t in bad[:MAX_LISTED]])},
    )


# --------------------------------------------------------------------------- wiring
def evaluate_all(store, symbol: str, interval: Interval, fetched_duplicate_times: int = 0,
                 names: Iterable[str] | None = None, now: datetime | None = None, *,
                 first_bars: int = Settings.sync_first_bars,
                 clock_skew_s: float = Settings.clock_skew_s) -> list[CheckOutcome]:
    frame = store.read_bars(symbol, interval)
    session = session_of_symbol(store, symbol)
    wanted = set(names) if names is not None else set(CHECK_NAMES)
    out = []
    if "ohlc_sanity" in wanted:
        out.append(evaluate_ohlc(frame))
    if "no_duplicate_bars" in wanted:
        out.append(evaluate_duplicates(frame, fetched_duplicate_times))
    if "no_gaps" in wanted:
        out.append(evaluate_gaps(frame, interval, session))
    if "fresh_last_bar" in wanted:
        out.append(evaluate_freshness(frame, interval, session, now=now))
    if "history_depth" in wanted:
        coverage = plausible_coverage(store, symbol, interval, now or utcnow(), clock_skew_s)
        out.append(evaluate_depth(coverage, first_bars))
    if "plausible_bar_times" in wanted:
        out.append(evaluate_plausible_times(frame, now or utcnow(), clock_skew_s))
    if STREAM_CHECK in wanted:
        from pocketquant_pipelines.quality.reconcile import reconcile

        out.append(evaluate_stream_agreement([reconcile(store, symbol, interval)]))
    return out


# --------------------------------------------------------------------------- stream vs history
STREAM_CHECK = "streamed_vs_history"


def evaluate_stream_agreement(results: list) -> CheckOutcome:
    """The stream's copy of keys history also wrote agrees with history, and the stream wrote no
    key history lacks inside the range it covers (``quality.reconcile`` results, one per key)."""
    from pocketquant_pipelines.quality.reconcile import MAX_ORPHAN_EXAMPLES, PRICE_TOLERANCE, VOLUME_TOLERANCE

    compared = sum(r.compared for r in results)
    differing = sum(r.differing for r in results)
    orphans = sum(r.orphans for r in results)
    stream_bars = sum(r.stream_bars for r in results)
    orphan_examples = [f"{r.interval}|{r.symbol}@{t}" for r in results for t in r.orphan_examples]
    worst = max(results, key=lambda r: (r.differing, r.worst_price_deviation, r.worst_volume_deviation))
    metadata = {
        "compared": compared,
        "differing": differing,
        "partial_skipped": sum(r.partial_skipped for r in results),
        "stream_bars": stream_bars,
        "worst_price_deviation": float(max(r.worst_price_deviation for r in results)),
        "worst_volume_deviation": float(max(r.worst_volume_deviation for r in results)),
        "worst_partition": f"{worst.interval}|{worst.symbol}",
        "worst_time": worst.worst_time or "",
        "price_tolerance": PRICE_TOLERANCE,
        "volume_tolerance": VOLUME_TOLERANCE,
        "orphans": orphans,
        "orphan_examples": dg.MetadataValue.json(orphan_examples[:MAX_ORPHAN_EXAMPLES]),
    }
    parts = []
    if compared:
        parts.append(f"{differing} of {compared} streamed bars differ from history")
    if orphans:
        parts.append(f"{orphans} streamed bar(s) under keys history lacks inside the range it "
                     f"covers (e.g. {orphan_examples[0]})")
    if not parts:
        # a pass that says why: most series are never streamed
        parts.append("the streamer wrote no bar of this series: nothing to compare" if not stream_bars
                     else f"{stream_bars} streamed bar(s), none yet covered by history")
    return CheckOutcome(STREAM_CHECK, passed=differing == 0 and orphans == 0, severity="WARN",
                        blocking=False, description="; ".join(parts), metadata=metadata)


CHECK_NAMES = ("ohlc_sanity", "no_duplicate_bars", "no_gaps", "fresh_last_bar", "history_depth",
               "plausible_bar_times")
# what a range run evaluates per key itself (Dagster does not run partitioned check steps there)
RANGE_CHECK_NAMES = (*CHECK_NAMES, "streamed_vs_history")


def _latest_fetched_duplicates(instance: dg.DagsterInstance, key: str) -> int:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=HISTORICAL_BARS, asset_partitions=[key]), limit=1
    ).records
    if not records:
        return 0
    value = records[0].asset_materialization.metadata.get("fetched_duplicate_times")
    return int(value.value) if value is not None else 0


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec("ohlc_sanity", asset=HISTORICAL_BARS, blocking=True,
                          partitions_def=bars_partitions,
                          description="low <= min(open, close) <= max(open, close) <= high, volume >= 0"),
        dg.AssetCheckSpec("no_duplicate_bars", asset=HISTORICAL_BARS, blocking=True,
                          partitions_def=bars_partitions,
                          description="unique, ascending bar start times (stored and last fetched)"),
        dg.AssetCheckSpec("no_gaps", asset=HISTORICAL_BARS, partitions_def=bars_partitions,
                          description="no missing bars inside the symbol's trading sessions (WARN)"),
        dg.AssetCheckSpec("fresh_last_bar", asset=HISTORICAL_BARS, partitions_def=bars_partitions,
                          description="the last bar is as recent as the session allows (WARN)"),
        dg.AssetCheckSpec("history_depth", asset=HISTORICAL_BARS, partitions_def=bars_partitions,
                          description="history reaches back SYNC_FIRST_BARS bars, or the server "
                          "said it has no more (WARN: a shallow series)"),
        dg.AssetCheckSpec("plausible_bar_times", asset=HISTORICAL_BARS, partitions_def=bars_partitions,
                          description="no stored bar dated beyond now + POCKETQUANT_CLOCK_SKEW_S "
                          "or before 1970"),
    ],
    can_subset=True,
)
def historical_bars_checks(context: dg.AssetCheckExecutionContext, bar_store: BarStoreResource):
    key = str(context.partition_key)
    symbol, interval = split_key(key)
    selected = {k.name for k in context.selected_asset_check_keys}
    settings = bar_store.settings()
    for outcome in evaluate_all(bar_store.get(), symbol, interval,
                                _latest_fetched_duplicates(context.instance, key), selected,
                                first_bars=settings.sync_first_bars,
                                clock_skew_s=settings.clock_skew_s):
        yield outcome.to_result()
