"""ZoneCounter across gaps in the frames (a stalled stream, an RTSP reconnect).

Time with no frames is time the person was unseen: a visit must not run on across it, and a
different track standing at the same spot afterwards must not inherit it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from vision.config import ZoneConfig
from vision.detections import Detections
from vision.events import ZoneOccupancy, ZoneVisit
from vision.zones import ZoneCounter

T0 = 1_700_000_000.0
TILL = ZoneConfig(id="till", polygon=[[0, 0], [400, 0], [400, 400], [0, 400]])


def person(track_id: int, x: float = 120.0) -> Detections:
    return Detections.from_arrays([[x - 20, 100, x + 20, 200]], [0.9], [track_id])


def run(zc: ZoneCounter, dets: Detections, start_ts: float, n: int) -> list[object]:
    out: list[object] = []
    for k in range(n):
        out += zc.update(dets, start_ts + k / 10)
    return out


def visits(events: Sequence[object]) -> list[ZoneVisit]:
    return [e for e in events if isinstance(e, ZoneVisit)]


def test_a_gap_longer_than_the_grace_ends_the_visit_when_last_seen() -> None:
    zc = ZoneCounter("c", [TILL])
    run(zc, person(1), T0, 30)  # seen inside 0.0-2.9 s
    # 60 s without any frame, then the same track is seen again for 3 s
    after = run(zc, person(1), T0 + 63, 30)
    first = after[: after.index(next(e for e in after if isinstance(e, ZoneOccupancy))) + 1]
    (closed,) = visits(first)  # closed on the first frame after the gap, not extended by it
    assert closed.entered_ts == pytest.approx(T0)
    assert closed.exited_ts == pytest.approx(T0 + 2.9)
    assert closed.dwell_s == pytest.approx(2.9)
    (second,) = zc.close(T0 + 66)
    assert second.entered_ts == pytest.approx(T0 + 63)
    assert second.dwell_s == pytest.approx(2.9)


def test_a_new_id_after_a_long_gap_does_not_inherit_the_visit() -> None:
    zc = ZoneCounter("c", [TILL])
    run(zc, person(1), T0, 30)
    ev = zc.update(person(7, x=122.0), T0 + 63)
    (closed,) = visits(ev)
    assert closed.track_id == 1 and closed.exited_ts == pytest.approx(T0 + 2.9)
    occupancy = ev[-1]
    assert isinstance(occupancy, ZoneOccupancy) and occupancy.counts == {"till": 1}
    run(zc, person(7, x=122.0), T0 + 63.1, 29)
    (new,) = zc.close(T0 + 66)
    assert new.track_id == 7 and new.entered_ts == pytest.approx(T0 + 63)


def test_a_gap_within_the_grace_keeps_one_visit_and_the_handover() -> None:
    zc = ZoneCounter("c", [TILL])
    run(zc, person(1), T0, 30)
    # 1.5 s without frames (grace is 2 s), then the tracker has re-found them as id 2
    ev = run(zc, person(2, x=122.0), T0 + 4.4, 30)
    assert visits(ev) == []
    (v,) = zc.close(T0 + 8)
    assert v.track_id == 2
    assert v.entered_ts == pytest.approx(T0) and v.exited_ts == pytest.approx(T0 + 7.3)
