"""OnnxDetector refuses frames it cannot read instead of finding nobody in them.

A grey or 4-channel frame used to give 0 boxes without an error (the resize went beside the
letterbox canvas), and an empty frame raised ZeroDivisionError.
"""

from __future__ import annotations

import numpy as np
import pytest

from vision.config import DetectorConfig
from vision.detector import OnnxDetector
from vision.models import resolve_model


@pytest.fixture(scope="module")
def detector() -> OnnxDetector:
    return OnnxDetector(resolve_model("yolox_nano"), DetectorConfig(threads=1))


@pytest.mark.parametrize(
    "shape",
    [(480, 640), (480, 640, 1), (480, 640, 4), (0, 640, 3), (480, 0, 3), (0, 0, 3)],
)
def test_a_frame_that_is_not_bgr_or_is_empty_is_refused(
    detector: OnnxDetector, shape: tuple[int, ...]
) -> None:
    frame = np.full(shape, 128, np.uint8)
    with pytest.raises(ValueError, match=r"3-channel BGR frame .*shape \(" + str(shape[0])):
        detector.detect(frame)
    # the other ways in (a pipeline's prepare, a preprocessor per frame in flight) as well
    with pytest.raises(ValueError, match="3-channel BGR"):
        detector.preprocess(frame)
    with pytest.raises(ValueError, match="3-channel BGR"):
        detector.make_preprocessor()(frame)


def test_a_bgr_frame_still_works_after_a_refused_one(detector: OnnxDetector) -> None:
    with pytest.raises(ValueError):
        detector.detect(np.full((480, 640), 128, np.uint8))
    tensor, meta = detector.preprocess(np.full((480, 640, 3), 128, np.uint8))
    assert (meta.frame_width, meta.frame_height) == (640, 480)
    assert tensor.shape == (1, 3, 416, 416)
