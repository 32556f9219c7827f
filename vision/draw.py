"""Draw counting lines (with their in/out directions), zones and detections on a frame.

Used by `footfall-agent snapshot` so a technician can check line placement. The `in` arrow
points to the side where (x2-x1)*(py-y1) - (y2-y1)*(px-x1) > 0: a person walking along the
arrow is counted `in` (the convention of issue 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from vision.config import LineConfig, ZoneConfig
from vision.detections import Detections

U8 = npt.NDArray[Any]

LINE_COLOUR = (0, 255, 255)  # BGR yellow
IN_COLOUR = (0, 200, 0)
OUT_COLOUR = (0, 0, 230)
ZONE_COLOUR = (255, 160, 0)
BOX_COLOUR = (255, 0, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _label(image: U8, text: str, org: tuple[int, int], colour: tuple[int, int, int]) -> None:
    """Text with a dark outline so it reads on any background, kept inside the image."""
    (width, height), _ = cv2.getTextSize(text, _FONT, 0.5, 1)
    org = (
        min(max(2, org[0]), image.shape[1] - width - 2),
        min(max(height + 2, org[1]), image.shape[0] - 4),
    )
    cv2.putText(image, text, org, _FONT, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, org, _FONT, 0.5, colour, 1, cv2.LINE_AA)


def in_normal(x1: float, y1: float, x2: float, y2: float) -> tuple[float, float]:
    """Unit vector pointing to the `in` side of the directed line x1,y1 -> x2,y2."""
    dx, dy = x2 - x1, y2 - y1
    length = float(np.hypot(dx, dy)) or 1.0
    # cross(d, p - p1) = dx*(py-y1) - dy*(px-x1) = n . (p - p1) with n = (-dy, dx).
    return -dy / length, dx / length


def draw_line(image: U8, line: LineConfig, scale: float = 1.0) -> None:
    """The line, its id, and arrows across its middle: green `in`, red `out`."""
    (x1, y1), (x2, y2) = ((x / scale, y / scale) for x, y in line.points)
    p1, p2 = (round(x1), round(y1)), (round(x2), round(y2))
    cv2.line(image, p1, p2, LINE_COLOUR, 2, cv2.LINE_AA)
    cv2.circle(image, p1, 4, LINE_COLOUR, -1)
    nx, ny = in_normal(x1, y1, x2, y2)
    # Unit vector along the line: the two arrows sit side by side, 12 px either way of the middle.
    ux, uy = -ny, nx
    mx, my = (x1 + x2) / 2, (y1 + y2) / 2
    arrow = 30.0
    for sign, colour, text in ((1.0, IN_COLOUR, "in"), (-1.0, OUT_COLOUR, "out")):
        # Each arrow starts on the side a person comes from and ends on the side they go to.
        bx, by = mx + ux * 12 * sign, my + uy * 12 * sign
        start = (round(bx - sign * nx * arrow), round(by - sign * ny * arrow))
        end = (round(bx + sign * nx * arrow), round(by + sign * ny * arrow))
        cv2.arrowedLine(image, start, end, colour, 2, cv2.LINE_AA, tipLength=0.3)
        _label(image, text, (end[0] + 4, end[1] + 4), colour)
    _label(image, line.id, (round(x2) + 6, round(y2) - 6), LINE_COLOUR)


def draw_zone(image: U8, zone: ZoneConfig, scale: float = 1.0, alpha: float = 0.25) -> None:
    """The zone polygon, lightly filled, with its id."""
    pts = np.round(np.asarray(zone.polygon, dtype=np.float64) / scale).astype(np.int32)
    overlay = image.copy()
    cv2.fillPoly(overlay, [pts], ZONE_COLOUR)
    cv2.addWeighted(overlay, alpha, image, 1.0 - alpha, 0.0, dst=image)
    cv2.polylines(image, [pts], True, ZONE_COLOUR, 2, cv2.LINE_AA)
    x, y = pts.min(axis=0)
    _label(image, zone.id, (int(x) + 4, int(y) + 16), ZONE_COLOUR)


def draw_detections(image: U8, dets: Detections, scale: float = 1.0) -> None:
    """Boxes with `#track_id` (tracked) or the score (untracked)."""
    for box, score, track_id in zip(dets.xyxy, dets.scores, dets.track_ids, strict=True):
        x1, y1, x2, y2 = (round(float(v) / scale) for v in box)
        cv2.rectangle(image, (x1, y1), (x2, y2), BOX_COLOUR, 2)
        text = f"#{track_id}" if track_id >= 0 else f"{score:.2f}"
        _label(image, text, (x1, max(12, y1 - 4)), BOX_COLOUR)


def render(
    image: U8,
    lines: Sequence[LineConfig] = (),
    zones: Sequence[ZoneConfig] = (),
    detections: Detections | None = None,
    scale: float = 1.0,
) -> U8:
    """A copy of the frame with zones, detections and lines drawn (lines on top)."""
    out = image.copy()
    for zone in zones:
        draw_zone(out, zone, scale)
    if detections is not None:
        draw_detections(out, detections, scale)
    for line in lines:
        draw_line(out, line, scale)
    return out


__all__ = ["draw_detections", "draw_line", "draw_zone", "in_normal", "render"]
