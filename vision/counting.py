"""Line counting: tracked anchors crossing directed segments -> CrossingEvent.

For each (track, line) the counter keeps the side the anchor has settled on. A crossing is
counted when the anchor settles on the other side (at least hysteresis_px past the line for
min_frames_on_side consecutive updates) AND its path since leaving the old side touched the
finite segment. So:

- jitter or standing on the line never counts (inside the hysteresis band nothing settles);
- walking round the end of a segment changes side silently;
- a track that appears with no settled side (e.g. first seen on the line) cannot count until it
  has settled, so a fresh id born mid-crossing does not add a count by itself;
- a track that appears where another one vanished moments ago (an ID switch or a track lost
  and re-acquired as a new id) inherits the vanished track's state, so the crossing it was in
  the middle of is counted exactly once;
- a track counts once per direction per line unless it really crosses back.

State of tracks not seen for ``forget_s`` is dropped, so memory stays bounded in a 24/7 process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vision.config import LineConfig
from vision.detections import Detections
from vision.events import CrossingEvent, Direction
from vision.geometry import Line

# A lost track's state may be inherited by a new id appearing within this time...
INHERIT_S = 2.0
# ...and within this distance of where the lost track was predicted to be, in box heights.
INHERIT_RADIUS_H = 0.75
INHERIT_MIN_RADIUS_PX = 12.0


@dataclass(slots=True)
class _LineState:
    side: int = 0  # settled side: -1, +1, or 0 when not settled yet
    pending_side: int = 0
    pending_frames: int = 0
    touched: bool = False  # path touched the segment since leaving the settled side
    last_s: int = 0  # the side the anchor was on at the last update (0: inside the band)


@dataclass(slots=True)
class _TrackMemory:
    point: np.ndarray
    velocity_px_s: np.ndarray
    height_px: float
    ts: float
    lines: list[_LineState] = field(default_factory=list)


class LineCounter:
    """Counts crossings of one camera's lines; see the module docstring for the rules."""

    def __init__(
        self,
        camera_id: str,
        lines: Sequence[LineConfig],
        anchor: str = "bottom_center",
        forget_s: float = 10.0,
    ) -> None:
        if anchor not in ("bottom_center", "center"):
            raise ValueError(f"unknown anchor {anchor!r}")
        self.camera_id = camera_id
        self.anchor = anchor
        self.configs = list(lines)
        self.lines = [Line.from_points(c.points) for c in self.configs]
        self.forget_s = max(forget_s, INHERIT_S)
        self._tracks: dict[int, _TrackMemory] = {}

    @property
    def tracked_count(self) -> int:
        """Tracks whose state is held in memory."""
        return len(self._tracks)

    def _inherit(self, point: np.ndarray, height: float, ts: float, seen: set[int]) -> int | None:
        best: int | None = None
        best_d = np.inf
        for tid, mem in self._tracks.items():
            dt = ts - mem.ts
            if tid in seen or dt <= 0 or dt > INHERIT_S:
                continue
            predicted = mem.point + mem.velocity_px_s * dt
            radius = max(INHERIT_RADIUS_H * max(height, mem.height_px), INHERIT_MIN_RADIUS_PX)
            d = float(np.hypot(*(point - predicted)))
            if d <= radius and d < best_d:
                best, best_d = tid, d
        return best

    def update(self, tracks: Detections, ts: float, frame_index: int) -> list[CrossingEvent]:
        """Feed one frame's confirmed tracks; returns the crossings completed at this frame."""
        events: list[CrossingEvent] = []
        anchors = tracks.anchors(self.anchor).astype(np.float64)
        heights = (tracks.xyxy[:, 3] - tracks.xyxy[:, 1]).astype(np.float64)
        ids = [int(t) for t in tracks.track_ids]
        if self._at_rest(ids, anchors, heights):
            # Every anchor is exactly where the last update left it and settled: the full
            # update below would only decay velocities and stamp the time. This is the common
            # case while motion gating holds the tracks of a still scene, where the full
            # update's per-frame numpy work was a large part of a skipped frame's cost.
            for tid in ids:
                rest = self._tracks[tid]
                if ts > rest.ts:
                    rest.velocity_px_s = 0.5 * rest.velocity_px_s
                rest.ts = ts
            self._prune(ts)
            return events
        seen = {t for t in ids if t >= 0 and t in self._tracks}
        nlines = len(self.lines)
        # signed distances for all anchors and lines in one go: (N, L)
        dist = (
            np.stack([ln.signed_distance(anchors) for ln in self.lines], axis=1)
            if nlines and ids
            else np.zeros((len(ids), nlines))
        )
        # resolve each id's memory first (inheriting where a new id replaces a lost one), so
        # the path segments prev -> now can be tested against every line in one numpy call
        mems: list[_TrackMemory | None] = []
        for i, tid in enumerate(ids):
            if tid < 0:
                mems.append(None)
                continue
            mem = self._tracks.get(tid)
            if mem is None:
                donor = self._inherit(anchors[i], float(heights[i]), ts, seen)
                if donor is not None:
                    mem = self._tracks.pop(donor)
                else:
                    mem = _TrackMemory(
                        point=anchors[i].copy(),
                        velocity_px_s=np.zeros(2),
                        height_px=float(heights[i]),
                        ts=ts,
                        lines=[_LineState() for _ in self.lines],
                    )
                self._tracks[tid] = mem
            seen.add(tid)
            mems.append(mem)
        prev_pts = np.array([m.point if m is not None else (0.0, 0.0) for m in mems]).reshape(-1, 2)
        moved = (prev_pts != anchors).any(axis=1)
        touched = (
            np.stack([ln.crosses(prev_pts, anchors) for ln in self.lines], axis=1) & moved[:, None]
            if nlines and ids
            else np.zeros((len(ids), nlines), dtype=bool)
        )
        for i, tid in enumerate(ids):
            mem = mems[i]
            if mem is None:
                continue
            p = anchors[i]
            prev = mem.point
            for j, (cfg, st) in enumerate(zip(self.configs, mem.lines, strict=True)):
                d = dist[i, j]
                s = 0 if abs(d) < cfg.hysteresis_px else (1 if d > 0 else -1)
                st.last_s = s
                if touched[i, j]:
                    st.touched = True
                if s == 0:
                    continue
                if s == st.side:
                    if st.pending_side or st.touched:
                        st.pending_side, st.pending_frames, st.touched = 0, 0, False
                    continue
                if s != st.pending_side:
                    st.pending_side, st.pending_frames = s, 0
                st.pending_frames += 1
                if st.pending_frames < cfg.min_frames_on_side:
                    continue
                if st.side != 0 and st.touched:
                    direction: Direction = "in" if s > 0 else "out"
                    events.append(
                        CrossingEvent(
                            camera_id=self.camera_id,
                            line_id=cfg.id,
                            direction=direction,
                            track_id=tid,
                            ts=ts,
                            frame_index=frame_index,
                        )
                    )
                st.side, st.pending_side, st.pending_frames, st.touched = s, 0, 0, False
            dt = ts - mem.ts
            if dt > 0:
                # smoothed velocity so inheritance can follow a person through an occlusion
                mem.velocity_px_s = 0.5 * mem.velocity_px_s + 0.5 * (p - prev) / dt
            mem.point, mem.height_px, mem.ts = p.copy(), float(heights[i]), ts
        self._prune(ts)
        return events

    def _at_rest(self, ids: list[int], anchors: np.ndarray, heights: np.ndarray) -> bool:
        """True when an update could only age the tracks: every id is known, unmoved (same
        anchor and height, exactly), and settled on every line (no pending side, no touch, on
        its settled side or inside the band)."""
        if not ids:
            return False
        for i, tid in enumerate(ids):
            mem = self._tracks.get(tid)
            if (
                mem is None
                or mem.height_px != heights[i]
                or mem.point[0] != anchors[i, 0]
                or mem.point[1] != anchors[i, 1]
            ):
                return False
            for st in mem.lines:
                if st.pending_side or st.touched or (st.last_s and st.last_s != st.side):
                    return False
        return True

    def _prune(self, ts: float) -> None:
        stale = [tid for tid, m in self._tracks.items() if ts - m.ts > self.forget_s]
        for tid in stale:
            del self._tracks[tid]


__all__ = ["LineCounter"]
