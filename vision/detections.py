"""Detections: one frame's boxes as parallel numpy arrays (person class only downstream)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def _empty_f32(*shape: int) -> F32:
    return np.zeros(shape, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class Detections:
    """Boxes in pixel coordinates of the original frame.

    xyxy: (N, 4) float32 corners x1, y1, x2, y2.
    scores: (N,) float32 confidences in 0..1.
    track_ids: (N,) int64, -1 where the box is not (yet) tracked.
    """

    xyxy: F32 = field(default_factory=lambda: _empty_f32(0, 4))
    scores: F32 = field(default_factory=lambda: _empty_f32(0))
    track_ids: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        n = self.xyxy.shape[0]
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must be (N, 4), got {self.xyxy.shape}")
        if self.scores.shape != (n,):
            raise ValueError(f"scores must be ({n},), got {self.scores.shape}")
        if self.track_ids.shape != (n,):
            raise ValueError(f"track_ids must be ({n},), got {self.track_ids.shape}")

    @classmethod
    def from_arrays(
        cls,
        xyxy: npt.ArrayLike,
        scores: npt.ArrayLike,
        track_ids: npt.ArrayLike | None = None,
    ) -> Detections:
        boxes = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        conf = np.asarray(scores, dtype=np.float32).reshape(-1)
        ids = (
            np.full(boxes.shape[0], -1, dtype=np.int64)
            if track_ids is None
            else np.asarray(track_ids, dtype=np.int64).reshape(-1)
        )
        return cls(boxes, conf, ids)

    @classmethod
    def empty(cls) -> Detections:
        return cls()

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(
        self, index: npt.NDArray[np.bool_] | npt.NDArray[np.intp] | slice
    ) -> Detections:
        return Detections(self.xyxy[index], self.scores[index], self.track_ids[index])

    def anchors(self, anchor: str = "bottom_center") -> F32:
        """(N, 2) points tested against lines and zones."""
        x = (self.xyxy[:, 0] + self.xyxy[:, 2]) * 0.5
        if anchor == "bottom_center":
            y = self.xyxy[:, 3]
        elif anchor == "center":
            y = (self.xyxy[:, 1] + self.xyxy[:, 3]) * 0.5
        else:
            raise ValueError(f"unknown anchor {anchor!r}")
        return np.stack([x, y], axis=1).astype(np.float32, copy=False)


__all__ = ["Detections"]
