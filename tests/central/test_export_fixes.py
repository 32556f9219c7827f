"""Export writes each table in batches to a temporary file and renames it into place: a failed
export (here: the file size limit of the process, as on a full disk) leaves the previous file
as it was and no partial or temporary file behind."""

from __future__ import annotations

import csv
import resource
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from central.export import export
from central.storage import Storage, open_storage
from tests.central.factory import received, stock, summary

CLI = Path(sys.executable).parent / "footfall-central"
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
G1 = "09506000134352"


def _seed_stock(storage: Storage, n: int) -> None:
    # Item events carry no count and a stock_low no epc: in the first batches `count` and
    # `threshold` are all null, so a batch's own type inference would disagree with later ones.
    msgs: list[object] = [
        stock(i + 1, T0 + timedelta(minutes=i), "item_arrived", gtin=G1, epc=f"3034{i:020X}")
        for i in range(n)
    ]
    msgs.append(stock(n + 1, T0 + timedelta(hours=9), "stock_low", gtin=G1, count=2, threshold=3))
    storage.write_batch(received(*msgs))


def test_csv_and_parquet_are_written_in_batches(storage: Storage, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    _seed_stock(storage, 24)
    _, table_rows = storage.export_table("stock_events")
    expected = list(table_rows)
    files = {f.table: f for f in export(storage, tmp_path / "p", "parquet", batch_rows=7)}
    f = files["stock_events"]
    assert f.rows == 25
    pf = pq.ParquetFile(f.path)
    assert pf.metadata.num_row_groups == 4  # 7 + 7 + 7 + 4 rows: one row group per batch
    schema = pf.schema_arrow
    assert (str(schema.field("count").type), str(schema.field("ts").type)) == (
        "int64", "timestamp[us, tz=UTC]"
    )  # fmt: skip
    got = pf.read().to_pylist()
    assert sorted((r["seq"], r["epc"], r["count"], r["threshold"]) for r in got) == sorted(
        (e[3], e[9], e[11], e[12]) for e in expected
    )
    assert sorted(r["ts"] for r in got) == sorted(
        datetime.fromtimestamp(e[4], UTC) for e in expected
    )

    files = {f.table: f for f in export(storage, tmp_path / "c", "csv", batch_rows=7)}
    with files["stock_events"].path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 25
    assert sorted((int(r["seq"]), r["count"]) for r in rows) == sorted(
        (e[3], "" if e[11] is None else str(e[11])) for e in expected
    )
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == sorted(f"{t}.csv" for t in files)


def _limit_file_size() -> None:
    # Writes past the limit fail with EFBIG (instead of killing the process with SIGXFSZ),
    # the way they fail with ENOSPC on a full disk.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (48 * 1024, 48 * 1024))


def test_failed_export_keeps_the_previous_file_and_leaves_no_partial_one(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'central.db'}"
    out = tmp_path / "out"
    with open_storage(url) as st:
        st.write_batch(received(*[summary(i + 1, T0 + timedelta(hours=i), minutes=60,
                                          lines={"c/door": (i, 0)}) for i in range(3)]))  # fmt: skip
        first = {f.table: f for f in export(st, out, "csv")}
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {f"{t}.csv" for t in first}
    with open_storage(url) as st:
        # 300 more hours: the summaries file (a JSON body per row) outgrows 48 KiB, the
        # footfall file (a short row per hour) does not.
        st.write_batch(received(*[summary(i + 1, T0 + timedelta(hours=i), minutes=60,
                                          lines={"c/door": (i, 0)}) for i in range(3, 303)]))  # fmt: skip
    proc = subprocess.run(
        [str(CLI), "export", "--format", "csv", "--out", str(out), "--db", url],
        capture_output=True, text=True, timeout=120, preexec_fn=_limit_file_size, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "export: cannot write" in proc.stderr and "summaries.csv" in proc.stderr
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(after) == set(before)  # no temporary file left behind
    assert after["summaries.csv"] == before["summaries.csv"]
    # Tables before it in the export order were replaced whole.
    with (out / "footfall_hourly.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 303
