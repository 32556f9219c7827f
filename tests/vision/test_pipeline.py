"""CameraPipeline: the real detector on a PETS09 excerpt against ground-truth crossings, the
motion-gated path, the detections-only path, and the fakes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from vision.config import CameraConfig, DetectorConfig
from vision.detections import Detections
from vision.detector import OnnxDetector
from vision.events import CrossingEvent, ZoneVisit
from vision.fakes import FakeDetector, FakeFrameSource
from vision.models import resolve_model
from vision.mot import GtCrossing, gt_crossings, read_detections, read_gt
from vision.pipeline import CameraPipeline
from vision.source import Frame, ImageDirSource

EXCERPT = 135  # frames 1..135: about 19 s with 14 crossings of the two lines below
LINES = [
    {"id": "road", "points": [[500, 100], [500, 560]]},
    {"id": "lawn", "points": [[0, 300], [768, 300]]},
]
ZONE = {"id": "junction", "polygon": [[250, 150], [650, 150], [650, 450], [250, 450]]}


def camera(motion: bool = True) -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": "pets",
            "source": "unused",
            "fps": 7,
            "lines": LINES,
            "zones": [ZONE],
            "motion": {"enabled": motion},
            "detector": {"threads": 1},
        }
    )


@pytest.fixture(scope="module")
def detector() -> OnnxDetector:
    return OnnxDetector(resolve_model("yolox_nano"), DetectorConfig(threads=1))


@pytest.fixture(scope="module")
def truth(pets_footage: Path) -> list[GtCrossing]:
    gt = read_gt(pets_footage / "gt" / "gt.txt", (768, 576))
    cfg = camera()
    return [c for c in gt_crossings(gt, cfg.lines, cfg.anchor, 7.0) if c.frame <= EXCERPT]


def matched(events: list[CrossingEvent], truth: list[GtCrossing], tolerance: int = 7) -> int:
    """Counted crossings that match an unmatched true one (same line and direction, <= 1 s)."""
    free = list(truth)
    hits = 0
    for e in events:
        for t in free:
            same = t.line_id == e.line_id and t.direction == e.direction
            if same and abs(t.frame - e.frame_index) <= tolerance:
                free.remove(t)
                hits += 1
                break
    return hits


def test_counts_the_true_crossings_of_a_pets09_excerpt(
    pets_footage: Path, detector: OnnxDetector, truth: list[GtCrossing]
) -> None:
    source = ImageDirSource(
        pets_footage / "img1", 7.0, input_size=detector.input_size, limit=EXCERPT
    )
    pipeline = CameraPipeline(camera(motion=True), detector)
    crossings: list[CrossingEvent] = []
    visits: list[ZoneVisit] = []
    last: Frame | None = None
    for frame in source:
        result = pipeline.process(frame)
        assert result.frame_index == frame.index
        if result.ran_detector:
            assert result.timings.inference_s > 0 and result.timings.preprocess_s > 0
        # every track reported is a tracked person in original-frame pixels
        assert (result.tracks.track_ids >= 0).all()
        crossings += [e for e in result.events if isinstance(e, CrossingEvent)]
        visits += [e for e in result.events if isinstance(e, ZoneVisit)]
        last = frame
    assert last is not None
    closing = pipeline.close(last.ts)
    assert len(truth) >= 10
    hits = matched(crossings, truth)
    assert hits >= len(truth) - 1, (crossings, truth)
    assert len(crossings) <= len(truth) + 1
    assert all(e.camera_id == "pets" for e in crossings)
    # People were in the junction zone at the end: their visits close at the last frame.
    assert closing and all(isinstance(v, ZoneVisit) and v.exited_ts == last.ts for v in closing)
    assert all(v.dwell_s >= 0 for v in visits + closing)  # type: ignore[union-attr]


def test_static_frames_skip_the_detector_and_coast(
    pets_footage: Path, detector: OnnxDetector
) -> None:
    frames = list(ImageDirSource(pets_footage / "img1", 7.0, limit=8))
    pipeline = CameraPipeline(camera(motion=True), detector)
    for frame in frames:
        moving = pipeline.process(frame)
    assert moving.ran_detector and len(moving.tracks) >= 2
    runs = pipeline.detector_runs
    still = frames[-1]
    for k in range(1, 6):  # the same picture for 5/7 s: nothing moves
        result = pipeline.process(Frame(still.image, still.ts + k / 7, still.index + k))
        assert not result.ran_detector
        assert result.timings.inference_s == 0.0 and len(result.detections) == 0
        # the tracks of the last detection are held: the same people, no new ids
        assert set(result.tracks.track_ids) <= set(moving.tracks.track_ids)
    assert pipeline.detector_runs == runs
    assert pipeline.gate.skipped == 5


def test_detections_only_path_on_public_detections(
    pets_detections: Path, truth: list[GtCrossing]
) -> None:
    dets = read_detections(pets_detections / "det.txt", EXCERPT)
    pipeline = CameraPipeline(camera(), detector=None)
    crossings = [
        e
        for i, d in enumerate(dets, start=1)
        for e in pipeline.process_detections(d, (i - 1) / 7, i).events
        if isinstance(e, CrossingEvent)
    ]
    assert matched(crossings, truth) >= 0.8 * len(truth)
    with pytest.raises(RuntimeError, match="process_detections"):
        pipeline.process(Frame(np.zeros((4, 4, 3), np.uint8), 0.0, 1))


def test_convention_end_to_end_with_the_fakes() -> None:
    # A person walks left to right across a top-to-bottom line x1,y1 -> x2,y2 = (100,0)->(100,200):
    # (x2-x1)*(py-y1) - (y2-y1)*(px-x1) = -200*(px-100) goes from + to -: an "out" crossing.
    cfg = CameraConfig.model_validate(
        {
            "id": "door",
            "source": "fake",
            "fps": 10,
            "lines": [{"id": "door", "points": [[100, 0], [100, 200]]}],
            "motion": {"enabled": False},
        }
    )
    boxes = {i: [[20 + 8 * i, 60, 50 + 8 * i, 150, 0.9]] for i in range(1, 21)}
    source = FakeFrameSource([np.zeros((200, 240, 3), np.uint8)] * 20 + [None], fps=10)
    pipeline = CameraPipeline(cfg, FakeDetector(boxes))
    events = [e for f in iter(source.read, None) for e in pipeline.process(f).events]
    crossings = [e for e in events if isinstance(e, CrossingEvent)]
    assert [(c.line_id, c.direction) for c in crossings] == [("door", "out")]
    assert source.counters.corrupt == 1 and source.state == "ended"


def test_fake_detector_returns_canned_boxes() -> None:
    fake = FakeDetector({2: [[1, 2, 3, 4, 0.5]]})
    image = np.zeros((8, 8, 3), np.uint8)
    assert len(fake.detect(image)) == 0
    second = fake.detect(image)
    assert isinstance(second, Detections) and second.xyxy.tolist() == [[1, 2, 3, 4]]


def test_standing_people_keep_their_ids_while_forced_detections_back_off(
    pets_footage: Path, detector: OnnxDetector
) -> None:
    # The first PETS09 frame held for a minute: people standing still, nothing else.
    first = next(iter(ImageDirSource(pets_footage / "img1", 7.0, limit=1)))
    cam = camera(motion=True)
    assert cam.motion.max_skip_s == 2.0 and cam.motion.max_skip_static_s == 8.0
    pipeline = CameraPipeline(cam, detector)
    ran_at = []
    ids_seen = []
    events = []
    for k in range(7 * 60):
        result = pipeline.process(Frame(first.image, k / 7, k + 1))
        events += [e for e in result.events if isinstance(e, CrossingEvent)]
        if result.ran_detector:
            ran_at.append(round(k / 7, 2))
        if k >= 7 * 2:  # tracks are confirmed by the second detection
            ids_seen.append(tuple(sorted(result.tracks.track_ids.tolist())))
    # nobody is lost or re-identified: the same ids on every frame after confirmation
    assert len(set(ids_seen)) == 1 and len(ids_seen[0]) >= 3
    assert not events
    # t=0, forced at 2 (confirms the tracks), then 2, 4 and 8 s apart
    assert ran_at[:6] == [0.0, 2.0, 4.0, 8.0, 16.0, 24.0]
    assert len(ran_at) == 10  # against 30 with a fixed 2 s interval
    assert pipeline.gate.forced_interval_s == 8.0
    assert pipeline.forced_runs == len(ran_at) - 1


def test_skipped_frames_hold_the_tracks_of_the_last_detection(
    pets_footage: Path, detector: OnnxDetector
) -> None:
    # People walk for 3 s and the picture freezes: they stop dead. A line 60 px ahead of the
    # walker at x=460 (heading left at 70 px/s) must not be crossed while they stand.
    frames = list(ImageDirSource(pets_footage / "img1", 7.0, limit=21))
    cam = CameraConfig.model_validate(
        {
            "id": "pets",
            "source": "unused",
            "fps": 7,
            "lines": [{"id": "ahead", "points": [[400, 200], [400, 450]]}],
            "detector": {"threads": 1},
        }
    )
    pipeline = CameraPipeline(cam, detector)
    for frame in frames:
        last = pipeline.process(frame)
    xs = np.round(last.tracks.anchors()[:, 0])
    walker = [int(t) for t, x in zip(last.tracks.track_ids, xs, strict=True) if x == 460]
    assert len(walker) == 1
    standing = sorted(last.tracks.track_ids.tolist())
    assert len(standing) >= 3
    still = frames[-1]
    crossings = []
    forced = 0
    for k in range(1, 7 * 10):
        result = pipeline.process(Frame(still.image, still.ts + k / 7, still.index + k))
        crossings += [e for e in result.events if isinstance(e, CrossingEvent)]
        if result.ran_detector:
            # The forced detections find everyone where they stopped, under their old ids:
            # the tracker was told the gap was still. Predicted across it at walking pace,
            # the boxes left the people, all four got new ids at 2 s and a lost walker's
            # track landed on someone else and counted a crossing.
            forced += 1
            assert sorted(result.tracks.track_ids.tolist()) == standing
            last = result
            continue
        # a skipped frame repeats the last detection's tracks exactly: nobody moves on it
        np.testing.assert_array_equal(result.tracks.xyxy, last.tracks.xyxy)
        assert result.tracks.track_ids.tolist() == last.tracks.track_ids.tolist()
    # The walker stands 60 px before the line and is not counted (coasting on the Kalman
    # velocity carried the box across it 1.1 s after the stop), nor is anyone else.
    assert not crossings
    assert forced == 3  # at 2, 4 and 8 s: each confirmed the scene, so the interval doubled
    assert pipeline.tracker.live_track_count == len(standing)


def test_a_static_jpeg_directory_is_never_decoded_in_colour_when_skipped(
    pets_footage: Path, detector: OnnxDetector, tmp_path: Path
) -> None:
    # frames 1..14 of PETS09, then frame 14 repeated for 4 s, then frames 15..30 again
    numbers = list(range(1, 15)) + [14] * 28 + list(range(15, 31))
    frames_dir = tmp_path / "img1"
    frames_dir.mkdir()
    for i, n in enumerate(numbers, start=1):
        (frames_dir / f"{i:06d}.jpg").symlink_to(pets_footage / "img1" / f"{n:06d}.jpg")
    results = []
    seen = []
    pipeline = CameraPipeline(camera(motion=True), detector)
    for frame in ImageDirSource(frames_dir, 7.0, input_size=detector.input_size):
        results.append(pipeline.process(frame))
        seen.append(frame)
    skipped = [f for f, r in zip(seen, results, strict=True) if not r.ran_detector]
    assert len(skipped) >= 24
    # only the frame right after a detection is decoded in colour by the gate
    colour = [f for f in skipped if f.decoded]
    assert len(colour) <= 3, [f.index for f in colour]
    # the first moving frame after the pause runs the detector
    assert results[42].ran_detector
    # the same events as decoding every frame in colour up front
    eager = CameraPipeline(camera(motion=True), detector)
    expected = [
        eager.process(f)
        for f in ImageDirSource(frames_dir, 7.0, input_size=detector.input_size, defer_decode=False)
    ]
    assert [r.ran_detector for r in results] == [r.ran_detector for r in expected]
    assert [r.tracks.track_ids.tolist() for r in results] == [
        r.tracks.track_ids.tolist() for r in expected
    ]
    assert [e for r in results for e in r.events] == [e for r in expected for e in r.events]


class BlobDetector:
    """Finds the bright rectangles of a synthetic scene, through the pipeline's detector
    interface: what the gate sees and what is detected come from the same pictures."""

    def preprocess(self, frame: npt.NDArray[np.uint8], source_scale: float = 1.0) -> Prepared:
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        return np.zeros((1, 1), np.float32), grey

    def make_preprocessor(self) -> Callable[[Any, float], Prepared]:
        return self.preprocess

    def infer(self, tensor: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        return [tensor]

    def postprocess(self, outputs: list[npt.NDArray[np.float32]], meta: Any) -> Detections:
        contours, _ = cv2.findContours(
            (meta > 128).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        boxes = [(x, y, x + w, y + h) for x, y, w, h in map(cv2.boundingRect, contours)]
        if not boxes:
            return Detections.empty()
        return Detections.from_arrays(sorted(boxes), [0.9] * len(boxes))


Prepared = tuple[npt.NDArray[np.float32], Any]
SYNTH_FPS = 7


def scene(walker_x: float) -> npt.NDArray[np.uint8]:
    """A 320x240 picture: a 30x70 walker with feet on y=200 at walker_x (box centre), and
    someone standing at the back (feet on y=90, x=120) all along."""
    image = np.zeros((240, 320, 3), np.uint8)
    for x, y in ((round(walker_x), 200), (120, 90)):
        cv2.rectangle(image, (x - 15, y - 70), (x + 14, y - 1), (255, 255, 255), -1)
    return image


def synthetic_camera() -> CameraConfig:
    # the line is 40 px ahead of where the walker stops
    return CameraConfig.model_validate(
        {
            "id": "shop",
            "source": "synthetic",
            "fps": SYNTH_FPS,
            "lines": [{"id": "door", "points": [[240, 120], [240, 239]]}],
            "motion": {"enabled": True},
        }
    )


@pytest.mark.parametrize("stand_s", [2.0, 5.0, 8.0, 30.0])
def test_a_walker_who_stops_keeps_the_id_through_still_gaps(stand_s: float) -> None:
    # One person walks 10 px per frame and stops at x=200 (counter, shelf) beside another
    # who stands throughout; the gate skips every frame while they stand (forced detections
    # every 2 s, backing off to 8 s).
    pipeline = CameraPipeline(synthetic_camera(), BlobDetector())
    path = [60 + 10 * k for k in range(15)]  # stops at x=200
    frames = [scene(x) for x in path]
    frames += [frames[-1]] * round(stand_s * SYNTH_FPS)
    results = [
        pipeline.process(Frame(image, i / SYNTH_FPS, i + 1)) for i, image in enumerate(frames)
    ]
    ids = {tuple(sorted(r.tracks.track_ids.tolist())) for r in results[2:]}
    assert ids == {(1, 2)}, ids
    forced = [r for r in results[len(path) :] if r.ran_detector]
    assert len(forced) >= 1 and pipeline.forced_runs == len(forced)
    assert all(len(r.tracks) == 2 for r in forced)
    assert pipeline.tracker.live_track_count == 2
    assert not [e for r in results for e in r.events if isinstance(e, CrossingEvent)]


def test_walking_off_after_a_still_gap_and_frame_drops_while_walking() -> None:
    # The walker stands 5 s, walks back left at 8 px per frame (the gate sees motion on the
    # first step), and then 4 frames are dropped while they walk: a gap with motion, predicted
    # at walking pace (32 px of a 30 px wide box: no overlap with where they were).
    pipeline = CameraPipeline(synthetic_camera(), BlobDetector())
    xs = [60.0 + 10 * k for k in range(15)] + [200.0] * 35
    xs += [200.0 - 8 * k for k in range(1, 12)]
    timeline = [(i / SYNTH_FPS, x) for i, x in enumerate(xs)]
    t_end = timeline[-1][0]
    timeline += [(t_end + (4 + k) / SYNTH_FPS, xs[-1] - 8 * (3 + k)) for k in range(1, 6)]
    ids = []
    for i, (ts, x) in enumerate(timeline):
        result = pipeline.process(Frame(scene(x), ts, i + 1))
        if i >= 2:
            ids.append(tuple(sorted(result.tracks.track_ids.tolist())))
        if i >= 50:  # walking again: the gate lets every frame through
            assert result.ran_detector
    assert set(ids) == {(1, 2)}
    assert pipeline.tracker.live_track_count == 2
