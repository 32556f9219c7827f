"""VideoFileSource keeps the configured processing rate over a whole file.

The next slot used to follow the kept frame (+ 1/fps, with half a file frame of tolerance),
so frames were kept early: a 25 fps file at fps 10 gave 11.5 frames/s.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.source import VideoFileSource, _SlotGrid


def write_video(path: Path, file_fps: float, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), file_fps, (64, 48))
    for n in range(frames):
        writer.write(np.full((48, 64, 3), n % 255, np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize(
    ("file_fps", "fps"),
    [(25.0, 10.0), (25.0, 8.0), (25.0, 12.0), (30.0, 7.0), (29.97, 10.0), (15.0, 4.0)],
)
def test_kept_frames_match_the_configured_rate(tmp_path: Path, file_fps: float, fps: float) -> None:
    duration_s = 8.0
    n = round(file_fps * duration_s)
    source = VideoFileSource(write_video(tmp_path / "v.avi", file_fps, n), fps=fps)
    frames = list(source)
    # within one frame of the configured rate over the whole file
    assert abs(len(frames) - fps * n / source.file_fps) <= 1.0
    assert source.counters.frames + source.counters.dropped == n
    # and never bunched: no two kept frames closer than a slot minus one file frame
    gaps = np.diff([f.ts for f in frames])
    assert gaps.min() >= 1 / fps - 1 / source.file_fps - 1e-9
    assert gaps.max() <= 1 / fps + 1 / source.file_fps + 1e-9


def test_the_file_rate_or_no_fps_keeps_every_frame(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.avi", 25.0, 50)
    assert len(list(VideoFileSource(path))) == 50
    assert len(list(VideoFileSource(path, fps=25.0))) == 50
    assert len(list(VideoFileSource(path, fps=60.0))) == 50


def test_a_gap_in_the_file_is_not_made_up_by_a_burst() -> None:
    # 25 fps frame times at fps 10 with 1.2 s missing (a corrupt stretch): after the gap the
    # grid moves on, it does not keep every frame until it has caught up with its slots
    grid = _SlotGrid(10.0)
    times = [k / 25 for k in range(25)] + [k / 25 for k in range(55, 100)]
    kept = [t for t in times if grid.keep(t)]
    after = np.diff([t for t in kept if t >= 2.2])
    assert after.min() >= 0.08 - 1e-9
    assert len([t for t in kept if t >= 2.2]) == pytest.approx(18, abs=1)
