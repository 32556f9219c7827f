"""Draw simulated camera frames: the shop floor, the shoppers, and what the detector reported.

Only a handful of frames are drawn (stills plus a short clip), so the demo stays fast; the
counting pipeline never sees pixels, it sees the simulated detections drawn here as boxes.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.demo import floor_plan as fp
from edge_agent.demo.noisy_detections import truth_boxes
from vision.config import CameraConfig
from vision.detections import Detections

Image = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

_ZONE_BGR = {"shelf_a": (80, 170, 240), "shelf_b": (200, 150, 60), "checkout": (90, 200, 120)}
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _person_bgr(pid: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(pid)
    b, g, r = (int(v) for v in rng.integers(40, 220, size=3))
    return b, g, r


class Renderer:
    def __init__(self, camera: CameraConfig) -> None:
        self.camera = camera
        self.background = self._background()

    def _background(self) -> Image:
        img = np.full((fp.FRAME_H_PX, fp.FRAME_W_PX, 3), (205, 210, 214), np.uint8)
        y_wall = int(fp.STOREFRONT_Y_PX)
        cv2.rectangle(img, (0, y_wall), (fp.FRAME_W_PX, fp.FRAME_H_PX), (150, 150, 150), -1)
        cv2.putText(img, "sidewalk", (8, fp.FRAME_H_PX - 8), _FONT, 0.4, (70, 70, 70), 1)
        overlay = img.copy()
        for zone in self.camera.zones:
            pts = np.asarray(zone.polygon, dtype=np.int32)
            cv2.fillPoly(overlay, [pts], _ZONE_BGR.get(zone.id, (180, 180, 180)))
        img = np.asarray(cv2.addWeighted(overlay, 0.35, img, 0.65, 0), dtype=np.uint8)
        for zone in self.camera.zones:
            pts = np.asarray(zone.polygon, dtype=np.int32)
            cv2.polylines(img, [pts], True, _ZONE_BGR.get(zone.id, (120, 120, 120)), 1)
            x, y = pts[:, 0].mean(), pts[:, 1].max()
            cv2.putText(img, zone.id, (int(x) - 30, int(y) - 6), _FONT, 0.45, (40, 40, 40), 1)
        for x1, y1, x2, y2 in fp.SHELF_UNITS_PX.values():
            cv2.rectangle(img, (x1, y1), (x2, y2), (60, 90, 140), -1)
        x1, y1, x2, y2 = fp.CHECKOUT_COUNTER_PX
        cv2.rectangle(img, (x1, y1), (x2, y2), (70, 70, 70), -1)
        # Storefront wall with the door gap.
        door_a, door_b = (int(v) for v in fp.DOOR_X_PX)
        cv2.line(img, (0, y_wall), (door_a, y_wall), (40, 40, 40), 4)
        cv2.line(img, (door_b, y_wall), (fp.FRAME_W_PX, y_wall), (40, 40, 40), 4)
        for line in self.camera.lines:
            (xa, ya), (xb, yb) = line.points
            cv2.line(img, (int(xa), int(ya)), (int(xb), int(yb)), (0, 0, 220), 2)
            mx, my = int((xa + xb) / 2), int((ya + yb) / 2)
            # The `in` side is where the side value turns positive: the left normal.
            nx, ny = -(yb - ya), (xb - xa)
            norm = max(1e-6, float(np.hypot(nx, ny)))
            tip = (int(mx + 28 * nx / norm), int(my + 28 * ny / norm))
            cv2.arrowedLine(img, (mx, my), tip, (0, 0, 220), 2, tipLength=0.35)
            cv2.putText(img, f"{line.id}: in", (tip[0] + 6, tip[1] + 4), _FONT, 0.4, (0, 0, 200), 1)
        return img

    def draw(
        self,
        feet: F32,
        person_ids: npt.NDArray[np.int64],
        detections: Detections,
        *,
        clock: str,
        caption: str,
        tracks: Detections | None = None,
    ) -> Image:
        """Shoppers as figures, detector boxes in green, tracker ids in yellow."""
        img = self.background.copy()
        boxes = truth_boxes(feet)
        # Far people first so nearer ones are drawn over them.
        for i in np.argsort(feet[:, 1]).tolist():
            x1, y1, x2, y2 = boxes[i]
            colour = _person_bgr(int(person_ids[i]))
            w, h = x2 - x1, y2 - y1
            head_r = max(3, int(w * 0.28))
            cx = int((x1 + x2) / 2)
            cv2.ellipse(
                img,
                (cx, int(y1 + head_r * 2 + (h - head_r * 2) / 2)),
                (max(2, int(w / 2)), max(3, int((h - head_r * 2) / 2))),
                0,
                0,
                360,
                colour,
                -1,
            )
            cv2.circle(img, (cx, int(y1 + head_r)), head_r, (150, 190, 225), -1)
        for x1, y1, x2, y2 in detections.xyxy.astype(int).tolist():
            cv2.rectangle(img, (x1, y1), (x2, y2), (0, 200, 0), 1)
        if tracks is not None:
            for (x1, y1, _x2, _y2), tid in zip(
                tracks.xyxy.astype(int).tolist(), tracks.track_ids.tolist(), strict=True
            ):
                cv2.putText(img, f"#{tid}", (x1, max(30, y1 - 3)), _FONT, 0.4, (0, 220, 255), 1)
        cv2.rectangle(img, (0, 0), (fp.FRAME_W_PX, 22), (0, 0, 0), -1)
        cv2.putText(img, "SIMULATION", (6, 16), _FONT, 0.5, (0, 0, 255), 2)
        cv2.putText(img, f"{clock}  {caption}", (120, 16), _FONT, 0.45, (255, 255, 255), 1)
        return img


class Clip:
    """A short MP4 of consecutive frames; silently absent if this OpenCV build cannot write it."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = path
        self._writer = cv2.VideoWriter(
            str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (fp.FRAME_W_PX, fp.FRAME_H_PX)
        )
        self.ok = bool(self._writer.isOpened())
        self.frames = 0

    def write(self, img: Image) -> None:
        if self.ok:
            self._writer.write(img)
            self.frames += 1

    def close(self) -> None:
        self._writer.release()
        if not self.ok or self.frames == 0:
            self.path.unlink(missing_ok=True)


__all__ = ["Clip", "Renderer"]
