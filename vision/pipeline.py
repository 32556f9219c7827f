"""CameraPipeline: one camera's frames -> detections -> tracks -> counting events.

Composes the motion gate, the detector, the tracker, the line counter and the zone counter.
Pure and single-threaded: the caller passes frames (with their timestamps) and gets a
FrameResult back, with the time each stage took so the bench can attribute it.

On a frame the gate skips, the tracks of the last detection are held (not moved) and counted
again, and the next detection tells the tracker how long the scene was still, so it holds
people who stopped where they stand instead of predicting them on across the gap at walking
pace (ByteTracker.update, still_until_ts). After a forced detection the pipeline tells the gate
whether it found anything new, so a scene that stays the same is re-checked less and less
often (MotionGate.confirm_forced).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from vision.config import CameraConfig
from vision.counting import LineCounter
from vision.detections import Detections
from vision.detector import Detector, Preprocessor
from vision.events import VisionEvent
from vision.motion import GateReason, MotionGate
from vision.source import Frame
from vision.tracker import ByteTracker
from vision.zones import ZoneCounter


@dataclass(frozen=True, slots=True)
class StageTimings:
    """Seconds spent in each stage for one frame (0.0 for a stage that did not run)."""

    gate_s: float = 0.0
    preprocess_s: float = 0.0
    inference_s: float = 0.0
    postprocess_s: float = 0.0
    track_s: float = 0.0
    count_s: float = 0.0

    @property
    def total_s(self) -> float:
        return (
            self.gate_s
            + self.preprocess_s
            + self.inference_s
            + self.postprocess_s
            + self.track_s
            + self.count_s
        )


@dataclass(frozen=True, slots=True)
class PreparedFrame:
    """A frame after the motion gate and, if the detector is to run, preprocessing."""

    frame: Frame
    run_detector: bool
    tensor: npt.NDArray[np.float32] | None
    meta: Any
    gate_s: float
    preprocess_s: float
    gate_reason: GateReason | None = None


@dataclass(frozen=True, slots=True)
class FrameResult:
    frame_index: int
    ts: float
    detections: Detections
    tracks: Detections
    events: list[VisionEvent] = field(default_factory=list)
    ran_detector: bool = False
    timings: StageTimings = field(default_factory=StageTimings)


# A forced detection "confirms" a static scene when every confirmed person is found again
# within this fraction of their box height of where the held tracks had them.
STATIC_DRIFT_H = 0.05


class CameraPipeline:
    """Per-camera processing; `detector=None` for the detections-only path."""

    def __init__(
        self,
        camera: CameraConfig,
        detector: Detector | None,
        fps: float | None = None,
    ) -> None:
        self.camera = camera
        self.detector = detector
        self.fps = fps if fps is not None else camera.fps
        self.gate = MotionGate(camera.motion)
        self.tracker = ByteTracker(camera.tracker, self.fps)
        self.lines = LineCounter(camera.id, camera.lines, camera.anchor)
        self.zones = ZoneCounter(camera.id, camera.zones, camera.anchor)
        self.frames = 0
        self.detector_runs = 0
        self.forced_runs = 0
        self._last_tracks = Detections.empty()
        # the last frame the gate skipped since the last detection: the scene was still
        # from that detection until then
        self._still_until_ts: float | None = None

    def prepare(self, frame: Frame, preprocessor: Preprocessor | None = None) -> PreparedFrame:
        """The gate decision and, when the detector will run, the input tensor.

        Separate from `process_prepared` so the application can prepare the next frame on
        another thread while this one is inferred; `preprocessor` then must have buffers of its
        own (OnnxDetector.make_preprocessor), one per frame in flight. Frames must be prepared
        in order: the gate compares each frame with the last one the detector ran on.
        """
        if self.detector is None:
            raise RuntimeError("this pipeline has no detector: use process_detections()")
        t0 = time.perf_counter()
        # gate_s includes the decode the gate needs (reduced grey, or colour when the last
        # frame ran the detector); preprocess_s a colour decode the gate did not need.
        run = self.gate.check(frame)
        reason = self.gate.last_reason
        t1 = time.perf_counter()
        if not run:
            return PreparedFrame(frame, False, None, None, t1 - t0, 0.0, reason)
        prep = preprocessor if preprocessor is not None else self.detector.preprocess
        tensor, meta = prep(frame.image, frame.scale)
        t2 = time.perf_counter()
        return PreparedFrame(frame, True, tensor, meta, t1 - t0, t2 - t1, reason)

    def process(self, frame: Frame) -> FrameResult:
        """Run one frame through gate, detector, tracker and counters."""
        return self.process_prepared(self.prepare(frame))

    def process_prepared(self, prepared: PreparedFrame) -> FrameResult:
        """Detect (if the gate said so), track and count a prepared frame."""
        if self.detector is None:
            raise RuntimeError("this pipeline has no detector: use process_detections()")
        frame = prepared.frame
        if not prepared.run_detector or prepared.tensor is None:
            t1 = time.perf_counter()
            # The gate saw no change since the last detection, so people are where that
            # detection put them: report those tracks as they were and leave the tracker
            # alone until the next detection, which tells it the gap was still. Coasting them
            # on their Kalman velocities instead moved people who had stopped walking by up to
            # 135 px in 2 s and counted crossings they never made (tests/vision/test_pipeline.py).
            tracks = self._last_tracks
            self._still_until_ts = frame.ts
            t2 = time.perf_counter()
            events = self._count(tracks, frame.ts, frame.index)
            t3 = time.perf_counter()
            self.frames += 1
            self._last_tracks = tracks
            timings = StageTimings(gate_s=prepared.gate_s, track_s=t2 - t1, count_s=t3 - t2)
            return FrameResult(
                frame.index, frame.ts, Detections.empty(), tracks, events, False, timings
            )
        t2 = time.perf_counter()
        outputs = self.detector.infer(prepared.tensor)
        t3 = time.perf_counter()
        detections = self.detector.postprocess(outputs, prepared.meta)
        t4 = time.perf_counter()
        before, held = self._last_tracks, self.tracker.live_track_count
        # A forced detection runs on a frame the gate also found still; after motion, the
        # scene was still only until the last skipped frame (if any).
        still_until = frame.ts if prepared.gate_reason == "forced" else self._still_until_ts
        self._still_until_ts = None
        result = self._track_and_count(detections, frame.ts, frame.index, still_until)
        self.detector_runs += 1
        if prepared.gate_reason == "forced":
            self.forced_runs += 1
            # a new (still tentative) or expired track changes the count even when the
            # confirmed ones are all found again
            unchanged = held == self.tracker.live_track_count and self._unchanged(
                before, result.tracks
            )
            self.gate.confirm_forced(frame.ts, unchanged)
        timings = StageTimings(
            gate_s=prepared.gate_s,
            preprocess_s=prepared.preprocess_s,
            inference_s=t3 - t2,
            postprocess_s=t4 - t3,
            track_s=result.timings.track_s,
            count_s=result.timings.count_s,
        )
        return FrameResult(
            frame.index, frame.ts, detections, result.tracks, result.events, True, timings
        )

    def make_preprocessor(self) -> Preprocessor:
        """A preprocessor with its own buffers for `prepare` on another thread."""
        if self.detector is None:
            raise RuntimeError("this pipeline has no detector")
        return self.detector.make_preprocessor()

    def process_detections(self, dets: Detections, ts: float, frame_index: int) -> FrameResult:
        """Track and count detections made elsewhere (MOT det.txt, another detector)."""
        return self._track_and_count(dets, ts, frame_index)

    def _track_and_count(
        self, dets: Detections, ts: float, frame_index: int, still_until_ts: float | None = None
    ) -> FrameResult:
        t0 = time.perf_counter()
        tracks = self.tracker.update(dets, ts, still_until_ts)
        t1 = time.perf_counter()
        events = self._count(tracks, ts, frame_index)
        t2 = time.perf_counter()
        self.frames += 1
        self._last_tracks = tracks
        timings = StageTimings(track_s=t1 - t0, count_s=t2 - t1)
        return FrameResult(frame_index, ts, dets, tracks, events, True, timings)

    def _unchanged(self, before: Detections, after: Detections) -> bool:
        """True when `after` (tracks matched by a forced detection) has exactly the confirmed
        ids of `before` (the tracks held since the last detection), each within STATIC_DRIFT_H
        box heights of where it was held: the detector found nothing the tracker did not
        already know, and nobody moved."""
        ids_before = before.track_ids.tolist()
        ids_after = after.track_ids.tolist()
        if sorted(ids_before) != sorted(ids_after):
            return False
        if not ids_after:
            return True
        order_before = np.argsort(before.track_ids)
        order_after = np.argsort(after.track_ids)
        moved = np.hypot(
            *(
                before.anchors(self.camera.anchor)[order_before]
                - after.anchors(self.camera.anchor)[order_after]
            ).T
        )
        heights = (after.xyxy[:, 3] - after.xyxy[:, 1])[order_after]
        return bool(np.all(moved <= STATIC_DRIFT_H * heights))

    def _count(self, tracks: Detections, ts: float, frame_index: int) -> list[VisionEvent]:
        events: list[VisionEvent] = []
        events.extend(self.lines.update(tracks, ts, frame_index))
        events.extend(self.zones.update(tracks, ts))
        return events

    def close(self, ts: float) -> list[VisionEvent]:
        """Close open zone visits at shutdown (or end of a file source)."""
        return list(self.zones.close(ts))


__all__ = ["CameraPipeline", "FrameResult", "PreparedFrame", "StageTimings"]
