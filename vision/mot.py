"""MOTChallenge files: public detections in, ground-truth crossings and dwell out.

Detections: ``frame,-1,x,y,w,h,score,...`` (frames from 1, top-left + size, float pixels).
Ground truth (2DMOT2015 layout): ``frame,id,x,y,w,h,flag,wx,wy,wz``; rows with flag 0 mean
"do not score" and are dropped. Boxes are clipped to the image before the anchor is taken,
because a box cut by the frame edge would otherwise put the foot point outside the image.

Ground-truth crossings follow the counting convention of vision.counting: for each gt id,
in frame order, the anchor's side of each line is taken where it is at least hysteresis_px
away from it; a crossing is a change of that side whose path (the gt polyline between the two
settled points) touches the finite segment. Direction: ``in`` = negative -> positive side.
"""

from __future__ import annotations

import configparser
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from vision.config import LineConfig, ZoneConfig
from vision.detections import Detections
from vision.events import Direction
from vision.geometry import Line, Polygon

F64 = npt.NDArray[np.float64]


class MotFormatError(ValueError):
    """A MOT file that cannot be read (wrong column count, not numbers)."""


def _load(path: Path, min_cols: int) -> F64:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise MotFormatError(f"{path}: cannot read: {exc}") from exc
    rows: list[list[float]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        raw = line.strip()
        if not raw:
            continue
        try:
            vals = [float(v) for v in raw.replace(" ", "").split(",")]
        except ValueError as exc:
            raise MotFormatError(f"{path}:{lineno}: not comma-separated numbers: {raw!r}") from exc
        if len(vals) < min_cols:
            raise MotFormatError(
                f"{path}:{lineno}: expected >= {min_cols} columns, got {len(vals)}"
            )
        rows.append(vals[:min_cols])
    if not rows:
        return np.zeros((0, min_cols))
    return np.asarray(rows, dtype=np.float64)


def read_detections(path: Path, num_frames: int | None = None) -> list[Detections]:
    """Per-frame Detections; index 0 is frame 1. Frames without boxes are empty."""
    arr = _load(path, 7)
    last = int(arr[:, 0].max()) if len(arr) else 0
    n = max(last, num_frames or 0)
    frames = arr[:, 0].astype(np.int64)
    if len(arr) and frames.min() < 1:
        raise MotFormatError(f"{path}: frame numbers start at 1, found {frames.min()}")
    xyxy = (
        np.stack([arr[:, 2], arr[:, 3], arr[:, 2] + arr[:, 4], arr[:, 3] + arr[:, 5]], axis=1)
        if len(arr)
        else np.zeros((0, 4))
    )
    order = np.argsort(frames, kind="stable")
    frames, xyxy, scores = frames[order], xyxy[order], arr[order, 6]
    bounds = np.searchsorted(frames, np.arange(1, n + 2))
    return [
        Detections.from_arrays(xyxy[bounds[k] : bounds[k + 1]], scores[bounds[k] : bounds[k + 1]])
        for k in range(n)
    ]


def seqinfo_size(directory: Path) -> tuple[int, int] | None:
    """(imWidth, imHeight) from a MOTChallenge seqinfo.ini in directory, if there is one."""
    ini = Path(directory) / "seqinfo.ini"
    if not ini.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(ini)
        return int(parser["Sequence"]["imWidth"]), int(parser["Sequence"]["imHeight"])
    except (configparser.Error, KeyError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """Scored gt rows sorted by (id, frame); boxes already clipped to the image."""

    frames: npt.NDArray[np.int64]
    ids: npt.NDArray[np.int64]
    xyxy: F64

    def anchors(self, anchor: str = "bottom_center") -> F64:
        x = (self.xyxy[:, 0] + self.xyxy[:, 2]) / 2
        if anchor == "bottom_center":
            y = self.xyxy[:, 3]
        elif anchor == "center":
            y = (self.xyxy[:, 1] + self.xyxy[:, 3]) / 2
        else:
            raise ValueError(f"unknown anchor {anchor!r}")
        return np.stack([x, y], axis=1)

    def tracks(self) -> list[tuple[int, slice]]:
        """(gt id, row slice) per identity."""
        if len(self.ids) == 0:
            return []
        starts = np.flatnonzero(np.r_[True, self.ids[1:] != self.ids[:-1]])
        ends = np.r_[starts[1:], len(self.ids)]
        return [
            (int(self.ids[s]), slice(int(s), int(e))) for s, e in zip(starts, ends, strict=True)
        ]


def read_gt(path: Path, image_size: tuple[int, int] | None = None) -> GroundTruth:
    """Read 2DMOT2015 gt; flag-0 rows are dropped; boxes clipped to image_size (w, h)."""
    arr = _load(path, 7)
    arr = arr[arr[:, 6] != 0]
    xyxy = np.stack([arr[:, 2], arr[:, 3], arr[:, 2] + arr[:, 4], arr[:, 3] + arr[:, 5]], axis=1)
    if image_size is not None:
        w, h = image_size
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, w - 1)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, h - 1)
    frames = arr[:, 0].astype(np.int64)
    ids = arr[:, 1].astype(np.int64)
    order = np.lexsort((frames, ids))
    return GroundTruth(frames[order], ids[order], xyxy[order])


