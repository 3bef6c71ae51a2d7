"""Sync status per (symbol, interval), read from the Dagster instance and the bar store.

Run history *is* the sync status: the latest ``historical_bars`` materialization of a
partition holds the last successful sync's outcome, Dagster's partition status says whether
the latest attempt failed or is running, and a failed key's ``AssetObservation``
(``sync_error``) holds the reason. The bar store adds what is stored now (count, first/last).

Used by ``pocketquant status`` (which imports this module lazily so the CLI starts fast).
"""

from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg

from pocketquant_pipelines.defs.keys import HISTORICAL_BARS
from pocketquant_pipelines.defs.partitions import INTERVAL_KEYS, bars_partitions, key_str, split_key

SCAN_LIMIT = 10_000  # newest events per bulk query (Dagster caps a page at 10k records)


@dataclass
class SyncStatusRow:
    symbol: str
    interval: str
    status: str                        # MATERIALIZED | FAILED | IN_PROGRESS | NEVER_SYNCED | NOT_A_PARTITION
    last_sync_at: datetime | None      # latest successful sync
    last_outcome: str | None           # "fetched 500, inserted 3, updated 2 (incremental)"
    bars_stored: int
    first_bar: datetime | None
    last_bar: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    depth: str | None = None           # "5000 of 5000", "812 (all the server has)", "shallow: 40 of 5000"

    def as_dict(self) -> dict:
        out = {}
        for k, v in self.__dict__.items():
            out[k] = v.isoformat() if isinstance(v, datetime) else v
        return out


def _value(md: dict, key: str):
    entry = md.get(key)
    return None if entry is None else entry.value


def _outcome_text(md: dict) -> str | None:
    if not md:
        return None
    fetched = _value(md, "bars_fetched")
    if fetched is None:
        return None
    return (f"fetched {fetched}, inserted {_value(md, 'bars_inserted')}, "
            f"updated {_value(md, 'bars_updated')} ({_value(md, 'mode')}, {_value(md, 'source')})")


def _depth_text(md: dict) -> str | None:
    bars, wanted = _value(md, "history_bars"), _value(md, "first_sync_bars")
    if bars is None or not wanted:
        return None
    if bars >= wanted:
        return f"{bars} of {wanted}"
    if _value(md, "history_ended"):
        return f"{bars} (all the server has)"
    return f"shallow: {bars} of {wanted}"


def _latest_by_partition(records) -> dict:
    latest: dict = {}
    for rec in records:
        if rec.partition_key is not None:
            latest.setdefault(rec.partition_key, rec)  # records come newest first
    return latest


def sync_status(instance: dg.DagsterInstance, store) -> list[SyncStatusRow]:
    keys = bars_partitions.get_partition_keys(dynamic_partitions_store=instance)
    key_set = set(keys)
    stats = {(s["symbol"], str(s["interval"])): s for s in store.bar_stats()}
    status_by_key = (instance.get_status_by_partition(HISTORICAL_BARS, keys, bars_partitions) or {}) if keys else {}
    mats = _latest_by_partition(instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=HISTORICAL_BARS), limit=SCAN_LIMIT, ascending=False).records)
    obs = _latest_by_partition(instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=HISTORICAL_BARS), limit=SCAN_LIMIT, ascending=False).records)

    # every partition with any history, plus every stored series (even if synced by a script)
    wanted = {k for k in keys if k in mats or k in obs or status_by_key.get(k) is not None}
    wanted |= {key_str(sym, ivl) for sym, ivl in stats}
    rows = []
    for key in wanted:
        symbol, interval = split_key(key)
        mat, ob = mats.get(key), obs.get(key)
        md = dict(mat.asset_materialization.metadata) if mat else {}
        st = status_by_key.get(key)
        if key not in key_set:
            status = "NOT_A_PARTITION"
        elif st is None:
            status = "NEVER_SYNCED"
        else:
            status = st.value
        error = error_at = None
        if ob is not None and (mat is None or ob.timestamp >= mat.timestamp):
            err = ob.asset_observation.metadata.get("sync_error") if ob.asset_observation else None
            if err is not None:
                error, error_at = str(err.value), datetime.fromtimestamp(ob.timestamp, tz=UTC)
        stat = stats.get((symbol, interval.value), {})
        rows.append(SyncStatusRow(
            symbol=symbol, interval=interval.value, status=status,
            last_sync_at=datetime.fromtimestamp(mat.timestamp, tz=UTC) if mat else None,
            last_outcome=_outcome_text(md),
            bars_stored=int(stat.get("count", 0)),
            first_bar=stat.get("first_time"), last_bar=stat.get("last_time"),
            last_error=error, last_error_at=error_at, depth=_depth_text(md),
        ))
    pos = {iv: i for i, iv in enumerate(INTERVAL_KEYS)}
    rows.sort(key=lambda r: (r.symbol, pos.get(r.interval, 99)))
    return rows


def open_instance() -> dg.DagsterInstance:
    """The instance at DAGSTER_HOME (a clear error when it is unset)."""
    import os

    from pocketquant_pipelines.errors import ConfigError

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise ConfigError("DAGSTER_HOME is not set: point it at the Dagster instance directory "
                          "(the demo uses .dagster_home/ in the project)")
    if not os.path.isdir(home):
        raise ConfigError(f"DAGSTER_HOME={home!r} is not a directory")
    return dg.DagsterInstance.get()
