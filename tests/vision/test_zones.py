"""ZoneCounter: visits, dwell, occlusion grace, hand-over to a re-found track, transitions."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from vision.config import ZoneConfig
from vision.detections import Detections
from vision.events import ZoneOccupancy, ZoneTransition, ZoneVisit
from vision.zones import ZoneCounter

FPS = 10.0
SHELF = ZoneConfig(id="shelf", polygon=[[100, 100], [300, 100], [300, 300], [100, 300]])
TILL = ZoneConfig(id="till", polygon=[[400, 100], [600, 100], [600, 300], [400, 300]])


def people(*items: tuple[int, float, float]) -> Detections:
    if not items:
        return Detections.empty()
    return Detections.from_arrays(
        [[x - 15, y - 80, x + 15, y] for _, x, y in items],
        [0.9] * len(items),
        [t for t, _, _ in items],
    )


def feed(counter: ZoneCounter, frames: Sequence[Detections], start: int = 0) -> list[object]:
    out: list[object] = []
    for k, d in enumerate(frames, start=start):
        ev = counter.update(d, k / FPS)
        assert sum(isinstance(e, ZoneOccupancy) for e in ev) == 1
        assert isinstance(ev[-1], ZoneOccupancy)
        out += ev
    return out


def visits(events: list[object]) -> list[ZoneVisit]:
    return [e for e in events if isinstance(e, ZoneVisit)]


def test_visit_dwell_and_occupancy() -> None:
    zc = ZoneCounter("cam", [SHELF], "bottom_center")
    frames = [people((1, 50, 200))] * 5 + [people((1, 200, 200))] * 31 + [people((1, 50, 200))] * 25
    ev = feed(zc, frames)
    occ = [e.counts["shelf"] for e in ev if isinstance(e, ZoneOccupancy)]
    assert max(occ) == 1 and occ[0] == 0
    (v,) = visits(ev)
    assert v.track_id == 1 and v.zone_id == "shelf" and v.camera_id == "cam"
    assert v.dwell_s == pytest.approx(3.0)
    assert occ[-1] == 0


def test_short_occlusion_inside_keeps_one_visit() -> None:
    zc = ZoneCounter("cam", [SHELF], "bottom_center")
    frames = [people((1, 200, 200))] * 20 + [people()] * 12 + [people((1, 205, 200))] * 20
    ev = feed(zc, frames)
    occ = [e.counts["shelf"] for e in ev if isinstance(e, ZoneOccupancy)]
    assert min(occ) == 1  # still counted while hidden
    assert visits(ev) == []
    (v,) = zc.close(len(frames) / FPS)
    assert v.entered_ts == 0.0 and v.dwell_s == pytest.approx(5.1)


def test_long_absence_ends_the_visit() -> None:
    zc = ZoneCounter("cam", [SHELF], "bottom_center")
    frames = [people((1, 200, 200))] * 20 + [people()] * 25 + [people((1, 200, 200))] * 20
    ev = feed(zc, frames)
    assert [round(v.dwell_s, 1) for v in visits(ev)] == [1.9]
    assert [round(v.dwell_s, 1) for v in zc.close(7.0)] == [1.9]


def test_lost_and_refound_nearby_with_new_id_is_one_visit() -> None:
    zc = ZoneCounter("cam", [SHELF], "bottom_center")
    frames = [people((1, 200, 200))] * 20 + [people()] * 5 + [people((8, 215, 205))] * 20
    ev = feed(zc, frames)
    assert visits(ev) == []
    (v,) = zc.close(5.0)
    assert v.track_id == 8 and v.entered_ts == 0.0
    # but a new id far away in the zone is another person: two visits
    zc2 = ZoneCounter("cam", [SHELF], "bottom_center")
    frames = [people((1, 120, 120))] * 20 + [people()] * 5 + [people((8, 280, 290))] * 20
    done = visits(feed(zc2, frames)) + zc2.close(5.0)
    assert sorted(v.track_id for v in done) == [1, 8]


def test_min_visit_filters_passers_by() -> None:
    zc = ZoneCounter("cam", [SHELF], "bottom_center")
    frames = [people((1, 90 + 20 * k, 200)) for k in range(12)] + [people()] * 30
    ev = feed(zc, frames)
    assert visits(ev) == []  # crossed the zone in 0.9 s < min_visit_s


def test_transition_between_zones_and_two_people() -> None:
    zc = ZoneCounter("cam", [SHELF, TILL], "bottom_center")
    frames = (
        [people((1, 200, 200), (2, 500, 200))] * 20
        + [people((1, 350, 200), (2, 500, 200))] * 25
        + [people((1, 500, 210), (2, 500, 200))] * 20
    )
    ev = feed(zc, frames)
    trans = [e for e in ev if isinstance(e, ZoneTransition)]
    assert [(t.from_zone, t.to_zone) for t in trans] == [("shelf", "till")]
    occ = [e for e in ev if isinstance(e, ZoneOccupancy)][-1]
    assert occ.counts == {"shelf": 0, "till": 2}
    assert [v.zone_id for v in visits(ev)] == ["shelf"]
    assert sorted(v.zone_id for v in zc.close(7.0)) == ["till", "till"]
    assert zc.open_visit_count == 0
