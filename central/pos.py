"""Point-of-sale data: CSV import (batch exports) next to the live `pos` MQTT kind.

Live feeds publish `edge_agent.wire.PosTransaction` on `footfall/v1/<store>/<till>/pos` and
ingest stores them like any other message. Exports come as CSV with a header row naming at
least `store`, `timestamp`, `transaction_id` and `amount` (aliases below; `currency` is
optional). Timestamps are ISO 8601; one without a UTC offset is read in the store's time zone
(known from its summaries, or given with --timezone). Every bad row is reported with its line
number and skipped; the good rows are imported. Transaction ids are unique per store, so
importing the same file twice adds nothing (the second run reports them as duplicates).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from central.storage.base import END_TIME, FIRST_TIME, YEARS, PosRow, Storage
from edge_agent.wire import ID_PATTERN

COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "store": ("store", "store_id", "shop", "site"),
    "timestamp": ("timestamp", "ts", "time", "datetime", "date_time"),
    "transaction_id": ("transaction_id", "transaction", "txn_id", "receipt", "id"),
    "amount": ("amount", "total", "value", "net_amount"),
    "currency": ("currency",),
}
REQUIRED = ("store", "timestamp", "transaction_id", "amount")
_ID_RE = re.compile(ID_PATTERN)
_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class PosImportResult:
    path: str
    rows_read: int = 0
    imported: int = 0
    duplicates: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "rows_read": self.rows_read,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "bad_rows": [{"line": b.line, "message": b.message} for b in self.bad_rows],
        }


class PosFileError(ValueError):
    """The file as a whole cannot be imported (unreadable, no header, missing columns)."""


def _columns(header: list[str]) -> dict[str, int]:
    norm = [h.strip().lower().replace(" ", "_") for h in header]
    out: dict[str, int] = {}
    for name, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in norm:
                out[name] = norm.index(alias)
                break
    missing = [c for c in REQUIRED if c not in out]
    if missing:
        raise PosFileError(
            f"header {header} lacks column(s) {', '.join(missing)} "
            f"(expected {', '.join(REQUIRED)}; optional currency)"
        )
    return out


class _Zones:
    def __init__(self, storage: Storage, default: str | None) -> None:
        self.storage = storage
        self.default = default
        self._cache: dict[str, ZoneInfo | None] = {}

    def for_store(self, store: str) -> ZoneInfo | None:
        if store not in self._cache:
            name = self.default or self.storage.store_timezone(store)
            self._cache[store] = ZoneInfo(name) if name else None
        return self._cache[store]


def _parse_row(row: list[str], cols: dict[str, int], zones: _Zones) -> PosRow:
    """One CSV row to a PosRow; raises ValueError with the technician-facing message."""
    if any("\ufffd" in cell for cell in row):
        raise ValueError("not valid UTF-8")
    if len(row) <= max(cols.values()):
        raise ValueError(f"{len(row)} fields, expected at least {max(cols.values()) + 1}")
    store = row[cols["store"]].strip()
    if not _ID_RE.match(store):
        raise ValueError(f"store {store!r} is not a valid id (letters, digits, _ . -)")
    raw_ts = row[cols["timestamp"]].strip()
    try:
        ts = datetime.fromisoformat(raw_ts)
    except ValueError:
        raise ValueError(f"timestamp {raw_ts!r} is not ISO 8601") from None
    if ts.tzinfo is None:
        tz = zones.for_store(store)
        if tz is None:
            raise ValueError(
                f"timestamp {raw_ts!r} has no UTC offset and the time zone of store {store} "
                "is unknown (give --timezone)"
            )
        ts = ts.replace(tzinfo=tz)
    if not FIRST_TIME <= ts < END_TIME:
        raise ValueError(f"timestamp {raw_ts!r} is outside the years {YEARS}")
    txn = row[cols["transaction_id"]].strip()
    if not txn or len(txn) > 128 or "\x00" in txn:
        raise ValueError(f"transaction id {txn[:40]!r} must be 1-128 characters")
    raw_amount = row[cols["amount"]].strip()
    try:
        amount = float(raw_amount)
    except ValueError:
        raise ValueError(f"amount {raw_amount!r} is not a number") from None
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"amount {raw_amount!r} must be a finite number >= 0 (no refunds)")
    currency = row[cols["currency"]].strip().upper() if "currency" in cols else ""
    if currency and not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValueError(f"currency {currency!r} is not a 3-letter ISO 4217 code")
    return PosRow(store, txn, ts, amount, currency or None, "csv")


def _rows(path: Path) -> Iterator[tuple[int, list[str] | str]]:
    """(line number, fields or a CSV syntax error); the line is where the record starts."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
        reader = csv.reader(f)
        start = 1
        while True:
            try:
                row: list[str] | str = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # the reader carries on with the next line
                row = f"CSV syntax: {exc}"
            yield start, row
            start = reader.line_num + 1


def import_pos_csv(storage: Storage, path: Path, timezone: str | None = None) -> PosImportResult:
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise PosFileError(f"unknown time zone {timezone!r}") from None
    result = PosImportResult(str(path))
    zones = _Zones(storage, timezone)
    first_line: dict[tuple[str, str], int] = {}
    pending: list[PosRow] = []
    try:
        rows = _rows(path)
        header_line = next(rows, None)
        if header_line is None:
            raise PosFileError(f"{path}: empty file")
        if isinstance(header_line[1], str):
            raise PosFileError(f"{path}: header: {header_line[1]}")
        cols = _columns(header_line[1])
        for line, row in rows:
            if not row or all(not c.strip() for c in row):
                continue
            result.rows_read += 1
            if isinstance(row, str):
                result.bad_rows.append(BadRow(line, row))
                continue
            try:
                pos = _parse_row(row, cols, zones)
            except ValueError as exc:
                result.bad_rows.append(BadRow(line, str(exc)))
                continue
            key = (pos.store_id, pos.transaction_id)
            if key in first_line:
                result.bad_rows.append(
                    BadRow(line, f"transaction {pos.transaction_id} repeats line {first_line[key]}")
                )
                continue
            first_line[key] = line
            pending.append(pos)
            if len(pending) >= _CHUNK:
                _flush(storage, pending, result)
    except OSError as exc:
        raise PosFileError(f"{path}: cannot read: {exc.strerror}") from None
    _flush(storage, pending, result)
    return result


def _flush(storage: Storage, pending: list[PosRow], result: PosImportResult) -> None:
    if pending:
        new, dup = storage.add_pos_transactions(pending)
        result.imported += new
        result.duplicates += dup
        pending.clear()


__all__ = ["COLUMN_ALIASES", "BadRow", "PosFileError", "PosImportResult", "import_pos_csv"]
