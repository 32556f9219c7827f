"""MotionGate: skip the detector while nothing moves.

The frame is shrunk to a small grey image, blurred, and compared with the one the detector last
ran on (not the previous frame: a slow walker's small per-frame changes add up until they pass
the threshold); while the fraction of changed pixels stays below the threshold the detector is
skipped and the pipeline holds the tracks of the last detection.

A detection is still forced every `max_skip_s` so a person who stands still keeps being seen,
someone the detector missed while walking in is found, and slow changes are not missed for
long. When a forced
detection only confirms what the tracker already had (the caller says so through
`confirm_forced`), the next one is forced after twice the interval, up to
`max_skip_static_s`; any motion, or a forced detection that changed something, brings the
interval back to `max_skip_s`.

The small grey image is cheap on every path: a JPEG frame whose colour decode is deferred is
decoded straight to a reduced greyscale picture (`Frame.reduced_grey`) while the scene is
static; a decoded frame (live cameras, busy scenes) is shrunk by a whole factor before any
colour conversion. Both paths give the same size for the same source, so a reference taken on
one compares with a frame from the other (they differ by about 1 grey level, far below
PIXEL_DELTA).
"""

from __future__ import annotations

from typing import Any, Literal, cast

import cv2
import numpy as np
import numpy.typing as npt

from vision.config import MotionConfig
from vision.source import Frame

# Smallest width of the grey image compared between frames: enough for a person at a few
# metres, small enough to cost almost nothing.
GATE_WIDTH_PX = 160
# Grey-level change (0..255) above which a pixel counts as changed: above JPEG and sensor noise.
PIXEL_DELTA = 20

GateReason = Literal["first", "motion", "forced", "off"]


def _shrink(image: npt.NDArray[Any], factor: int, size: tuple[int, int]) -> npt.NDArray[Any]:
    """`image` reduced by the whole `factor` to `size` (w, h), cropping the leftover edge."""
    width, height = size
    cropped = image[: height * factor, : width * factor]
    if factor == 1:
        return cropped
    if factor == 2:
        # OpenCV's area resize has a SIMD path for exactly 2x (0.03 ms for 384x288)
        return cv2.resize(cropped, size, interpolation=cv2.INTER_AREA)
    # Larger whole factors take the generic area path (0.5 ms for 768x576 / 4, 1.5 ms for a
    # 1080p frame / 12). Bilinear to twice the size then 2x area averages 4 x 4 source pixels
    # per output pixel, plenty against sensor noise before the blur, for 0.14 ms at any size.
    half = cv2.resize(cropped, (width * 2, height * 2), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(half, size, interpolation=cv2.INTER_AREA)


class MotionGate:
    def __init__(self, cfg: MotionConfig | None = None) -> None:
        self.cfg = cfg or MotionConfig()
        self._reference: npt.NDArray[np.uint8] | None = None
        self._last_detect_ts: float | None = None
        self._interval_s = self.cfg.max_skip_s
        self._skipping = False
        self._geometry_key: tuple[int, int, float] | None = None
        self._geometry = (1, 1, 1)
        self.last_motion_fraction = 0.0
        self.last_reason: GateReason | None = None
        self.skipped = 0
        self.passed = 0
        self.grey_decodes = 0

    @property
    def forced_interval_s(self) -> float:
        """The current time between forced detections on a static scene."""
        return self._interval_s

    def _gate_factor(self, frame: Frame) -> tuple[int, int, int]:
        """(original pixels per gate pixel, gate width, gate height) for this frame size.

        The factor is a multiple of the frame's decode scale so the decoded image shrinks by a
        whole factor too."""
        key = (frame.width, frame.height, frame.scale)
        if key != self._geometry_key:
            scale = max(1, round(frame.scale))
            factor = max(scale, frame.width // GATE_WIDTH_PX // scale * scale)
            self._geometry = (factor, max(1, frame.width // factor), max(1, frame.height // factor))
            self._geometry_key = key
        return self._geometry

    def _small_grey(self, frame: Frame) -> npt.NDArray[np.uint8]:
        factor, width, height = self._gate_factor(frame)
        # A frame the gate will probably skip (the last one was skipped) is not decoded in
        # colour; when the detector probably runs, the colour decode is needed anyway.
        reduced = frame.reduced_grey(factor) if self._skipping else None
        if reduced is not None:
            self.grey_decodes += 1
            grey_image, f = reduced
            small = _shrink(grey_image, factor // f, (width, height))
        else:
            image = frame.image
            step = max(1, factor // max(1, round(frame.scale)))
            # Shrink first, then convert: colour conversion then runs on 1/step^2 of the pixels.
            small = cv2.cvtColor(_shrink(image, step, (width, height)), cv2.COLOR_BGR2GRAY)
        return cast(npt.NDArray[np.uint8], cv2.GaussianBlur(small, (5, 5), 0))

    def _fraction(self, grey: npt.NDArray[np.uint8]) -> float:
        reference = self._reference
        if reference is None or reference.shape != grey.shape:
            return 1.0
        diff = cv2.absdiff(grey, reference)
        return int(np.count_nonzero(diff > PIXEL_DELTA)) / diff.size

    def should_detect(self, frame_bgr: npt.NDArray[Any], ts: float) -> bool:
        """True when the detector should run on this decoded BGR frame."""
        return self.check(Frame(frame_bgr, ts, 0))

    def check(self, frame: Frame) -> bool:
        """True when the detector should run on this frame; `last_reason` says why (None
        when it is skipped)."""
        if not self.cfg.enabled:
            self.passed += 1
            self.last_reason = "off"
            return True
        grey = self._small_grey(frame)
        self.last_motion_fraction = self._fraction(grey)
        ts = frame.ts
        motion = self.last_motion_fraction > self.cfg.threshold
        first = self._last_detect_ts is None
        due = self._last_detect_ts is None or ts - self._last_detect_ts >= self._interval_s
        if first or motion or due:
            self.last_reason = "first" if first else ("motion" if motion else "forced")
            if motion:
                self._interval_s = self.cfg.max_skip_s
            self._last_detect_ts = ts
            self._reference = grey
            self._skipping = False
            self.passed += 1
            return True
        self._skipping = True
        self.last_reason = None
        self.skipped += 1
        return False

    def confirm_forced(self, ts: float, unchanged: bool) -> None:
        """After the forced detection at `ts` was tracked: `unchanged` when it found the same
        confirmed people where the tracker had them (nothing new, nothing missing, no drift).

        Lengthens the interval to the next forced detection (doubling, up to
        max_skip_static_s) or resets it to max_skip_s. Ignored when a later detection has
        happened since (the caller may confirm a few frames late when frames are prepared
        ahead on another thread)."""
        if ts != self._last_detect_ts:
            return
        if unchanged:
            cap = max(self.cfg.max_skip_s, self.cfg.max_skip_static_s)
            self._interval_s = min(cap, max(self._interval_s * 2.0, self.cfg.max_skip_s))
        else:
            self._interval_s = self.cfg.max_skip_s


__all__ = ["GATE_WIDTH_PX", "PIXEL_DELTA", "GateReason", "MotionGate"]
