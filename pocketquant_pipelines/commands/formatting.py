"""How every command prints data: tables for people, CSV and JSON lines for programs.

Numbers: prices with the symbol's decimals when its pricescale is known, otherwise up to 10
significant digits; never scientific notation (a volume of 12 million reads 12000000). CSV and
JSON keep full precision. Times are UTC; table headers say so, CSV/JSON carry the offset.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO, Any

FORMATS = ("table", "csv", "json")


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def decimals(pricescale: int | None) -> int | None:
    """Decimals a pricescale stands for (100 -> 2); None unless it is a power of ten."""
    if not pricescale or pricescale < 1:
        return None
    digits = round(math.log10(pricescale))
    return digits if 10 ** digits == pricescale else None


def _positional(text: str) -> str:
    return format(Decimal(text), "f") if "e" in text or "E" in text else text


def number(value: Any, pricescale: int | None = None) -> str:
    """A table cell: ``-`` for a missing value, a price to its pricescale's decimals when known,
    else up to 10 significant digits, never in scientific notation."""
    if _is_missing(value):
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    places = decimals(pricescale)
    if places is not None:
        return f"{value:.{places}f}"
    return _positional(f"{value:.10g}")


def plain(value: Any) -> str:
    """A CSV cell: empty for a missing value, full precision, never scientific notation."""
    if _is_missing(value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _positional(repr(value)) if math.isfinite(value) else str(value)
    if isinstance(value, datetime):
        return iso(value)
    return str(value)


def to_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_time(value: Any, seconds: bool = False) -> str:
    """A table cell for a time: ``2026-01-30 14:30`` in UTC (the header says UTC)."""
    if value is None:
        return "-"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    return to_utc(value).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def age(then: Any, now: datetime | None = None) -> str:
    """How long ago ``then`` was, for people: ``42s``, ``5m 3s``, ``15h 2m``, ``3d 4h``."""
    if then is None:
        return "-"
    if isinstance(then, str):
        then = datetime.fromisoformat(then.replace("Z", "+00:00"))
    if hasattr(then, "to_pydatetime"):
        then = then.to_pydatetime()
    seconds = max(0, int(((now or datetime.now(UTC)) - to_utc(then)).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def iso(value: Any) -> str | None:
    """ISO 8601 in UTC with the offset, for CSV and JSON."""
    if value is None:
        return None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    return to_utc(value).isoformat()


def _cells(row: Iterable[Any]) -> list[str]:
    return ["-" if v is None else str(v) for v in row]


def table(headers: Sequence[str], rows: Iterable[Iterable[Any]], out: IO[str] | None = None, *,
          align: str | None = None, rule: bool = True, indent: str = "") -> None:
    """Columns as wide as their widest cell, two spaces apart; ``align`` has one ``<`` or ``>``
    per column (default all left). ``None`` prints as ``-``."""
    out = out or sys.stdout
    cells = [_cells(row) for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    sides = align or "<" * len(headers)

    def line(values: Sequence[str]) -> str:
        return (indent + "  ".join(v.rjust(w) if a == ">" else v.ljust(w)
                                   for v, w, a in zip(values, widths, sides, strict=True))).rstrip()

    out.write(line(list(headers)) + "\n")
    if rule:
        out.write(indent + "  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write(line(row) + "\n")


class StreamingTable:
    """A table printed row by row as data arrives (quotes, ticks): fixed column widths, the
    header before the first row; a cell wider than its column widens that row only."""

    def __init__(self, headers: Sequence[str], widths: Sequence[int], out: IO[str] | None = None,
                 align: str | None = None):
        self.headers, self.widths = list(headers), [max(w, len(h)) for w, h in zip(widths, headers, strict=True)]
        self.align = align or "<" * len(headers)
        self.out = out or sys.stdout
        self._started = False

    def _line(self, values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if a == ">" else v.ljust(w)
                         for v, w, a in zip(values, self.widths, self.align, strict=True)).rstrip()

    def row(self, values: Iterable[Any]) -> None:
        if not self._started:
            self.out.write(self._line(self.headers) + "\n")
            self.out.write("  ".join("-" * w for w in self.widths) + "\n")
            self._started = True
        self.out.write(self._line(_cells(values)) + "\n")
        self.out.flush()


class CsvWriter:
    """CSV with a header row; cells through :func:`plain`."""

    def __init__(self, headers: Sequence[str], out: IO[str] | None = None, flush: bool = False):
        self.out, self.flush = out or sys.stdout, flush
        self._writer = csv.writer(self.out, lineterminator="\n")
        self._writer.writerow(headers)

    def row(self, values: Iterable[Any]) -> None:
        self._writer.writerow([plain(v) for v in values])
        if self.flush:
            self.out.flush()


def write_csv(headers: Sequence[str], rows: Iterable[Iterable[Any]], out: IO[str] | None = None) -> None:
    writer = CsvWriter(headers, out)
    for row in rows:
        writer.row(row)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_line(record: dict, out: IO[str] | None = None, flush: bool = False) -> None:
    """One JSON object on its own line (NaN becomes null: JSON has no NaN)."""
    out = out or sys.stdout
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}
    out.write(json.dumps(clean, default=_json_default) + "\n")
    if flush:
        out.flush()


def write_json_lines(records: Iterable[dict], out: IO[str] | None = None) -> None:
    for record in records:
        json_line(record, out)
