"""MotionGate on real frames: a repeated PETS09 frame is static, walking people are motion."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.config import MotionConfig
from vision.motion import MotionGate
from vision.source import ImageDirSource


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


def scene_dir(pets_footage: Path, tmp_path: Path, numbers: list[int]) -> Path:
    """A directory whose frame i is PETS09 frame numbers[i - 1] (symlinks: real JPEG data)."""
    out = tmp_path / "frames"
    out.mkdir()
    for i, n in enumerate(numbers, start=1):
        (out / f"{i:06d}.jpg").symlink_to(pets_footage / "img1" / f"{n:06d}.jpg")
    return out


def test_a_static_jpeg_scene_is_gated_without_colour_decodes(
    pets_footage: Path, tmp_path: Path
) -> None:
    # 3 s of one picture, then the people have moved on (frame 108)
    frames_dir = scene_dir(pets_footage, tmp_path, [100] * 21 + [108, 108])
    source = ImageDirSource(frames_dir, 7.0, input_size=(416, 416))
    gate = MotionGate(MotionConfig(max_skip_s=2.0, max_skip_static_s=2.0))
    frames = list(source)
    decisions = []
    reasons = []
    for frame in frames:
        decisions.append(gate.check(frame))
        reasons.append(gate.last_reason)
    ran = [i for i, d in enumerate(decisions) if d]
    # the first frame, the forced run at 2 s, and the very first frame that moved
    assert ran == [0, 14, 21]
    assert [reasons[i] for i in ran] == ["first", "forced", "motion"]
    # The frame after a detection is looked at in colour (the detector probably runs again);
    # every other frame only had a reduced greyscale decode (the detector's preprocessing
    # would decode the ones that ran), and the two paths agree: no false motion where they
    # meet.
    assert [f.index for f in frames if f.decoded] == [1, 2, 16, 23]
    assert gate.grey_decodes == 23 - 4
    assert gate.skipped == 20


def test_forced_interval_doubles_while_forced_detections_confirm_the_scene(
    pets_footage: Path,
) -> None:
    gate = MotionGate(MotionConfig(max_skip_s=2.0, max_skip_static_s=8.0))
    frame = load(pets_footage, 100)
    ran = []
    for i in range(7 * 40):
        ts = i / 7
        if gate.should_detect(frame, ts):
            ran.append(round(ts, 3))
            if gate.last_reason == "forced":
                gate.confirm_forced(ts, unchanged=True)
    # t=0, then forced after 2, 4, 8, 8, 8 ... s
    assert ran[:5] == [0.0, 2.0, 6.0, 14.0, 22.0]
    assert gate.forced_interval_s == 8.0
    # a forced detection that finds a change brings the interval back
    gate.confirm_forced(ran[-1], unchanged=False)
    assert gate.forced_interval_s == 2.0
    # a confirmation that arrives after a later detection is ignored
    gate.confirm_forced(ran[-2], unchanged=True)
    assert gate.forced_interval_s == 2.0


def test_motion_resets_the_forced_interval(pets_footage: Path) -> None:
    gate = MotionGate(MotionConfig(max_skip_s=2.0, max_skip_static_s=8.0))
    still, moved = load(pets_footage, 100), load(pets_footage, 108)
    assert gate.should_detect(still, 0.0)
    assert gate.should_detect(still, 2.0) and gate.last_reason == "forced"
    gate.confirm_forced(2.0, unchanged=True)
    assert gate.forced_interval_s == 4.0
    assert gate.should_detect(moved, 2.5) and gate.last_reason == "motion"
    assert gate.forced_interval_s == 2.0


def test_large_live_frames_shrink_to_the_same_gate_size(pets_footage: Path) -> None:
    # a 1080p frame (live cameras) takes the bilinear + 2x area path; still noise-free static
    frame = cv2.resize(load(pets_footage, 100), (1920, 1080))
    noisy = np.clip(
        frame.astype(np.int16) + np.random.default_rng(1).normal(0, 4, frame.shape), 0, 255
    ).astype(np.uint8)
    gate = MotionGate(MotionConfig(max_skip_s=60.0))
    assert gate.should_detect(frame, 0.0)
    assert not gate.should_detect(noisy, 0.1)
    assert gate.last_motion_fraction < 0.002
    assert gate._reference is not None and gate._reference.shape == (90, 160)