@dataclass(frozen=True, slots=True)
class GtCrossing:
    line_id: str
    direction: Direction
    gt_id: int
    frame: int


def gt_crossings(
    gt: GroundTruth, lines: Sequence[LineConfig], anchor: str, fps: float
) -> list[GtCrossing]:
    """Ground-truth crossings of every line, sorted by frame (see the module docstring).

    fps is accepted for symmetry with the counters; the gt convention is frame based.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    pts_all = gt.anchors(anchor)
    out: list[GtCrossing] = []
    for cfg in lines:
        line = Line.from_points(cfg.points)
        dist_all = line.signed_distance(pts_all)
        for gid, sl in gt.tracks():
            pts, dist, frames = pts_all[sl], dist_all[sl], gt.frames[sl]
            settled = np.flatnonzero(np.abs(dist) >= cfg.hysteresis_px)
            touched = line.crosses(pts[:-1], pts[1:]) if len(pts) > 1 else np.zeros(0, bool)
            for a, b in itertools.pairwise(settled):
                sa, sb = np.sign(dist[a]), np.sign(dist[b])
                if sa == sb or not touched[a:b].any():
                    continue
                out.append(GtCrossing(cfg.id, "in" if sb > 0 else "out", gid, int(frames[b])))
    out.sort(key=lambda c: (c.frame, c.line_id, c.gt_id))
    return out


@dataclass(frozen=True, slots=True)
class GtVisit:
    zone_id: str
    gt_id: int
    entered_frame: int
    exited_frame: int
    dwell_s: float


def gt_zone_visits(
    gt: GroundTruth, zones: Sequence[ZoneConfig], anchor: str, fps: float
) -> list[GtVisit]:
    """Visits per gt id and zone: runs of frames inside, gaps up to occlusion_grace_s merged.

    Dwell runs from the first to the last frame inside; visits shorter than min_visit_s dropped.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    pts_all = gt.anchors(anchor)
    out: list[GtVisit] = []
    for cfg in zones:
        inside_all = Polygon.from_points(cfg.polygon).contains(pts_all)
        grace_frames = cfg.occlusion_grace_s * fps
        for gid, sl in gt.tracks():
            frames = gt.frames[sl][inside_all[sl]]
            if frames.size == 0:
                continue
            # a frame outside (or unseen) breaks the visit only when the gap exceeds the grace
            breaks = np.flatnonzero(np.diff(frames) - 1 > grace_frames)
            starts = np.r_[0, breaks + 1]
            ends = np.r_[breaks, frames.size - 1]
            for s, e in zip(starts, ends, strict=True):
                dwell = (frames[e] - frames[s]) / fps
                if dwell >= cfg.min_visit_s:
                    out.append(GtVisit(cfg.id, gid, int(frames[s]), int(frames[e]), dwell))
    out.sort(key=lambda v: (v.entered_frame, v.zone_id, v.gt_id))
    return out


__all__ = [
    "GroundTruth",
    "GtCrossing",
    "GtVisit",
    "MotFormatError",
    "gt_crossings",
    "gt_zone_visits",
    "read_detections",
    "read_gt",
    "seqinfo_size",
]
