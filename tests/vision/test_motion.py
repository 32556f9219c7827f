"""MotionGate on real frames: a repeated PETS09 frame is static, walking people are motion."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.config import MotionConfig
from vision.motion import MotionGate


def load(pets_footage: Path, n: int) -> np.ndarray:
    image = cv2.imread(str(pets_footage / "img1" / f"{n:06d}.jpg"))
    assert image is not None
    return image


def test_static_scene_skips_until_max_skip(pets_footage: Path) -> None:
    gate = MotionGate(MotionConfig(max_skip_s=2.0))
    frame = load(pets_footage, 100)
    # 7 fps for 5 s of the very same frame (JPEG decoded once: no noise at all)
    decisions = [gate.should_detect(frame, i / 7) for i in range(35)]
    ran = [i for i, d in enumerate(decisions) if d]
    assert ran == [0, 14, 28]  # the first frame, then forced every 2 s
    assert gate.skipped == 32


def test_re_encoded_static_frame_is_still_static(pets_footage: Path) -> None:
    # The same scene through a second JPEG round trip: compression noise is not motion.
    frame = load(pets_footage, 100)
    ok, jpg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok
    noisy = cv2.imdecode(jpg, cv2.IMREAD_COLOR)
    gate = MotionGate(MotionConfig())
    assert gate.should_detect(frame, 0.0)
    assert not gate.should_detect(noisy, 0.2)
    assert gate.last_motion_fraction < 0.002


def test_walking_people_are_motion(pets_footage: Path) -> None:
    gate = MotionGate(MotionConfig(max_skip_s=60.0))
    frames = [load(pets_footage, n) for n in range(100, 108)]
    decisions = [gate.should_detect(f, i / 7) for i, f in enumerate(frames)]
    # About 7 people walk: most consecutive frames differ enough to run the detector.
    assert decisions[0]
    assert sum(decisions[1:]) >= 5


def test_slow_change_accumulates_against_the_last_detected_frame() -> None:
    gate = MotionGate(MotionConfig(threshold=0.01, max_skip_s=60.0))

    def scene(x: int) -> np.ndarray:
        frame = np.full((240, 320, 3), 90, np.uint8)
        cv2.rectangle(frame, (10 + x, 60), (50 + x, 200), (230, 230, 230), -1)
        return frame

    assert gate.should_detect(scene(0), 0.0)
    ran = []
    fractions = []
    for step in range(1, 13):
        ran.append(gate.should_detect(scene(step), step * 0.1))
        fractions.append(gate.last_motion_fraction)
    # One 1 px step is below the threshold, so a frame-to-frame gate would never fire; measured
    # against the last detected frame, two steps add up and the detector runs.
    assert fractions[0] < 0.01
    assert not ran[0] and ran[1]
    assert 4 <= sum(ran) <= 8


@pytest.mark.parametrize("enabled", [False])
def test_disabled_gate_always_detects(enabled: bool, pets_footage: Path) -> None:
    gate = MotionGate(MotionConfig(enabled=enabled))
    frame = load(pets_footage, 1)
    assert all(gate.should_detect(frame, i / 7) for i in range(5))
