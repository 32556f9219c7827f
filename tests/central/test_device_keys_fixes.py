"""Camera ids are unique only per device: two devices of one store that both have a camera
`door` (and a floor camera `cam`) stay apart in footfall, occupancy, data quality and export."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from central import analytics, quality
from central.export import export
from central.storage import Storage
from tests.central.factory import received, summary

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _zones(occupancy: float) -> list[dict[str, Any]]:
    return [{"zone_id": "z1", "visits": 1, "occupancy_mean": occupancy, "occupancy_max": 4,
             "dwell_count": 0, "dwell_mean_s": None}]  # fmt: skip


def seed(storage: Storage) -> None:
    msgs: list[object] = []
    for h in range(6):
        msgs.append(summary(h + 1, T0 + timedelta(hours=h), minutes=60, device="d1",
                            lines={"door/main": (10, 0)}, zones=_zones(4.0)))  # fmt: skip
        if h < 2:  # d2, at another entrance, stops sending after two hours
            msgs.append(summary(h + 1, T0 + timedelta(hours=h), minutes=60, device="d2",
                                lines={"door/main": (3, 0)}, zones=_zones(0.0)))  # fmt: skip
    storage.write_batch(received(*msgs))


def test_same_camera_id_on_two_devices_is_not_merged(storage: Storage, tmp_path: Path) -> None:
    seed(storage)
    rng = analytics.report_range(storage, "s1", date(2026, 6, 1), date(2026, 6, 1))
    ff = analytics.footfall(storage, rng)
    assert ff.lines == {"d1:door/main": {"in": 60, "out": 0}, "d2:door/main": {"in": 6, "out": 0}}
    assert ff.total_in == 66
    occ = analytics.occupancy(storage, rng, ff)
    assert occ["by_hour"][0]["zones"] == {"d1:cam/z1": 4.0, "d2:cam/z1": 0.0}
    assert occ["by_hour"][3]["zones"] == {"d1:cam/z1": 4.0}

    report = quality.assess(storage, "s1", T0, T0 + timedelta(hours=6),
                            now=T0 + timedelta(hours=6, minutes=1), silent_after_s=10**9)  # fmt: skip
    (gap,) = [f for f in report.findings if f.kind == "missing_data"]
    assert isinstance(gap, quality.MissingData)
    assert (gap.device_id, gap.cameras, gap.devices) == ("d2", ("cam", "door"), ("d2", "d2"))
    assert (gap.start, gap.end) == (T0 + timedelta(hours=2), T0 + timedelta(hours=6))
    assert "door on d2" in gap.message

    files = {f.table: f for f in export(storage, tmp_path, "csv", tables=["footfall_hourly"])}
    with files["footfall_hourly"].path.open() as fh:
        rows = list(csv.DictReader(fh))
    per_device: dict[str, int] = {}
    for r in rows:
        per_device[r["device_id"]] = per_device.get(r["device_id"], 0) + int(r["in_count"])
    assert per_device == {"d1": 60, "d2": 6}


def test_one_device_keeps_plain_keys(storage: Storage) -> None:
    storage.write_batch(received(summary(1, T0, minutes=60, device="d1",
                                         lines={"door/main": (5, 1)}, zones=_zones(2.0))))  # fmt: skip
    rng = analytics.report_range(storage, "s1", date(2026, 6, 1), date(2026, 6, 1))
    ff = analytics.footfall(storage, rng)
    assert ff.lines == {"door/main": {"in": 5, "out": 1}}
    assert analytics.occupancy(storage, rng, ff)["by_hour"][0]["zones"] == {"cam/z1": 2.0}
