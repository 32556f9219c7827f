"""Export round trip: what the files hold is what storage holds."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from central.cli import main
from central.export import export
from central.storage import Storage
from tests.central.factory import received, stock, summary

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def seed(storage: Storage) -> None:
    storage.write_batch(
        received(
            *[summary(i + 1, T0 + timedelta(hours=i), minutes=60, lines={"c/door": (i, i + 1)})
              for i in range(5)],
            summary(1, T0, store="s2", lines={"c/door": (100, 0)}),
            stock(9, T0, "stock_out", gtin="09506000134352", count=0),
        )
    )  # fmt: skip


def test_csv_round_trip(storage: Storage, tmp_path: Path) -> None:
    seed(storage)
    files = {f.table: f for f in export(storage, tmp_path, "csv", store_id="s1")}
    assert files["footfall_hourly"].rows == 5
    with files["footfall_hourly"].path.open() as f:
        rows = list(csv.DictReader(f))
    got = [(datetime.fromisoformat(r["hour_ts"]), int(r["in_count"]), int(r["out_count"]))
           for r in rows]  # fmt: skip
    expected = [(h.hour_start, h.in_count, h.out_count)
                for h in storage.footfall_hours("s1", T0, T0 + timedelta(days=1))]  # fmt: skip
    assert sorted(got) == expected
    with files["summaries"].path.open() as f:
        bodies = [json.loads(r["body"]) for r in csv.DictReader(f)]
    assert sorted(b["seq"] for b in bodies) == [1, 2, 3, 4, 5]
    with files["stock_events"].path.open() as f:
        (ev,) = list(csv.DictReader(f))
    assert (ev["event_type"], ev["gtin"], ev["count"], ev["epc"]) == (
        "stock_out", "09506000134352", "0", ""
    )  # fmt: skip


def test_parquet_round_trip_and_range(storage: Storage, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    seed(storage)
    files = {
        f.table: f
        for f in export(storage, tmp_path, "parquet", start=T0 + timedelta(hours=1),
                        end=T0 + timedelta(hours=3))
    }  # fmt: skip
    table = pq.read_table(files["footfall_hourly"].path).to_pylist()
    assert [(r["store_id"], r["hour_ts"], r["in_count"]) for r in table] == [
        ("s1", T0 + timedelta(hours=1), 1),
        ("s1", T0 + timedelta(hours=2), 2),
    ]
    assert str(pq.read_schema(files["footfall_hourly"].path).field("hour_ts").type) == (
        "timestamp[us, tz=UTC]"
    )


def test_cli_export(storage_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from central.storage import open_storage

    with open_storage(storage_url) as st:
        seed(st)
    rc = main(["export", "--format", "csv", "--out", str(tmp_path / "out"), "--db", storage_url,
               "--store", "s2", "--json"])  # fmt: skip
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {f["table"]: f["rows"] for f in doc["files"]}
    assert rows["footfall_hourly"] == 1
    assert rows["stock_events"] == 0


def test_parquet_without_pyarrow_is_a_clear_error(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from central.export import ExportError

    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)  # import fails
    with pytest.raises(ExportError, match=r"pip install 'footfall\[parquet\]'"):
        export(storage, tmp_path, "parquet")
