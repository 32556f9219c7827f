"""MOT readers and ground-truth crossings / dwell derived from hand-made gt tracks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vision.config import LineConfig, ZoneConfig
from vision.mot import (
    MotFormatError,
    gt_crossings,
    gt_zone_visits,
    read_detections,
    read_gt,
    seqinfo_size,
)

LINE = LineConfig(id="L", points=[[100, 0], [100, 200]])  # `in` = right to left


def gt_rows(
    gid: int,
    xs: list[float],
    y: float = 100.0,
    first: int = 1,
    flag: int = 1,
    frames: list[int] | None = None,
) -> list[str]:
    frames = frames or list(range(first, first + len(xs)))
    return [
        f"{f},{gid},{x - 10},{y - 60},20,60,{flag},-1,-1,0" for f, x in zip(frames, xs, strict=True)
    ]


def write(tmp_path: Path, rows: list[str], name: str = "gt.txt") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(rows) + "\n")
    return path


def test_read_detections_per_frame(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            "3,-1,10,20,30,40,0.9,-1,-1,-1",
            "1,-1,0,0,10,10,0.5,-1,-1,-1",
            "3,-1,1,2,3,4,0.1,-1,-1,-1",
        ],
        "det.txt",
    )
    frames = read_detections(path, num_frames=4)
    assert [len(f) for f in frames] == [1, 0, 2, 0]
    assert frames[2].xyxy[0].tolist() == [10, 20, 40, 60]
    assert frames[2].scores.tolist() == pytest.approx([0.9, 0.1])
    assert (frames[2].track_ids == -1).all()


@pytest.mark.parametrize("content", ["1,-1,2,3\n", "1,-1,a,b,c,d,0.9\n", "0,-1,1,1,1,1,0.9\n"])
def test_bad_mot_files_give_clear_errors(tmp_path: Path, content: str) -> None:
    path = tmp_path / "det.txt"
    path.write_text(content)
    with pytest.raises(MotFormatError, match=r"det\.txt"):
        read_detections(path)
    with pytest.raises(MotFormatError, match="cannot read"):
        read_detections(tmp_path / "missing.txt")


def test_read_gt_drops_flag_zero_and_clips(tmp_path: Path) -> None:
    rows = gt_rows(1, [50, 60]) + gt_rows(2, [70], flag=0) + ["1,3,180,100,40,80,1,-1,-1,0"]
    gt = read_gt(write(tmp_path, rows), image_size=(200, 150))
    assert sorted(set(gt.ids.tolist())) == [1, 3]
    clipped = gt.xyxy[gt.ids == 3][0]
    assert clipped.tolist() == [180, 100, 199, 149]
    assert gt.anchors()[gt.ids == 3][0].tolist() == [189.5, 149]


def test_gt_crossings_follow_the_counting_convention(tmp_path: Path) -> None:
    rows = (
        gt_rows(1, [150, 130, 110, 90, 70, 50])  # in, settles on the far side at frame 4
        + gt_rows(2, [150, 130, 110, 90, 70, 50], y=260)  # below the segment: none
        + gt_rows(3, [130, 98, 102, 99, 101, 130])  # jitter inside the hysteresis band
        + gt_rows(4, [50, 70, 90, 110, 130, 110, 90, 70])  # out at 4, back in at 7
        + gt_rows(5, [150, 130, 110, 90, 70], flag=0)  # not scored
        + gt_rows(7, [150, 130, 70, 60], frames=[1, 2, 6, 7])  # crossed while unannotated
    )
    gt = read_gt(write(tmp_path, rows))
    got = [(c.gt_id, c.direction, c.frame) for c in gt_crossings(gt, [LINE], "bottom_center", 7)]
    assert sorted(got) == [(1, "in", 4), (4, "in", 7), (4, "out", 4), (7, "in", 6)]


def test_gt_zone_visits_with_grace(tmp_path: Path) -> None:
    zone = ZoneConfig(
        id="Z",
        polygon=[[0, 0], [200, 0], [200, 200], [0, 200]],
        min_visit_s=1.0,
        occlusion_grace_s=1.0,
    )
    inside = list(range(1, 21))  # 20 frames inside, 10 fps
    gap_small = list(range(26, 41))  # back after 5 missing frames (0.5 s): same visit
    later = list(range(80, 86))  # 0.5 s visit after a long gap: too short
    rows = gt_rows(1, [50.0] * 35, frames=inside + gap_small)
    rows += gt_rows(1, [50.0] * len(later), frames=later)
    rows += gt_rows(2, [500.0] * 10)  # never inside
    gt = read_gt(write(tmp_path, rows))
    visits = gt_zone_visits(gt, [zone], "bottom_center", fps=10)
    assert [(v.gt_id, v.entered_frame, v.exited_frame) for v in visits] == [(1, 1, 40)]
    assert visits[0].dwell_s == pytest.approx(3.9)


def test_real_pets_gt_has_crossings_on_the_walking_paths(pets_detections: Path) -> None:
    gt = read_gt(pets_detections / "gt.txt", image_size=(768, 576))
    assert len(np.unique(gt.ids)) == 19
    assert (gt.xyxy[:, 2] <= 767).all() and (gt.xyxy[:, 3] <= 575).all()
    line = LineConfig(id="B", points=[[330, 180], [330, 360]])
    crossings = gt_crossings(gt, [line], "bottom_center", 7)
    # most of the 19 people cross the road's middle, several both ways
    assert len(crossings) >= 19
    assert {c.direction for c in crossings} == {"in", "out"}


def test_seqinfo_size(pets_detections: Path, tmp_path: Path) -> None:
    assert seqinfo_size(pets_detections) == (768, 576)
    assert seqinfo_size(tmp_path) is None
    (tmp_path / "seqinfo.ini").write_text("[Sequence]\nimWidth=abc\n")
    assert seqinfo_size(tmp_path) is None
