"""Zone occupancy and dwell: tracked anchors inside polygons -> visits, transitions, occupancy.

A visit opens when a track's anchor is first inside a zone and stays open while the anchor
keeps being seen inside; it survives up to occlusion_grace_s of the person being unseen or
jittering just outside the border. When a new track id appears inside the zone close to where
an open visit's track was last seen (a track lost and re-found as a new id), the visit is
handed over instead of starting a second one. A closed visit is reported as a ZoneVisit
(exited at the last time seen inside) if it lasted at least min_visit_s. Occupancy counts
the open visits, so a person hidden behind a pillar for a second still counts.

Time without frames (a stalled stream, a camera reconnect) is time unseen like any other: the
visits it outlasts are closed at the start of the next update, before its anchors can extend
them or a new track id at the same spot can inherit them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vision.config import ZoneConfig
from vision.detections import Detections
from vision.events import ZoneOccupancy, ZoneTransition, ZoneVisit
from vision.geometry import Polygon

# a re-found track inherits an open visit when it appears within this many box heights
INHERIT_RADIUS_H = 1.0
INHERIT_MIN_RADIUS_PX = 16.0

ZoneEvent = ZoneVisit | ZoneTransition | ZoneOccupancy


@dataclass(slots=True)
class _Visit:
    track_id: int
    entered_ts: float
    last_inside_ts: float
    last_point: np.ndarray
    height_px: float


class ZoneCounter:
    """Tracks visits to one camera's zones; see the module docstring for the rules."""

    def __init__(
        self, camera_id: str, zones: Sequence[ZoneConfig], anchor: str = "bottom_center"
    ) -> None:
        if anchor not in ("bottom_center", "center"):
            raise ValueError(f"unknown anchor {anchor!r}")
        self.camera_id = camera_id
        self.anchor = anchor
        self.configs = list(zones)
        self.polygons = [Polygon.from_points(z.polygon) for z in self.configs]
        # per zone: track id -> open visit
        self._open: list[dict[int, _Visit]] = [{} for _ in self.configs]
        # last zone each track was inside (for transitions); pruned with the visits
        self._last_zone: dict[int, tuple[int, float]] = {}

    @property
    def open_visit_count(self) -> int:
        return sum(len(v) for v in self._open)

    def _closed(self, z: int, visit: _Visit) -> ZoneVisit | None:
        if visit.last_inside_ts - visit.entered_ts < self.configs[z].min_visit_s:
            return None
        return ZoneVisit(
            camera_id=self.camera_id,
            zone_id=self.configs[z].id,
            track_id=visit.track_id,
            entered_ts=visit.entered_ts,
            exited_ts=visit.last_inside_ts,
        )

    def _handover(self, z: int, point: np.ndarray, height: float, present: set[int]) -> int | None:
        best: int | None = None
        best_d = np.inf
        for tid, v in self._open[z].items():
            if tid in present:
                continue
            radius = max(INHERIT_RADIUS_H * max(height, v.height_px), INHERIT_MIN_RADIUS_PX)
            d = float(np.hypot(*(point - v.last_point)))
            if d <= radius and d < best_d:
                best, best_d = tid, d
        return best

    def update(self, tracks: Detections, ts: float) -> list[ZoneEvent]:
        """Feed one frame's tracks; returns closed visits, transitions, then one occupancy."""
        events: list[ZoneEvent] = []
        keep = tracks.track_ids >= 0
        anchors = tracks.anchors(self.anchor)[keep].astype(np.float64)
        heights = (tracks.xyxy[keep, 3] - tracks.xyxy[keep, 1]).astype(np.float64)
        ids = [int(t) for t in tracks.track_ids[keep]]
        present = set(ids)
        # Expire first: checked after this frame's anchors, a visit unseen through a gap in the
        # frames (60 s of stalled stream) was extended across the whole gap, or handed to
        # whoever stood at the same spot afterwards.
        for z, cfg in enumerate(self.configs):
            visits = self._open[z]
            expired = [
                tid for tid, v in visits.items() if ts - v.last_inside_ts > cfg.occlusion_grace_s
            ]
            for tid in expired:
                closed = self._closed(z, visits.pop(tid))
                if closed is not None:
                    events.append(closed)
        self._prune_last_zone(ts)
        counts: dict[str, int] = {}
        for z, (cfg, poly) in enumerate(zip(self.configs, self.polygons, strict=True)):
            inside = poly.contains(anchors) if ids else np.zeros(0, dtype=bool)
            visits = self._open[z]
            for i in np.flatnonzero(inside):
                tid = ids[i]
                visit = visits.get(tid)
                if visit is None:
                    donor = self._handover(z, anchors[i], float(heights[i]), present)
                    if donor is not None:
                        visit = visits.pop(donor)
                        visit.track_id = tid
                    else:
                        visit = _Visit(tid, ts, ts, anchors[i].copy(), float(heights[i]))
                        prev = self._last_zone.get(tid)
                        if prev is not None and prev[0] != z:
                            events.append(
                                ZoneTransition(
                                    camera_id=self.camera_id,
                                    from_zone=self.configs[prev[0]].id,
                                    to_zone=cfg.id,
                                    ts=ts,
                                )
                            )
                    visits[tid] = visit
                visit.last_inside_ts = ts
                visit.last_point = anchors[i].copy()
                visit.height_px = float(heights[i])
                self._last_zone[tid] = (z, ts)
            counts[cfg.id] = len(visits)
        events.append(ZoneOccupancy(camera_id=self.camera_id, ts=ts, counts=counts))
        return events

    def _prune_last_zone(self, ts: float) -> None:
        horizon = max((c.occlusion_grace_s for c in self.configs), default=0.0) + 10.0
        stale = [tid for tid, (_, t) in self._last_zone.items() if ts - t > horizon]
        for tid in stale:
            del self._last_zone[tid]

    def close(self, ts: float) -> list[ZoneVisit]:
        """Close every open visit (shutdown or end of footage); ts is for the caller's record."""
        del ts  # visits end when last seen inside, not at shutdown time
        out: list[ZoneVisit] = []
        for z, visits in enumerate(self._open):
            for visit in visits.values():
                closed = self._closed(z, visit)
                if closed is not None:
                    out.append(closed)
            visits.clear()
        self._last_zone.clear()
        return out


__all__ = ["ZoneCounter", "ZoneEvent"]
