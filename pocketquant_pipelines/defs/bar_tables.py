"""Bars as Dagster table metadata: the column schema of a bar series and a preview of the
latest bars, so the asset page shows what is stored, not only how much."""

import dagster as dg
import pandas as pd

BAR_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("time", "timestamp", description="bar start, UTC (the bar's key)"),
    dg.TableColumn("open", "float"),
    dg.TableColumn("high", "float"),
    dg.TableColumn("low", "float"),
    dg.TableColumn("close", "float"),
    dg.TableColumn("volume", "float", description="traded volume; empty when TradingView sends none"),
    dg.TableColumn("source", "string", description="history (TradingView's chart) or stream (the streamer)"),
    dg.TableColumn("partial", "bool", description="a stream bar not watched from its start"),
])
PREVIEW_BARS = 5


def _number(value) -> float | None:
    return None if pd.isna(value) else float(value)


def bars_preview(frame: pd.DataFrame, limit: int = PREVIEW_BARS) -> dg.TableMetadataValue:
    """The newest ``limit`` bars of ``frame`` (a bar store frame), newest first."""
    records = []
    for ts, row in frame.tail(limit).iloc[::-1].iterrows():
        records.append(dg.TableRecord({
            "time": pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M UTC"),
            "open": _number(row["open"]), "high": _number(row["high"]),
            "low": _number(row["low"]), "close": _number(row["close"]),
            "volume": _number(row["volume"]),
            "source": str(row.get("source", "")), "partial": bool(row.get("partial", False)),
        }))
    schema = dg.TableSchema(columns=[
        dg.TableColumn(c.name, "string" if c.name == "time" else c.type, description=c.description)
        for c in BAR_SCHEMA.columns])
    return dg.MetadataValue.table(records=records, schema=schema)
