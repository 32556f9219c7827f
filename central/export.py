"""`footfall-central export`: the stored tables as CSV or Parquet files for BI tools.

One file per table (`EXPORT_TABLES`: hourly rollups, summaries, stock events, POS, devices).
Time columns (`ts`, `*_ts`) become UTC timestamps: ISO 8601 text in CSV, `timestamp[us, UTC]` in
Parquet. Parquet needs the optional `parquet` extra (pyarrow); the daemon never imports it.

Rows are converted and written `batch_rows` at a time (one Parquet row group per batch), so
the converted copy of a table is never held whole. Each file is written to a temporary file in
the output directory and renamed over the old one only when complete: an export that fails
(full disk, storage error) leaves the previous file, or none, and no partial file.
"""

from __future__ import annotations

import csv
import itertools
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from central.storage.base import EXPORT_TABLES, Storage

Format = Literal["csv", "parquet"]
Batch = Sequence[tuple[Any, ...]]
# Rows per batch and Parquet row group: a summaries batch (a JSON body of ~1-2 KB per row)
# stays in the tens of MB, while row groups stay big enough for column readers.
BATCH_ROWS = 20_000
# Parquet types of the exported numeric columns. A batch cannot infer them: a column that is
# null throughout the first batch (stock counts of item events) would get Arrow's null type.
_INT_COLUMNS = frozenset(
    [
        "in_count",
        "out_count",
        "visits",
        "dwell_count",
        "occupancy_max",
        "count",
        "seq",
        "threshold",
        "last_seq",
        "outbox_depth",
    ]
)
_FLOAT_COLUMNS = frozenset(
    ["dwell_sum_s", "occupancy_person_s", "covered_s", "lo_s", "hi_s", "amount"]
)


class ExportError(RuntimeError):
    """Export cannot run (missing optional dependency, unwritable directory)."""


@dataclass(frozen=True, slots=True)
class ExportedFile:
    table: str
    path: Path
    rows: int


def _is_time(col: str) -> bool:
    return col == "ts" or col.endswith("_ts")


def _to_dt(v: Any) -> datetime | None:
    return None if v is None else datetime.fromtimestamp(float(v), UTC)


def _cell(v: Any, is_time: bool) -> Any:
    if v is None:
        return ""
    return datetime.fromtimestamp(float(v), UTC).isoformat() if is_time else v


def _write_csv(f: IO[bytes], cols: list[str], batches: Iterable[Batch]) -> int:
    time_idx = {i for i, c in enumerate(cols) if _is_time(c)}
    n = 0
    with open(f.fileno(), "w", newline="", encoding="utf-8", closefd=False) as text:
        w = csv.writer(text)
        w.writerow(cols)
        for batch in batches:
            w.writerows([_cell(v, i in time_idx) for i, v in enumerate(row)] for row in batch)
            n += len(batch)
    return n


def _import_pyarrow() -> Any:
    try:
        import pyarrow as pa
    except ImportError:
        raise ExportError(
            "parquet export needs pyarrow: pip install 'footfall[parquet]' (or use --format csv)"
        ) from None
    return pa


def _arrow_type(pa: Any, col: str) -> Any:
    if _is_time(col):
        return pa.timestamp("us", tz="UTC")
    if col in _INT_COLUMNS:
        return pa.int64()
    if col in _FLOAT_COLUMNS:
        return pa.float64()
    return pa.string()


def _write_parquet(f: IO[bytes], cols: list[str], batches: Iterable[Batch]) -> int:
    pa = _import_pyarrow()
    import pyarrow.parquet as pq

    schema = pa.schema([(c, _arrow_type(pa, c)) for c in cols])
    n = 0
    with pq.ParquetWriter(f, schema) as writer:
        for batch in batches:
            arrays = []
            for i, col in enumerate(cols):
                values = [r[i] for r in batch]
                arrays.append(
                    pa.array([_to_dt(v) for v in values] if _is_time(col) else values,
                             schema.field(i).type)
                )  # fmt: skip
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            n += len(batch)
    return n


def _batches(rows: Iterable[tuple[Any, ...]], size: int) -> Iterator[Batch]:
    it = iter(rows)
    while batch := list(itertools.islice(it, size)):
        yield batch


def _write_atomic(path: Path, fmt: Format, cols: list[str], batches: Iterable[Batch]) -> int:
    """Write to a temporary file beside `path`, then rename it over `path`."""
    # Not mkstemp: its 0600 mode would make the export unreadable to a BI tool's own user.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("xb") as f:
            n = (_write_csv if fmt == "csv" else _write_parquet)(f, cols, batches)
            f.flush()
            # On disk before the rename, so a crash cannot leave a renamed but empty file.
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
    return n


def export(
    storage: Storage,
    out_dir: Path,
    fmt: Format = "csv",
    *,
    store_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    tables: list[str] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> list[ExportedFile]:
    if fmt not in ("csv", "parquet"):
        raise ExportError(f"unknown format {fmt!r} (csv or parquet)")
    if fmt == "parquet":
        _import_pyarrow()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create {out_dir}: {exc.strerror}") from None
    written = []
    for table in tables or list(EXPORT_TABLES):
        cols, rows = storage.export_table(table, store_id, start, end)
        path = out_dir / f"{table}.{fmt}"
        n = _write_atomic(path, fmt, cols, _batches(rows, batch_rows))
        written.append(ExportedFile(table, path, n))
    return written


__all__ = ["BATCH_ROWS", "ExportError", "ExportedFile", "Format", "export"]
