"""POS CSV import: bad rows reported by line, the rest imported, re-import adds nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from central.cli import main
from central.pos import PosFileError, import_pos_csv
from central.storage import Storage

CSV = (
    "Store,Timestamp,Transaction ID,Amount,Currency\n"  # line 1
    "s1,2026-05-04T09:15:00+02:00,T1,12.50,EUR\n"  # 2 ok
    "s1,2026-05-04 10:00:00,T2,3,eur\n"  # 3 ok: no offset -> store zone (Europe/Berlin)
    "s1,yesterday,T3,1.00,EUR\n"  # 4 bad timestamp
    "s1,2026-05-04T11:00:00Z,T4,abc,EUR\n"  # 5 bad amount
    "s1,2026-05-04T11:00:00Z,,5,EUR\n"  # 6 empty transaction id
    "bad store!,2026-05-04T11:00:00Z,T5,5,EUR\n"  # 7 bad store id
    "s1,2026-05-04T11:00:00Z,T1,5,EUR\n"  # 8 repeats line 2
    '"s2","2026-05-04T12:00:00+00:00","multi\nline id",7.25,USD\n'  # 9-10 ok (quoted newline)
    "s1,2026-05-04T12:00:00Z,T6,-4,EUR\n"  # 11 refund
    "s1,2026-05-04T12:00:00Z\n"  # 12 too few fields
    "s1,2026-05-04T12:00:00Z,T7,1,EURO\n"  # 13 bad currency
    "\n"  # 14 blank: ignored
    "s1,2026-05-04T13:00:00+00:00,T8,8,\n"  # 15 ok, no currency
)


def test_bad_rows_are_reported_by_line_and_the_rest_imported(
    storage: Storage, tmp_path: Path
) -> None:
    storage.set_store_timezone("s1", "Europe/Berlin")
    path = tmp_path / "pos.csv"
    path.write_text(CSV)
    result = import_pos_csv(storage, path)
    assert [b.line for b in result.bad_rows] == [4, 5, 6, 7, 8, 11, 12, 13]
    msgs = {b.line: b.message for b in result.bad_rows}
    assert "not ISO 8601" in msgs[4]
    assert "not a number" in msgs[5]
    assert "repeats line 2" in msgs[8]
    assert "refunds" in msgs[11]
    assert (result.rows_read, result.imported, result.duplicates) == (12, 4, 0)
    day = datetime(2026, 5, 4, tzinfo=UTC)
    rows = storage.pos_transactions("s1", day, day + timedelta(days=1))
    assert [(r.transaction_id, r.ts, r.amount, r.currency) for r in rows] == [
        ("T1", datetime(2026, 5, 4, 7, 15, tzinfo=UTC), 12.5, "EUR"),
        ("T2", datetime(2026, 5, 4, 8, 0, tzinfo=UTC), 3.0, "EUR"),  # 10:00 CEST
        ("T8", datetime(2026, 5, 4, 13, 0, tzinfo=UTC), 8.0, None),
    ]
    assert [r.transaction_id for r in storage.pos_transactions("s2", day, day + timedelta(1))] == [
        "multi\nline id"
    ]
    again = import_pos_csv(storage, path)
    assert (again.imported, again.duplicates) == (0, 4)


def test_naive_timestamps_need_a_known_zone(storage: Storage, tmp_path: Path) -> None:
    path = tmp_path / "pos.csv"
    path.write_text("store,timestamp,transaction_id,amount\nnew,2026-05-04 10:00,T1,1\n")
    result = import_pos_csv(storage, path)
    assert "time zone of store new is unknown" in result.bad_rows[0].message
    result = import_pos_csv(storage, path, timezone="Asia/Tokyo")
    assert result.imported == 1


def test_missing_columns_and_invalid_utf8(storage: Storage, tmp_path: Path) -> None:
    path = tmp_path / "pos.csv"
    path.write_text("store,when,amount\n")
    with pytest.raises(PosFileError, match="timestamp, transaction_id"):
        import_pos_csv(storage, path)
    path.write_bytes(
        b"store,timestamp,transaction_id,amount\ns1,2026-05-04T10:00Z,T\xff1,1\n"
        b"s1,2026-05-04T10:00Z,T2,1\n"
    )
    result = import_pos_csv(storage, path)
    assert [(b.line, b.message) for b in result.bad_rows] == [(2, "not valid UTF-8")]
    assert result.imported == 1


def test_cli_import_pos_prints_file_and_line(
    storage_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pos.csv"
    path.write_text("store,timestamp,transaction_id,amount\ns1,2026-05-04T10:00Z,T1,x\n"
                    "s1,2026-05-04T10:00Z,T2,2\n")  # fmt: skip
    rc = main(["import-pos", str(path), "--db", storage_url, "--json"])
    out, err = capsys.readouterr()
    assert rc == 1
    assert f"{path}:2: amount 'x' is not a number" in err
    assert '"imported": 1' in out
