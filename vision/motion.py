"""MotionGate: skip the detector while nothing moves.

The frame is shrunk to a small grey image (about 0.05 ms), blurred, and compared with the one
the detector last ran on (not the previous frame: a slow walker's small per-frame changes add
up until they pass the threshold); while the fraction of changed pixels stays below the
threshold the detector is skipped and the tracker coasts. A detection is still forced every `max_skip_s` so a person who
stands still keeps being seen and slow drifts are not missed for long.
"""

from __future__ import annotations

from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

from vision.config import MotionConfig

# Smallest width of the grey image compared between frames: enough for a person at a few
# metres, small enough to cost almost nothing.
GATE_WIDTH_PX = 160
# Grey-level change (0..255) above which a pixel counts as changed: above JPEG and sensor noise.
PIXEL_DELTA = 20


class MotionGate:
    def __init__(self, cfg: MotionConfig | None = None) -> None:
        self.cfg = cfg or MotionConfig()
        self._reference: npt.NDArray[np.uint8] | None = None
        self._last_detect_ts: float | None = None
        self.last_motion_fraction = 0.0
        self.skipped = 0
        self.passed = 0

    def _small_grey(self, frame_bgr: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
        height, width = frame_bgr.shape[:2]
        # Shrink by a whole factor: OpenCV's area resize has a fast path for integer ratios
        # (measured 0.03 ms against 0.4 ms for 384x288 -> 160x120), and cropping the few
        # leftover pixels at the right and bottom edge makes every frame size qualify.
        k = max(1, width // GATE_WIDTH_PX)
        small_w, small_h = width // k, max(1, height // k)
        cropped = frame_bgr[: small_h * k, : small_w * k]
        small = cv2.resize(cropped, (small_w, small_h), interpolation=cv2.INTER_AREA)
        # Shrink first, then convert: colour conversion then runs on 1/k^2 of the pixels.
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        return cast(npt.NDArray[np.uint8], cv2.GaussianBlur(grey, (5, 5), 0))

    def _fraction(self, grey: npt.NDArray[np.uint8]) -> float:
        reference = self._reference
        if reference is None or reference.shape != grey.shape:
            return 1.0
        diff = cv2.absdiff(grey, reference)
        return int(np.count_nonzero(diff > PIXEL_DELTA)) / diff.size

    def should_detect(self, frame_bgr: npt.NDArray[Any], ts: float) -> bool:
        """True when the detector should run on this frame."""
        if not self.cfg.enabled:
            self.passed += 1
            return True
        grey = self._small_grey(frame_bgr)
        self.last_motion_fraction = self._fraction(grey)
        due = self._last_detect_ts is None or ts - self._last_detect_ts >= self.cfg.max_skip_s
        if due or self.last_motion_fraction > self.cfg.threshold:
            self._last_detect_ts = ts
            self._reference = grey
            self.passed += 1
            return True
        self.skipped += 1
        return False


__all__ = ["GATE_WIDTH_PX", "MotionGate"]
