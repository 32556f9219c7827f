"""Camera configuration as technicians write it in the device YAML.

Pure pydantic: validating a camera needs no camera, model file or network.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from vision.geometry import self_intersections

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
Point = Annotated[
    list[float],
    Field(min_length=2, max_length=2, description="[x, y] in pixels (x right, y down)"),
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LineConfig(_Section):
    id: str = Field(pattern=ID_PATTERN, description="line name, unique within the camera")
    points: list[Point] = Field(
        description=(
            "exactly two points [[x1, y1], [x2, y2]] in pixels. 'in' is a crossing where the "
            "anchor moves from the right-hand side of x1->x2 (seen with y down) to the left: "
            "(x2-x1)*(py-y1) - (y2-y1)*(px-x1) goes from negative to positive"
        ),
    )
    hysteresis_px: float = Field(
        default=4.0,
        ge=0,
        description="the anchor must be this far past the line before a crossing counts",
    )
    min_frames_on_side: int = Field(
        default=2,
        ge=1,
        description="frames the anchor must stay on the new side before the crossing counts",
    )

    @field_validator("points")
    @classmethod
    def _two_points(cls, v: list[list[float]]) -> list[list[float]]:
        if len(v) != 2:
            raise ValueError(f"a line needs exactly 2 points, got {len(v)}")
        if v[0] == v[1]:
            raise ValueError("the two points of a line must differ")
        return v


class ZoneConfig(_Section):
    id: str = Field(pattern=ID_PATTERN, description="zone name, unique within the camera")
    polygon: list[Point] = Field(
        description=(
            "at least 3 corners [[x, y], ...] in pixels, in order around the zone (clockwise "
            "or anticlockwise); an outline that crosses or touches itself is rejected"
        )
    )
    min_visit_s: float = Field(
        default=1.0, ge=0, description="visits shorter than this are not counted as dwell"
    )
    occlusion_grace_s: float = Field(
        default=2.0,
        ge=0,
        description="a person unseen for less than this is still in the zone (occlusion)",
    )

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, v: list[list[float]]) -> list[list[float]]:
        if len(v) < 3:
            raise ValueError(f"a zone polygon needs at least 3 points, got {len(v)}")
        problem = _outline_problem(v)
        if problem is not None:
            raise ValueError(problem)
        return v


def _cross(a: Sequence[float], b: Sequence[float], p: Sequence[float]) -> float:
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


def _pt(p: Sequence[float]) -> str:
    return f"[{p[0]:g}, {p[1]:g}]"


def _outline_problem(points: list[list[float]]) -> str | None:
    """Why the points do not outline one area, in a technician's words, or None.

    Containment is even-odd, so corners listed in "Z" order (a bow-tie) cover two triangles
    instead of the rectangle, and a pentagram's centre counts as outside: both were accepted.
    """
    # a point repeated right after itself (or the first repeated at the end to close the
    # outline) is harmless to containment; only the distinct corners are checked
    v = [p for k, p in enumerate(points) if p != points[k - 1]] or points[:1]
    a = v[0]
    far = max(v, key=lambda p: math.hypot(p[0] - a[0], p[1] - a[1]))
    extent = math.hypot(far[0] - a[0], far[1] - a[1])
    off_line = max(abs(_cross(a, far, p)) for p in v)
    if off_line <= 1e-9 * extent**2:
        return (
            "the zone has no area: its points lie on one line; give at least 3 corners of "
            "the area, in order around it"
        )
    crossings = self_intersections(v)
    if not crossings:
        return None
    i, j = crossings[0]
    n = len(v)
    first, second = (v[i], v[(i + 1) % n]), (v[j], v[(j + 1) % n])
    if j - i == 1 or (i == 0 and j == n - 1):
        how = "doubles back over"
    elif _cross(*first, second[0]) * _cross(*first, second[1]) < 0 and (
        _cross(*second, first[0]) * _cross(*second, first[1]) < 0
    ):
        how = "crosses"
    else:
        how = "touches"
    message = (
        f"the zone's outline {how} itself: the edge from {_pt(first[0])} to {_pt(first[1])} "
        f"meets the edge from {_pt(second[0])} to {_pt(second[1])}. List the corners in order "
        "around the zone (clockwise or anticlockwise), not across it"
    )
    # sorted by angle around their centre the corners outline a star-shaped area; offered only
    # when that is a valid outline, starting from the technician's first corner
    cx = sum(p[0] for p in v) / n
    cy = sum(p[1] for p in v) / n
    order = sorted(range(n), key=lambda k: math.atan2(v[k][1] - cy, v[k][0] - cx))
    start = order.index(0)
    ordered = [v[k] for k in order[start:] + order[:start]]
    if not self_intersections(ordered):
        message += f"; in that order these corners are [{', '.join(map(_pt, ordered))}]"
    return message


class DetectorConfig(_Section):
    confidence: float = Field(
        default=0.3, gt=0, lt=1, description="minimum person score to keep a detection"
    )
    nms_iou: float = Field(default=0.45, gt=0, lt=1, description="IoU above which NMS merges")
    threads: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description="ONNX Runtime intra-op threads; default: one less than the CPU cores the "
        "agent may use (at least 1, at most 4), leaving a core for capture, RFID and sync",
    )

    def effective_threads(self) -> int:
        """The intra-op thread count, `threads` or the default derived from the cores."""
        if self.threads is not None:
            return self.threads
        # Measured on 2 cores (BENCHMARKS.md, Vision): 1 thread runs the pipeline at 91 % of
        # the detector's own speed for 18.5 ms of CPU per frame, 2 threads at 82-85 % for
        # 23.9 ms: the second thread buys about 9 % more frames/s for 30 % more CPU, taken
        # from the reader thread, the other cameras and the RFID readers.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, min(4, (cores or 1) - 1))

    provider: str = Field(
        default="CPUExecutionProvider",
        description="ONNX Runtime execution provider; others only if installed",
    )


class MotionConfig(_Section):
    enabled: bool = Field(
        default=True, description="skip inference while nothing moves (tracks are held)"
    )
    threshold: float = Field(
        default=0.002,
        ge=0,
        le=1,
        description="fraction of changed pixels (downscaled grey) that counts as motion",
    )
    max_skip_s: float = Field(
        default=2.0, ge=0, description="run the detector at least this often even when static"
    )
    max_skip_static_s: float = Field(
        default=8.0,
        ge=0,
        description=(
            "while forced detections keep finding the same people in the same places, the "
            "interval between them doubles from max_skip_s up to this; motion or any change "
            "resets it (set it to max_skip_s to keep a fixed interval)"
        ),
    )


class TrackerConfig(_Section):
    high_score: float = Field(default=0.5, gt=0, lt=1, description="first-stage score")
    low_score: float = Field(default=0.1, gt=0, lt=1, description="second-stage score floor")
    new_track_score: float = Field(
        default=0.6, gt=0, lt=1, description="score needed to start a new track"
    )
    match_iou: float = Field(default=0.2, gt=0, lt=1, description="minimum IoU to associate")
    lost_s: float = Field(
        default=2.0, gt=0, description="keep a lost track this long for re-identification"
    )
    confirm_frames: int = Field(default=2, ge=1, description="hits before a track is confirmed")


class CameraConfig(_Section):
    id: str = Field(pattern=ID_PATTERN, description="camera name, unique on the device")
    source: str | int = Field(
        description=(
            "USB index (0), /dev/videoN, rtsp:// or http:// URL, a video file, or a directory "
            "of numbered images"
        )
    )
    fps: float = Field(default=10.0, gt=0, le=120, description="frames per second to process")
    realtime: bool = Field(
        default=True,
        description="file and directory sources: pace to fps (true) or run as fast as possible",
    )
    stall_timeout_s: float = Field(
        default=10.0, gt=0, description="a live source with no frame for this long reconnects"
    )
    model: str = Field(
        default="yolox_nano",
        description="model name from models/manifest.yaml, or a path to an .onnx file",
    )
    resolution: list[int] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="[width, height] of the frames; lets check-config reject lines outside it",
    )
    anchor: Literal["bottom_center", "center"] = Field(
        default="bottom_center", description="point of the person box tested against lines"
    )
    detector: DetectorConfig = Field(
        default_factory=DetectorConfig, description="detector thresholds"
    )
    motion: MotionConfig = Field(default_factory=MotionConfig, description="motion gating")
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="tracker")
    lines: list[LineConfig] = Field(default_factory=list, description="counting lines")
    zones: list[ZoneConfig] = Field(default_factory=list, description="dwell zones")

    @model_validator(mode="after")
    def _unique_and_inside(self) -> CameraConfig:
        # Each problem is raised at its own item's location, so check-config names the line of
        # the duplicate id or of the stray point, not the line of the camera.
        problems: list[tuple[tuple[str | int, ...], str, object]] = []
        for kind, ids in (
            ("lines", [ln.id for ln in self.lines]),
            ("zones", [z.id for z in self.zones]),
        ):
            first: dict[str, int] = {}
            for i, ident in enumerate(ids):
                if ident in first:
                    message = f"duplicate id {ident!r} (already used by {kind}[{first[ident]}])"
                    problems.append(((kind, i, "id"), message, ident))
                first.setdefault(ident, i)
        if self.resolution is not None:
            w, h = self.resolution
            shapes = [("lines", i, "points", ln.points) for i, ln in enumerate(self.lines)]
            shapes += [("zones", i, "polygon", z.polygon) for i, z in enumerate(self.zones)]
            for kind, i, key, points in shapes:
                for j, (x, y) in enumerate(points):
                    if not (0 <= x <= w and 0 <= y <= h):
                        message = f"point [{x:g}, {y:g}] is outside the {w}x{h} frame"
                        problems.append(((kind, i, key, j), message, [x, y]))
        if problems:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    {"type": PydanticCustomError("camera", message), "loc": loc, "input": value}
                    for loc, message, value in problems
                ],
            )
        return self


__all__ = [
    "CameraConfig",
    "DetectorConfig",
    "LineConfig",
    "MotionConfig",
    "TrackerConfig",
    "ZoneConfig",
]
