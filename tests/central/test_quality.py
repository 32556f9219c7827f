"""Data-quality findings on seeded faults (real SQLite storage), and none on clean data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from central.quality import (
    CountDrop,
    DeviceOffline,
    MissingData,
    QualityReport,
    SourceUnhealthy,
    assess,
    find_count_drops,
    find_missing_hours,
    find_missing_summaries,
    find_offline_devices,
)
from central.seed import SeedResult, SeedSpec, seed_storage
from central.storage.base import (
    DeviceRow,
    FootfallHour,
    Received,
    Storage,
    SummaryRow,
    open_storage,
)
from edge_agent import wire
from tests.central.factory import stock as stock_msg
from tests.central.factory import summary

SPEC = SeedSpec(stores=3, days=35)
RANGE_START = SPEC.end - timedelta(days=14)


def seeded(tmp: Path, spec: SeedSpec) -> tuple[Storage, SeedResult]:
    st = open_storage(f"sqlite://{tmp / 'seed.db'}")
    return st, seed_storage(st, spec)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, QualityReport], SeedResult]:
    st, res = seeded(tmp_path_factory.mktemp("faulty"), SPEC)
    with st:
        reports = {
            s: assess(st, s, RANGE_START, SPEC.end, now=SPEC.end) for s in sorted(res.stores)
        }
    return reports, res


def of(report: QualityReport, cls: type) -> list:
    return [f for f in report.findings if isinstance(f, cls)]


def test_offline_device_detected(faulty: tuple[dict[str, QualityReport], SeedResult]) -> None:
    reports, res = faulty
    (fault,) = res.faults_of("device_offline")
    rep = reports[fault.store_id]
    (off,) = of(rep, DeviceOffline)
    assert off.device_id == "edge-1"
    assert off.reason == "status offline"
    assert off.severity == "error"
    assert off.last_seen is not None
    assert abs((off.last_seen - fault.start).total_seconds()) < 60
    # Its silence since going offline is also a missing interval up to `now`.
    tails = [m for m in of(rep, MissingData) if m.cause == "no_summaries"]
    assert [(m.start, m.end) for m in tails] == [(fault.start, SPEC.end)]
    assert not rep.ok
    # Nobody else is offline.
    for store_id, other in reports.items():
        if store_id != fault.store_id:
            assert not of(other, DeviceOffline), other.findings


def test_seq_gap_and_missing_hours_detected(
    faulty: tuple[dict[str, QualityReport], SeedResult],
) -> None:
    reports, res = faulty
    (fault,) = res.faults_of("seq_gap")
    rep = reports[fault.store_id]
    lost = [m for m in of(rep, MissingData) if m.cause == "lost_messages"]
    assert [(m.device_id, m.missing_messages) for m in lost] == [("edge-1", 3)]
    hours = [m for m in of(rep, MissingData) if m.cause == "no_summaries"]
    assert [(m.start, m.end, m.missing_hours) for m in hours] == [(fault.start, fault.end, 3.0)]


def test_blocked_camera_detected_and_holiday_is_not_a_camera_fault(
    faulty: tuple[dict[str, QualityReport], SeedResult],
) -> None:
    reports, res = faulty
    (fault,) = res.faults_of("camera_blocked")
    rep = reports[fault.store_id]
    line_drops = [d for d in of(rep, CountDrop) if d.scope == "line"]
    assert len(line_drops) == 1, rep.findings
    (drop,) = line_drops
    assert (drop.camera_id, drop.line_id) == ("cam-side", "side")
    assert (drop.start, drop.end) == (fault.start, fault.end)
    assert drop.actual == 0
    assert drop.expected > 20
    assert drop.severity == "warning"
    # The holiday closes every door: one store-wide, informational finding per store.
    for store_id, report in reports.items():
        (holiday,) = [f for f in res.faults_of("holiday") if f.store_id == store_id]
        store_drops = [d for d in of(report, CountDrop) if d.scope == "store"]
        assert len(store_drops) == 1, report.findings
        assert store_drops[0].severity == "info"
        assert holiday.start <= store_drops[0].start < store_drops[0].end <= holiday.end
        if store_id != fault.store_id:
            assert not [d for d in of(report, CountDrop) if d.scope == "line"], report.findings


def test_report_serialises(faulty: tuple[dict[str, QualityReport], SeedResult]) -> None:
    reports, _ = faulty
    doc = json.loads(json.dumps(reports["store-001"].to_dict()))
    assert doc["ok"] is False
    assert doc["counts"]["count_drop"] == 2
    kinds = {f["kind"] for f in doc["findings"]}
    assert kinds == {"count_drop"}
    assert all(f["message"] for f in doc["findings"])


def test_no_false_findings_on_clean_data(tmp_path: Path) -> None:
    spec = SeedSpec(stores=3, days=35, faults=False, seed=11)
    st, _ = seeded(tmp_path, spec)
    with st:
        for store in st.stores():
            rep = assess(st, store.store_id, spec.end - timedelta(days=28), spec.end, now=spec.end)
            assert rep.findings == [], [f.message for f in rep.findings]
            assert rep.ok


def test_silent_device_and_unhealthy_source() -> None:
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    status = {
        "sources": [
            {"id": "cam-door", "kind": "camera", "state": "connected"},
            {"id": "cam-side", "kind": "camera", "state": "reconnecting"},
        ]
    }
    rows = [
        DeviceRow(
            "s1",
            "quiet",
            now - timedelta(hours=3),
            now - timedelta(hours=2),
            5,
            "online",
            now - timedelta(hours=2),
            "1",
            0,
            None,
        ),
        DeviceRow(
            "s1",
            "flaky",
            now - timedelta(days=3),
            now - timedelta(seconds=30),
            9,
            "online",
            now - timedelta(seconds=30),
            "1",
            0,
            json.dumps(status),
        ),
    ]
    found = find_offline_devices(rows, now, silent_after_s=900)
    (silent,) = [f for f in found if isinstance(f, DeviceOffline)]
    assert (silent.device_id, silent.reason) == ("quiet", "silent")
    assert "2.0 h" in silent.message
    (src,) = [f for f in found if isinstance(f, SourceUnhealthy)]
    assert (src.device_id, src.source_id, src.state) == ("flaky", "cam-side", "reconnecting")


def test_single_line_drop_and_quiet_hours() -> None:
    # One door, four weeks of 40/h at 10-14 h, then a day where it counts 0 from 11 to 13.
    start = datetime(2026, 5, 4, tzinfo=UTC)
    rows = []
    for day in range(35):
        for hour in range(24):
            t = start + timedelta(days=day, hours=hour)
            n = 40 if 10 <= hour < 14 else 1
            if day == 30 and 11 <= hour < 13:
                n = 0
            rows.append(FootfallHour(t, "cam", "door", n, n))
    found = find_count_drops(rows, "s1", start + timedelta(days=28), start + timedelta(days=35))
    (drop,) = found
    assert isinstance(drop, CountDrop)
    assert drop.start == start + timedelta(days=30, hours=11)
    assert drop.end == start + timedelta(days=30, hours=13)
    assert "only counting line" in drop.message
    # Nights with 1/h dropping to 0 are never a finding.
    assert (
        find_count_drops(
            rows[: 28 * 24], "s1", start + timedelta(days=27), start + timedelta(days=28)
        )
        == []
    )


def test_missing_hours_grouped_per_outage_and_interval_precision() -> None:
    start = datetime(2026, 5, 4, tzinfo=UTC)
    hours = [start + timedelta(hours=i) for i in range(10)]
    rows = []
    for i, h in enumerate(hours):
        if not 3 <= i < 6:  # one device with two cameras down for three hours
            rows += [FootfallHour(h, "cam-a", "l1", 1, 1), FootfallHour(h, "cam-b", "l2", 1, 1)]
        if i != 8:  # another camera misses one hour
            rows.append(FootfallHour(h, "cam-c", "l3", 1, 1))
    found = find_missing_hours("s1", rows, hours)
    got = [(m.cameras, m.start, m.missing_hours) for m in found if isinstance(m, MissingData)]
    assert got == [
        (("cam-a", "cam-b"), hours[3], 3.0),
        (("cam-c",), hours[8], 1.0),
    ]
    # Interval precision from the summaries themselves: a 2-minute hole in 1-minute summaries.
    summaries = [
        SummaryRow(
            f"{i:032x}",
            "s1",
            "edge-1",
            i + 1,
            start + timedelta(minutes=i),
            start + timedelta(minutes=i + 1),
            "UTC",
        )
        for i in range(30)
        if i not in (10, 11)
    ]
    (gap,) = find_missing_summaries(summaries, start, start + timedelta(minutes=30))
    assert isinstance(gap, MissingData)
    assert (gap.device_id, gap.start, gap.end) == (
        "edge-1",
        start + timedelta(minutes=10),
        start + timedelta(minutes=12),
    )


def floor_camera_weeks(blocked: range, *, side_camera: bool = False) -> list[Received]:
    """Five weeks of hourly summaries of examples/store-floor.yaml: one camera `floor` over
    two doors, 30 in per door and hour from 10 to 18 h, both doors at 0 on the last day's
    `blocked` hours. `side_camera`: a second camera (its own door) keeps counting as usual."""
    start = datetime(2026, 5, 4, tzinfo=UTC)
    out = []
    for i in range(35 * 24):
        t = start + timedelta(hours=i)
        n = 30 if 10 <= t.hour < 18 else 0
        floor = 0 if i // 24 == 34 and t.hour in blocked else n
        lines = {"floor/door-north": (floor, floor), "floor/door-east": (floor, floor)}
        if side_camera:
            lines["side/door-south"] = (n, n)
        msg = summary(i + 1, t, store="store-0107", device="floor-pi", minutes=60, lines=lines)
        out.append(Received(msg, (t + timedelta(hours=1)).timestamp()))
    return out


@pytest.mark.parametrize("side_camera", [False, True])
def test_a_blocked_camera_over_every_door_is_a_warning_not_a_closure(
    storage: Storage, side_camera: bool
) -> None:
    storage.write_batch(floor_camera_weeks(range(11, 15), side_camera=side_camera))
    day = datetime(2026, 6, 7, tzinfo=UTC)
    rep = assess(storage, "store-0107", day, day + timedelta(days=1), now=day + timedelta(days=1))
    drops = of(rep, CountDrop)
    # Whether or not another camera carries on, the blocked camera's two lines are warnings:
    # lines on one camera dropping together say nothing about the store being closed.
    assert sorted((d.camera_id, d.line_id, d.severity, d.scope) for d in drops) == [
        ("floor", "door-east", "warning", "line"),
        ("floor", "door-north", "warning", "line"),
    ], [d.message for d in drops]
    assert all((d.start, d.end) == (day + timedelta(hours=11), day + timedelta(hours=15))
               for d in drops)  # fmt: skip
    assert not rep.ok


def test_lines_on_two_cameras_dropping_together_are_a_store_wide_drop() -> None:
    start = datetime(2026, 5, 4, tzinfo=UTC)
    rows = []
    for i in range(35 * 24):
        t = start + timedelta(hours=i)
        n = 30 if 10 <= t.hour < 18 else 0
        if i // 24 == 34 and 11 <= t.hour < 15:
            n = 0  # a closure: every door of both cameras
        rows += [
            FootfallHour(t, "floor", "door-north", n, n, "floor-pi"),
            FootfallHour(t, "floor", "door-east", n, n, "floor-pi"),
            FootfallHour(t, "side", "door-south", n, n, "floor-pi"),
        ]
    day = start + timedelta(days=34)
    found = find_count_drops(rows, "s1", day, day + timedelta(days=1))
    assert [(f.severity, f.scope) for f in found if isinstance(f, CountDrop)] == [("info", "store")]


def test_a_covered_camera_is_reported_when_the_other_camera_dips_without_a_closure() -> None:
    """Camera `floor` at 0 for 4 h while the bigger camera `side` falls to 55 %: the other
    camera dropped (below 60 %), but the store as a whole (41 %) is no store-wide drop, so
    the covered camera must be reported, not skipped in favour of a finding that never comes."""
    start = datetime(2026, 5, 4, tzinfo=UTC)
    rows = []
    for i in range(35 * 24):
        t = start + timedelta(hours=i)
        open_ = 10 <= t.hour < 18
        floor, side = (20, 80) if open_ else (0, 0)
        if i // 24 == 34 and 11 <= t.hour < 15:
            floor, side = 0, 44
        rows += [
            FootfallHour(t, "floor", "door-north", floor, floor, "floor-pi"),
            FootfallHour(t, "side", "door-south", side, side, "side-pi"),
        ]
    day = start + timedelta(days=34)
    found = [f for f in find_count_drops(rows, "s1", day, day + timedelta(days=1))
             if isinstance(f, CountDrop)]  # fmt: skip
    assert [(f.camera_id, f.severity, f.scope) for f in found] == [("floor", "warning", "line")], [
        f.message for f in found
    ]


def test_a_till_between_sales_is_not_an_offline_device(storage: Storage) -> None:
    t0 = datetime(2026, 6, 1, 9, tzinfo=UTC)
    msgs: list[Received] = []
    for i in range(12):  # one hour of 5-minute summaries
        start = t0 + timedelta(minutes=5 * i)
        counted = summary(i + 1, start, device="edge-1", minutes=5, lines={"door/main": (1, 1)})
        msgs.append(Received(counted, (start + timedelta(minutes=5)).timestamp()))
    sale = wire.PosTransaction(store_id="s1", device_id="till-1", seq=1, transaction_id="t-1",
                               ts=t0 + timedelta(minutes=10), amount=12.5,
                               currency="EUR")  # fmt: skip
    msgs.append(Received(sale, (t0 + timedelta(minutes=10)).timestamp()))
    removal = stock_msg(1, t0 + timedelta(minutes=20), "item_removed", device="rfid-1",
                        gtin="09506000134352", epc=f"3034{1:020X}")  # fmt: skip
    msgs.append(Received(removal, (t0 + timedelta(minutes=20)).timestamp()))
    storage.write_batch(msgs)
    now = t0 + timedelta(hours=4)
    rep = assess(storage, "s1", t0, now, now=now)
    silent = {f.device_id: f.reason for f in of(rep, DeviceOffline)}
    # The counting device and the RFID device stopped; the till merely sold nothing since.
    assert silent == {"edge-1": "silent", "rfid-1": "silent"}, [f.message for f in rep.findings]
