"""SymbolInfo <-> plain dict (JSON / BSON friendly), and validation of registry updates."""

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime

from pocketquant_pipelines.errors import InvalidInputError
from pocketquant_pipelines.market.timeutil import utcnow
from pocketquant_pipelines.storage.registry import SymbolInfo
from pocketquant_pipelines.storage.validation import check_symbol, from_us, to_us

_FIELDS = {f.name: f for f in dataclasses.fields(SymbolInfo)}
# Fields a caller may change with update_symbol; the key and the timestamps are ours.
UPDATABLE_FIELDS = frozenset(_FIELDS) - {"symbol", "added_at", "updated_at"}
_STR_FIELDS = ("name", "description", "type", "currency", "timezone", "session")


def _check_field(name: str, value: object) -> object:
    if name in _STR_FIELDS:
        if value is not None and not isinstance(value, str):
            raise InvalidInputError(f"symbol field {name}={value!r} must be a string or None")
    elif name == "pricescale":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidInputError(f"symbol field pricescale={value!r} must be an integer or None")
    elif name == "stream":
        if not isinstance(value, bool):
            raise InvalidInputError(f"symbol field stream={value!r} must be True or False")
    elif name in ("extra", "calendar"):
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise InvalidInputError(f"symbol field {name}={value!r} must be a mapping with str keys")
        value = dict(value)
        try:  # both backends store it as a JSON-like document
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"symbol field {name}={value!r} is not JSON-serialisable: {exc}") from None
    return value


def check_update_fields(fields: Mapping[str, object]) -> dict[str, object]:
    unknown = sorted(set(fields) - UPDATABLE_FIELDS)
    if unknown:
        raise InvalidInputError(
            f"cannot update symbol field(s) {', '.join(map(repr, unknown))}: updatable fields are "
            f"{', '.join(sorted(UPDATABLE_FIELDS))}"
        )
    return {k: _check_field(k, v) for k, v in fields.items()}


def prepare_new(info: SymbolInfo) -> SymbolInfo:
    """Canonical symbol, validated fields, added_at/updated_at filled in."""
    if not isinstance(info, SymbolInfo):
        raise InvalidInputError(f"{info!r} is not a SymbolInfo")
    for name in UPDATABLE_FIELDS:
        _check_field(name, getattr(info, name))
    now = utcnow()
    added = info.added_at or now
    return dataclasses.replace(
        info, symbol=check_symbol(info.symbol), added_at=added,
        updated_at=info.updated_at or added, extra=dict(info.extra), calendar=dict(info.calendar),
    )


def info_to_record(info: SymbolInfo) -> dict:
    rec = {name: getattr(info, name) for name in _FIELDS}
    rec["extra"] = dict(info.extra)
    rec["calendar"] = dict(info.calendar)
    for name in ("added_at", "updated_at"):
        value: datetime | None = rec[name]
        rec[name] = None if value is None else to_us(value, name)
    return rec


def info_from_record(rec: Mapping[str, object]) -> SymbolInfo:
    kwargs = {name: rec[name] for name in _FIELDS if name in rec}
    for name in ("added_at", "updated_at"):
        if kwargs.get(name) is not None:
            kwargs[name] = from_us(kwargs[name])
    kwargs["stream"] = bool(kwargs.get("stream", False))
    kwargs["extra"] = dict(kwargs.get("extra") or {})
    kwargs["calendar"] = dict(kwargs.get("calendar") or {})
    return SymbolInfo(**kwargs)
