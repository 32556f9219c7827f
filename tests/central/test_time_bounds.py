"""Times storage cannot turn back into dates (year 1, year 9999, a +14:00 offset on the first
day of year 1) are rejected at the door, by ingest and by the POS import: one such row used
to break every later export."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from central.config import IngestConfig
from central.export import export
from central.ingest import BatchWriter, RawMessage, validate
from central.pos import import_pos_csv
from central.storage import Storage, open_storage
from edge_agent import wire
from tests.central.factory import summary

GOOD = summary(1, datetime(2026, 11, 1, 10, tzinfo=UTC))
TOPIC = wire.topic_for(GOOD.store_id, GOOD.device_id, "summary")


def with_fields(**fields: str) -> bytes:
    doc = json.loads(wire.encode(GOOD))
    doc.update(fields, msg_id=f"{len(json.dumps(fields)):032x}")
    return json.dumps(doc).encode()


OUT_OF_RANGE = [
    # (fields, what the reason must say)
    # Year 0 in UTC: the wire format's own check (it raised OverflowError, not a WireError).
    ({"interval_start": "0001-01-01T00:00:00+14:00", "interval_end": "0001-01-01T00:01:00+14:00"},
     "interval_start: Input should be an ISO 8601 datetime with a timezone (Z for UTC), within "
     "the years 1-9999 in UTC"),
    ({"interval_start": "0001-01-01T00:00:00Z", "interval_end": "0001-01-01T00:01:00Z"},
     "interval_start: 0001-01-01T00:00:00+00:00 is outside the years 1970-2099"),
    ({"interval_start": "9999-12-31T23:58:00Z", "interval_end": "9999-12-31T23:59:00Z"},
     "outside the years 1970-2099"),
    ({"interval_start": "1969-12-31T23:58:00Z", "interval_end": "1969-12-31T23:59:00Z"},
     "outside the years 1970-2099"),
    ({"created_at": "9999-12-31T23:59:59-14:00"}, "created_at: Input should be an ISO 8601 "
     "datetime with a timezone (Z for UTC), within the years 1-9999 in UTC"),
    ({"created_at": "2150-01-01T00:00:00Z"}, "created_at: 2150-01-01T00:00:00+00:00 is outside"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "reason"), OUT_OF_RANGE)
def test_validate_rejects_times_storage_cannot_hold(fields: dict[str, str], reason: str) -> None:
    with pytest.raises(wire.WireError, match=re.escape(reason)):
        validate(TOPIC, with_fields(**fields))


def test_out_of_range_summaries_are_dead_lettered_and_export_still_works(
    storage: Storage, storage_url: str, tmp_path: Path
) -> None:
    writer = BatchWriter(storage, IngestConfig(), lambda: open_storage(storage_url))
    now = time.time()
    batch = [RawMessage(TOPIC, with_fields(**f), now) for f, _ in OUT_OF_RANGE]
    batch.append(RawMessage(TOPIC, wire.encode(GOOD), now))
    writer.write(batch)
    assert writer.stats.stored == 1
    assert writer.stats.dead_letters == len(OUT_OF_RANGE)
    reasons = [d.reason for d in storage.dead_letters()]
    assert len(reasons) == len(OUT_OF_RANGE)
    for _, expected in OUT_OF_RANGE:
        assert any(expected in got for got in reasons), (expected, reasons)
    files = export(storage, tmp_path / "out", "csv")
    assert {f.table: f.rows for f in files}["summaries"] == 1


def test_pos_rows_outside_the_years_are_bad_rows(storage: Storage, tmp_path: Path) -> None:
    path = tmp_path / "pos.csv"
    path.write_text(
        "store,timestamp,transaction_id,amount\n"
        "s1,0001-01-01T00:00:00+14:00,T1,1\n"
        "s1,9999-12-31T23:59:59Z,T2,1\n"
        "s1,2026-05-04T09:15:00Z,T3,1\n"
    )
    result = import_pos_csv(storage, path)
    assert [(b.line, b.message) for b in result.bad_rows] == [
        (2, "timestamp '0001-01-01T00:00:00+14:00' is outside the years 1970-2099"),
        (3, "timestamp '9999-12-31T23:59:59Z' is outside the years 1970-2099"),
    ]
    assert result.imported == 1
    files = export(storage, tmp_path / "out", "csv")
    assert {f.table: f.rows for f in files}["pos_transactions"] == 1


def test_a_pi_before_ntp_is_still_accepted() -> None:
    """A Pi without a real-time clock sends from 1970 until NTP sets its clock: storage can
    hold those times, and the messages fill their places in the device's sequence."""
    msg = validate(TOPIC, with_fields(created_at="1970-01-01T00:02:05Z",
                                      interval_start="1970-01-01T00:01:00Z",
                                      interval_end="1970-01-01T00:02:00Z"))  # fmt: skip
    assert msg.created_at.year == 1970
