"""Stand-ins for what cannot exist on a laptop or in CI: a camera and a detector.

FakeFrameSource replays given images as a live-looking source; FakeDetector returns canned
boxes per frame index. Both follow the real interfaces (FrameSource, Detector).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from vision.detections import Detections
from vision.source import Frame, SourceCounters, SourceState

U8 = npt.NDArray[Any]
F32 = npt.NDArray[np.float32]


class FakeFrameSource:
    """Replays images at a fixed fps; a None entry stands for a frame that failed to decode."""

    def __init__(
        self, images: Sequence[U8 | None], fps: float = 10.0, start_ts: float = 0.0
    ) -> None:
        self._images = list(images)
        self._pos = 0
        self.fps = fps
        self.start_ts = start_ts
        self.state: SourceState = "connected"
        self.counters = SourceCounters()

    def read(self) -> Frame | None:
        while self._pos < len(self._images):
            image = self._images[self._pos]
            self._pos += 1
            if image is None:
                self.counters.corrupt += 1
                continue
            self.counters.frames += 1
            return Frame(
                cast(npt.NDArray[np.uint8], image),
                self.start_ts + (self._pos - 1) / self.fps,
                self._pos,
            )
        self.state = "ended"
        return None

    def close(self) -> None:
        self._pos = len(self._images)
        self.state = "ended"


class FakeDetector:
    """Returns the boxes given for each frame index, in call order of `detect`/`postprocess`.

    `boxes` maps a frame index (1-based, in the order frames are preprocessed) to (N, 5) rows of
    x1, y1, x2, y2, score. Frames without an entry have no detections.
    """

    def __init__(self, boxes: Mapping[int, npt.ArrayLike]) -> None:
        self._boxes = {k: np.asarray(v, dtype=np.float32).reshape(-1, 5) for k, v in boxes.items()}
        self.calls = 0

    def preprocess(self, frame: U8, source_scale: float = 1.0) -> tuple[F32, int]:
        self.calls += 1
        return np.zeros((1, 3, 1, 1), dtype=np.float32), self.calls

    def make_preprocessor(self) -> Callable[[Any, float], tuple[F32, int]]:
        return self.preprocess

    def infer(self, tensor: F32) -> list[F32]:
        return [tensor]

    def postprocess(self, outputs: list[F32], meta: int) -> Detections:
        rows = self._boxes.get(meta)
        if rows is None:
            return Detections.empty()
        return Detections.from_arrays(rows[:, :4], rows[:, 4])

    def detect(self, frame: U8, source_scale: float = 1.0) -> Detections:
        tensor, meta = self.preprocess(frame, source_scale)
        return self.postprocess(self.infer(tensor), meta)


__all__ = ["FakeDetector", "FakeFrameSource"]
