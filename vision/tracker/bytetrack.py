"""ByteTrack-class multi-object tracker: Kalman motion, two-stage IoU association.

Per update: predict every live track to the frame time, associate high-score detections with
tracked and lost tracks, then low-score detections with the tracks still unmatched (this keeps
an identity through frames where a person is partly hidden and scores low), then let
tentative tracks claim what is left. Unmatched high-score detections above new_track_score
start tentative tracks, confirmed after confirm_frames hits. A track unseen for more than lost_s
seconds is dropped with all its memory before the next matching, whether it was marked lost
frame by frame or the frames stopped (a stalled stream: matched across such a gap, whoever
stands where the track was last seen would take over its id). Seen means matched, or held
through a gap the caller saw to be still (below).

Time is passed in (ts, seconds), so skipped frames are handled by predicting over the real
interval. A gap the caller saw to be still (a motion gate skipped the frames: nobody moved) is
different: predicting over it on the velocities people had when they stopped carries their
boxes away from where they stand (135 px in 2 s at walking pace), the forced detection then
matches nothing, and the stopped people get new ids. So update() takes `still_until_ts`: up to
then the tracks are held in place with their velocities zeroed (KalmanBoxFilter.hold), and
only the rest of the gap is predicted. No global state: ids count from 1 per tracker.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from vision.config import TrackerConfig
from vision.detections import Detections
from vision.tracker.kalman import F64, KalmanBoxFilter, xyah_to_xyxy, xyxy_to_xyah
from vision.tracker.matching import assign, iou_matrix

# second-stage (low score) and tentative matches need more overlap: those boxes are less sure
_LOW_STAGE_IOU = 0.5
_TENTATIVE_IOU = 0.3


class TrackState(Enum):
    TENTATIVE = 0
    TRACKED = 1
    LOST = 2


@dataclass(slots=True)
class _Track:
    track_id: int
    mean: F64
    cov: F64
    predicted_ts: float
    matched_ts: float
    score: float
    hits: int
    state: TrackState
    # last time the person was known to be there: matched, or held through a still gap
    seen_ts: float


class ByteTracker:
    """Tracks people across frames; see the module docstring for the algorithm."""

    def __init__(self, cfg: TrackerConfig, fps: float) -> None:
        if cfg.low_score >= cfg.high_score:
            raise ValueError(
                f"tracker low_score ({cfg.low_score}) must be below high_score ({cfg.high_score})"
            )
        self.cfg = cfg
        self.kf = KalmanBoxFilter(fps)
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._last_ts: float | None = None

    @property
    def live_track_count(self) -> int:
        """Tracks held in memory (tentative, tracked and lost)."""
        return len(self._tracks)

    def _predict(self, ts: float, still_until_ts: float | None = None) -> None:
        if not self._tracks:
            return
        means = np.stack([t.mean for t in self._tracks])
        covs = np.stack([t.cov for t in self._tracks])
        start = np.array([t.predicted_ts for t in self._tracks])
        if still_until_ts is not None:
            still_end = np.clip(still_until_ts, start, ts)
            means, covs = self.kf.hold(means, covs, still_end - start)
            start = still_end
        means, covs = self.kf.predict(means, covs, ts - start)
        for i, t in enumerate(self._tracks):
            t.mean, t.cov, t.predicted_ts = means[i], covs[i], ts

    def _drop_unseen(self, ts: float, still_until_ts: float | None) -> None:
        if still_until_ts is not None:
            held_ts = min(still_until_ts, ts)
            for t in self._tracks:
                if t.state is not TrackState.LOST:
                    t.seen_ts = max(t.seen_ts, held_ts)
        self._tracks = [t for t in self._tracks if ts - t.seen_ts <= self.cfg.lost_s]

    def _check_time(self, ts: float) -> None:
        if self._last_ts is not None and ts < self._last_ts:
            raise ValueError(f"timestamps must not go backwards ({ts} < {self._last_ts})")
        self._last_ts = ts

    def _apply(self, pairs: list[tuple[_Track, int]], xyxy: F64, scores: F64, ts: float) -> None:
        if not pairs:
            return
        tracks = [p[0] for p in pairs]
        idx = np.array([p[1] for p in pairs])
        means, covs = self.kf.update(
            np.stack([t.mean for t in tracks]),
            np.stack([t.cov for t in tracks]),
            xyxy_to_xyah(xyxy[idx]),
        )
        for i, t in enumerate(tracks):
            t.mean, t.cov = means[i], covs[i]
            t.matched_ts = ts
            t.seen_ts = ts
            t.score = float(scores[idx[i]])
            t.hits += 1
            if t.state is TrackState.LOST or (
                t.state is TrackState.TENTATIVE and t.hits >= self.cfg.confirm_frames
            ):
                t.state = TrackState.TRACKED

    def _match(
        self, tracks: list[_Track], det_xyxy: F64, det_idx: np.ndarray, min_iou: float
    ) -> tuple[list[tuple[_Track, int]], list[_Track], np.ndarray]:
        if not tracks or det_idx.size == 0:
            return [], tracks, det_idx
        track_boxes = xyah_to_xyxy(np.stack([t.mean for t in tracks]))
        sim = iou_matrix(track_boxes, det_xyxy[det_idx])
        matches, un_t, un_d = assign(sim, min_iou)
        pairs = [(tracks[r], int(det_idx[c])) for r, c in matches]
        return pairs, [tracks[i] for i in un_t], det_idx[un_d]

    def update(
        self, dets: Detections, ts: float, still_until_ts: float | None = None
    ) -> Detections:
        """Associate one frame's detections; returns confirmed tracks matched at ts.

        `still_until_ts`: the caller saw nothing move from the previous update
        until this time, e.g. a motion gate skipped the frames in between and, for a forced
        detection, passed this one as still too (then it is ts). Over that part of the gap the
        tracks stay where they were and lose their velocity; the rest is predicted as usual.
        None, for a gap of unknown motion (occlusion, dropped frames), predicts over it all.
        """
        self._check_time(ts)
        self._drop_unseen(ts, still_until_ts)
        self._predict(ts, still_until_ts)
        xyxy = dets.xyxy.astype(np.float64)
        scores = dets.scores.astype(np.float64)
        valid = (
            np.isfinite(xyxy).all(axis=1)
            & (xyxy[:, 2] > xyxy[:, 0])
            & (xyxy[:, 3] > xyxy[:, 1])
            & (scores >= self.cfg.low_score)
        )
        high = np.flatnonzero(valid & (scores >= self.cfg.high_score))
        low = np.flatnonzero(valid & (scores < self.cfg.high_score))

        active = [t for t in self._tracks if t.state is not TrackState.TENTATIVE]
        tentative = [t for t in self._tracks if t.state is TrackState.TENTATIVE]

        # stage 1: confident detections against tracked and lost tracks
        pairs1, rest, high_left = self._match(active, xyxy, high, self.cfg.match_iou)
        self._apply(pairs1, xyxy, scores, ts)
        # stage 2: low-score detections keep tracked (not lost) tracks alive
        still_tracked = [t for t in rest if t.state is TrackState.TRACKED]
        pairs2, unmatched_tracked, _ = self._match(still_tracked, xyxy, low, _LOW_STAGE_IOU)
        self._apply(pairs2, xyxy, scores, ts)
        # stage 3: tentative tracks take what is left of the confident detections
        pairs3, dead_tentative, high_left = self._match(tentative, xyxy, high_left, _TENTATIVE_IOU)
        self._apply(pairs3, xyxy, scores, ts)

        for t in unmatched_tracked:
            t.state = TrackState.LOST
        dead_ids = {id(t) for t in dead_tentative}
        self._tracks = [t for t in self._tracks if id(t) not in dead_ids]

        new_idx = high_left[scores[high_left] >= self.cfg.new_track_score]
        if new_idx.size:
            means, covs = self.kf.initiate(xyxy_to_xyah(xyxy[new_idx]))
            for i, d in enumerate(new_idx):
                state = TrackState.TRACKED if self.cfg.confirm_frames <= 1 else TrackState.TENTATIVE
                self._tracks.append(
                    _Track(
                        track_id=self._next_id,
                        mean=means[i],
                        cov=covs[i],
                        predicted_ts=ts,
                        matched_ts=ts,
                        score=float(scores[d]),
                        hits=1,
                        state=state,
                        seen_ts=ts,
                    )
                )
                self._next_id += 1

        out = [t for t in self._tracks if t.state is TrackState.TRACKED and t.matched_ts == ts]
        return self._as_detections(out)

    @staticmethod
    def _as_detections(tracks: list[_Track]) -> Detections:
        if not tracks:
            return Detections.empty()
        return Detections.from_arrays(
            xyah_to_xyxy(np.stack([t.mean for t in tracks])),
            [t.score for t in tracks],
            [t.track_id for t in tracks],
        )


__all__ = ["ByteTracker", "TrackState"]
