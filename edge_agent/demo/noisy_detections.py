"""Turn the simulated truth into what a real person detector would report: imperfect boxes.

Per frame, each visible person becomes a box (from the feet position and a height that shrinks
with distance) and then suffers what real detectors do on CPU models:
- misses, in short runs (a person is lost for a few frames, not one at random), and much more
  often when a nearer person covers most of the box (occlusion);
- jitter of every box edge, proportional to the box size;
- confidence scores: mostly high, a share of low-score boxes (ByteTrack's second stage exists
  for exactly these);
- false positives: short-lived boxes where nobody is (reflections, mannequins, bags);
- no identities: track ids are all -1, the real tracker has to find them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.demo import floor_plan as fp
from vision.detections import Detections

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class NoiseModel:
    miss_start_p: float = 0.03  # per person and frame: a run of misses begins
    miss_run_frames: float = 2.0  # mean length of such a run
    occluded_miss_p: float = 0.45  # per frame, when >= 50% of the box is covered
    jitter_frac: float = 0.035  # sd of each box edge, as a fraction of the box height
    low_score_p: float = 0.15  # share of true boxes scored between 0.15 and 0.5
    fp_start_p: float = 0.03  # per frame: a false positive appears
    fp_run_frames: float = 3.0  # mean frames a false positive persists


def truth_boxes(feet: F32) -> F32:
    """(N, 2) feet positions -> (N, 4) xyxy boxes of standing people."""
    h = fp.PERSON_H_FAR_PX + (fp.PERSON_H_NEAR_PX - fp.PERSON_H_FAR_PX) * (
        feet[:, 1] / fp.FRAME_H_PX
    )
    w = h * fp.PERSON_ASPECT
    x, y = feet[:, 0], feet[:, 1]
    return np.stack([x - w / 2, y - h, x + w / 2, y], axis=1).astype(np.float32)


def covered_fraction(boxes: F32) -> F32:
    """Fraction of each box hidden behind a nearer box (larger bottom y = nearer the camera)."""
    n = boxes.shape[0]
    out = np.zeros(n, dtype=np.float32)
    if n < 2:
        return out
    x1 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    nearer = boxes[None, :, 3] > boxes[:, None, 3]
    frac = np.where(nearer, inter / np.maximum(area[:, None], 1e-6), 0.0)
    # The largest single occluder is a fair, cheap stand-in for the union.
    return np.asarray(frac.max(axis=1), dtype=np.float32)


class NoisyDetector:
    """Stateful (miss runs and false positives persist across frames), seeded, deterministic."""

    def __init__(self, model: NoiseModel, seed: int) -> None:
        self.model = model
        self.rng = np.random.default_rng(seed)
        self._miss_left: dict[int, int] = {}
        self._ghosts: list[tuple[F32, float, int]] = []  # box, score, frames left
        self.true_boxes = 0
        self.missed = 0
        self.false_positives = 0

    def detect(self, feet: F32, person_ids: npt.NDArray[np.int64]) -> Detections:
        m, rng = self.model, self.rng
        boxes = truth_boxes(feet)
        n = boxes.shape[0]
        covered = covered_fraction(boxes)
        ids = person_ids.tolist()
        # Vectorised per frame: one draw of each kind for everyone in view.
        run_left = np.fromiter((self._miss_left.get(pid, 0) for pid in ids), np.int64, count=n)
        starts = (run_left == 0) & (rng.uniform(0.0, 1.0, size=n) < m.miss_start_p)
        runs = rng.geometric(1.0 / m.miss_run_frames, size=n)
        run_left = np.where(starts, 1 + runs, run_left)
        in_run = run_left > 0
        hidden = ~in_run & (covered >= 0.5) & (rng.uniform(0.0, 1.0, size=n) < m.occluded_miss_p)
        keep = ~(in_run | hidden)
        for i in np.flatnonzero(in_run).tolist():
            self._miss_left[ids[i]] = int(run_left[i]) - 1
        self.true_boxes += n
        self.missed += int((~keep).sum())
        # Forget miss state of people who left the view (bounded memory).
        if len(self._miss_left) > 4 * max(n, 8):
            alive = set(person_ids.tolist())
            self._miss_left = {k: v for k, v in self._miss_left.items() if k in alive}
        boxes = boxes[keep]
        h = (boxes[:, 3] - boxes[:, 1])[:, None]
        boxes = boxes + rng.normal(0.0, m.jitter_frac, size=boxes.shape).astype(np.float32) * h
        n_kept = int(boxes.shape[0])
        scores = np.asarray(rng.uniform(0.55, 0.95, size=n_kept), dtype=np.float64)
        low = np.asarray(rng.uniform(0.0, 1.0, size=n_kept), dtype=np.float64) < m.low_score_p
        scores[low] = rng.uniform(0.15, 0.5, size=int(low.sum()))

        if rng.uniform() < m.fp_start_p:
            feet_xy = np.array(
                [[rng.uniform(20, fp.FRAME_W_PX - 20), rng.uniform(60, fp.FRAME_H_PX - 10)]],
                dtype=np.float32,
            )
            run = int(rng.geometric(1.0 / m.fp_run_frames))
            self._ghosts.append((truth_boxes(feet_xy)[0], float(rng.uniform(0.3, 0.7)), run))
        ghost_boxes: list[F32] = []
        ghost_scores: list[float] = []
        alive_ghosts: list[tuple[F32, float, int]] = []
        for box, score, left in self._ghosts:
            ghost_boxes.append(box + rng.normal(0.0, 2.0, size=4).astype(np.float32))
            ghost_scores.append(score)
            if left > 1:
                alive_ghosts.append((box, score, left - 1))
        self._ghosts = alive_ghosts
        self.false_positives += len(ghost_boxes)
        if ghost_boxes:
            boxes = np.concatenate([boxes, np.asarray(ghost_boxes, dtype=np.float32)])
            scores = np.concatenate([scores, np.asarray(ghost_scores)])
        np.clip(boxes[:, 0::2], 0, fp.FRAME_W_PX - 1, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, fp.FRAME_H_PX - 1, out=boxes[:, 1::2])
        # A detector reports boxes in no particular order.
        order = rng.permutation(boxes.shape[0])
        return Detections.from_arrays(boxes[order], scores[order])


__all__ = ["NoiseModel", "NoisyDetector", "covered_fraction", "truth_boxes"]
