"""`footfall-central export`: the stored tables as CSV or Parquet files for BI tools.

One file per table (`EXPORT_TABLES`: hourly rollups, summaries, stock events, POS, devices).
Time columns (`*_ts`) become UTC timestamps: ISO 8601 text in CSV, `timestamp[us, UTC]` in
Parquet. Parquet needs the optional `parquet` extra (pyarrow); the daemon never imports it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from central.storage.base import EXPORT_TABLES, Storage

Format = Literal["csv", "parquet"]


class ExportError(RuntimeError):
    """Export cannot run (missing optional dependency, unwritable directory)."""


@dataclass(frozen=True, slots=True)
class ExportedFile:
    table: str
    path: Path
    rows: int


def _is_time(col: str) -> bool:
    return col.endswith("_ts")


def _to_dt(v: Any) -> datetime | None:
    return None if v is None else datetime.fromtimestamp(float(v), UTC)


def _cell(v: Any, is_time: bool) -> Any:
    if v is None:
        return ""
    return datetime.fromtimestamp(float(v), UTC).isoformat() if is_time else v


def _write_csv(path: Path, cols: list[str], rows: list[tuple[Any, ...]]) -> None:
    time_idx = {i for i, c in enumerate(cols) if _is_time(c)}
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for row in rows:
            w.writerow([_cell(v, i in time_idx) for i, v in enumerate(row)])


def _write_parquet(path: Path, cols: list[str], rows: list[tuple[Any, ...]]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError(
            "parquet export needs pyarrow: pip install 'footfall[parquet]' (or use --format csv)"
        ) from None
    arrays = []
    for i, col in enumerate(cols):
        values = [r[i] for r in rows]
        if _is_time(col):
            arrays.append(pa.array([_to_dt(v) for v in values], pa.timestamp("us", tz="UTC")))
        else:
            arrays.append(pa.array(values))
    pq.write_table(pa.Table.from_arrays(arrays, names=cols), path)


def export(
    storage: Storage,
    out_dir: Path,
    fmt: Format = "csv",
    *,
    store_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    tables: list[str] | None = None,
) -> list[ExportedFile]:
    if fmt not in ("csv", "parquet"):
        raise ExportError(f"unknown format {fmt!r} (csv or parquet)")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ExportError(
                "parquet export needs pyarrow: pip install 'footfall[parquet]' "
                "(or use --format csv)"
            ) from None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create {out_dir}: {exc.strerror}") from None
    written = []
    for table in tables or list(EXPORT_TABLES):
        cols, rows = storage.export_table(table, store_id, start, end)
        path = out_dir / f"{table}.{fmt}"
        if fmt == "csv":
            _write_csv(path, cols, rows)
        else:
            _write_parquet(path, cols, rows)
        written.append(ExportedFile(table, path, len(rows)))
    return written


__all__ = ["ExportError", "ExportedFile", "Format", "export"]
