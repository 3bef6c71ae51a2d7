"""``sync_overview``: one page for every series — a table of symbol × interval with bars
stored, first and last bar, age of the last bar, history depth reached, and the last outcome
(or the failure and its reason). Unpartitioned: its metadata is the table, so the asset page
answers "is everything synced?" without opening 13 × N partitions.

Rebuilt by ``sync_overview_schedule`` (every 30 minutes) and on demand (Materialize). It reads
Dagster's own records and the bar store; it changes no bars.
"""

from datetime import datetime

import dagster as dg

from pocketquant_pipelines.defs.keys import HISTORICAL_BARS, STREAMED_BARS, SYNC_OVERVIEW
from pocketquant_pipelines.defs.resources import BarStoreResource
from pocketquant_pipelines.market.timeutil import utcnow

COLUMNS = [
    ("symbol", "string", "EXCHANGE:CODE"),
    ("interval", "string", "one of the 13 intervals"),
    ("status", "string", "Dagster's partition status: MATERIALIZED, FAILED, NEVER_SYNCED, ..."),
    ("bars", "int", "bars stored now"),
    ("first_bar_utc", "string", "oldest stored bar start, UTC"),
    ("last_bar_utc", "string", "newest stored bar start, UTC"),
    ("age", "string", "how long ago the newest bar started"),
    ("depth", "string", "history bars against the first-sync depth"),
    ("last_outcome", "string", "the last sync's result, or the failure and its reason"),
]
SCHEMA = dg.TableSchema(columns=[dg.TableColumn(n, t, description=d) for n, t, d in COLUMNS])


def _utc(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def age_text(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def overview_rows(rows, now: datetime) -> list[dict]:
    out = []
    for r in rows:
        if r.status == "FAILED" and r.last_error:
            outcome = f"FAILED {_utc(r.last_error_at)} UTC: {r.last_error}"
        else:
            outcome = (f"{r.last_outcome} at {_utc(r.last_sync_at)} UTC" if r.last_outcome else "-")
        out.append({"symbol": r.symbol, "interval": r.interval, "status": r.status,
                    "bars": int(r.bars_stored), "first_bar_utc": _utc(r.first_bar),
                    "last_bar_utc": _utc(r.last_bar), "age": age_text(r.last_bar, now),
                    "depth": r.depth or "-", "last_outcome": outcome})
    return out


def overview_markdown(records: list[dict]) -> str:
    head = "| " + " | ".join(n for n, _, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---:" if t == "int" else "---" for _, t, _ in COLUMNS) + "|"
    lines = [head, rule]
    for rec in records:
        lines.append("| " + " | ".join(str(rec[n]).replace("|", "\\|") for n, _, _ in COLUMNS) + " |")
    return "\n".join(lines)


@dg.asset(
    key=SYNC_OVERVIEW,
    deps=[HISTORICAL_BARS, STREAMED_BARS],
    group_name="market_data",
    kinds={"table"},
    description="Every series at a glance: symbol × interval with bars stored, first/last bar, "
    "age, history depth and the last outcome. The table is this asset's metadata "
    "(`series`); rebuilt every 30 minutes by sync_overview_schedule, or Materialize now.",
    metadata={"dagster/column_schema": SCHEMA},
)
def sync_overview(context: dg.AssetExecutionContext, bar_store: BarStoreResource) -> dg.MaterializeResult:
    from pocketquant_pipelines.defs.status import sync_status

    now = utcnow()
    records = overview_rows(sync_status(context.instance, bar_store.get()), now)
    failed = [r for r in records if r["status"] == "FAILED"]
    context.log.info(f"{len(records)} series, {len(failed)} failed, "
                     f"{sum(r['bars'] for r in records)} bars stored")
    return dg.MaterializeResult(metadata={
        "series": dg.MetadataValue.table(records=[dg.TableRecord(r) for r in records], schema=SCHEMA),
        "overview": dg.MetadataValue.md(overview_markdown(records)),
        "series_count": len(records),
        "failed_series": len(failed),
        "symbols": len({r["symbol"] for r in records}),
        "bars_stored": sum(r["bars"] for r in records),
        "dagster/row_count": len(records),
        "built_at": dg.MetadataValue.timestamp(now),
    })


sync_overview_job = dg.define_asset_job("sync_overview_job", selection=dg.AssetSelection.assets(SYNC_OVERVIEW),
                                        description="Rebuild the sync_overview table.")

sync_overview_schedule = dg.ScheduleDefinition(
    name="sync_overview_schedule", job=sync_overview_job, cron_schedule="*/30 * * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 30 minutes: rebuild the sync_overview table.",
)
