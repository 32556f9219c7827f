"""Live frames are stamped with a clock that never jumps (a Pi's wall clock is set by NTP
after boot, often by minutes or hours), and their events are put back on the wall clock when
they leave the camera."""

from __future__ import annotations

import itertools
import queue
import threading
import time

from edge_agent.capture import LiveCapture, SteadyClock
from edge_agent.workers import CameraWorker, Item
from tests.edge_agent.test_capture import MjpegCamera
from vision.config import CameraConfig
from vision.events import CrossingEvent, ZoneOccupancy, ZoneTransition, ZoneVisit, shifted


class SetClock:
    """A wall clock someone sets (NTP stepping it): `now()` is real time plus `step_s`."""

    def __init__(self) -> None:
        self.step_s = 0.0

    def now(self) -> float:
        return time.time() + self.step_s


def test_steady_clock_follows_monotonic_time_and_measures_the_wall_step() -> None:
    wall, mono = [1_700_000_000.0], [50.0]
    clock = SteadyClock(wall=lambda: wall[0], mono=lambda: mono[0])
    assert clock() == 1_700_000_000.0
    mono[0] += 10.0
    wall[0] += 10.0 - 3600.0  # ten seconds on, and the wall clock set back an hour
    assert clock() == 1_700_000_010.0
    assert clock.offset_s() == -3600.0


def test_frames_keep_going_forward_when_the_wall_clock_is_set_back() -> None:
    camera = MjpegCamera(fps=25.0)
    wall = SetClock()
    cap = LiveCapture(camera.url, 5.0, clock=SteadyClock(wall=wall.now)).start()
    try:
        stamps: list[float] = []
        deadline = time.monotonic() + 20.0
        while len(stamps) < 20 and time.monotonic() < deadline:
            if len(stamps) == 10:
                wall.step_s = -60.0  # NTP sets the clock back a minute
            frame = cap.read(timeout_s=1.0)
            if frame is not None:
                stamps.append(frame.ts)
    finally:
        cap.close()
        camera.stop()
    assert len(stamps) == 20
    assert all(b > a for a, b in itertools.pairwise(stamps)), stamps
    # No minute lost or gained: the tracker refuses time going backwards (with wall-clock
    # stamps every frame after the step raised) and a zone would count the jump as dwell.
    assert stamps[-1] - stamps[0] < 10.0


def test_events_leave_the_camera_on_the_wall_clock() -> None:
    cfg = CameraConfig.model_validate(
        {"id": "door", "source": "rtsp://camera.invalid/stream", "fps": 2}
    )
    out: queue.Queue[Item] = queue.Queue()
    worker = CameraWorker(cfg, out, threading.Event(), start_ts=time.time())
    wall, mono = [1_700_000_000.0], [100.0]
    worker._clock = SteadyClock(wall=lambda: wall[0], mono=lambda: mono[0])
    mono[0] += 30.0
    wall[0] += 30.0 + 3600.0  # NTP stepped the clock forward an hour since the start
    t = worker._clock()
    visit = ZoneVisit("door", "z", 1, t - 25.0, t)
    batch = worker._batch(t, [visit, CrossingEvent("door", "l", "in", 1, t, 7)])
    assert batch.ts == wall[0]
    moved_visit, crossing = batch.events
    assert isinstance(moved_visit, ZoneVisit) and moved_visit.dwell_s == 25.0  # not 3625 s
    assert moved_visit.exited_ts == wall[0]
    assert isinstance(crossing, CrossingEvent) and crossing.ts == wall[0]


def test_shifted_moves_every_time_of_every_event() -> None:
    events = [
        CrossingEvent("c", "l", "out", 3, 10.0, 1),
        ZoneVisit("c", "z", 3, 4.0, 10.0),
        ZoneTransition("c", "a", "b", 10.0),
        ZoneOccupancy("c", 10.0, {"z": 2}),
    ]
    moved = [shifted(e, 5.0) for e in events]
    assert [getattr(e, "ts", None) for e in moved] == [15.0, None, 15.0, 15.0]
    visit = moved[1]
    assert isinstance(visit, ZoneVisit)
    assert (visit.entered_ts, visit.exited_ts, visit.dwell_s) == (9.0, 15.0, 6.0)


def test_image_directories_are_decoded_for_a_stretching_model(
    models_dir: object, pets_footage: object
) -> None:
    """A model fed by a plain resize (FastestDet) needs a decode that covers its input on
    both axes; the daemon decoded at half size and stretched it up, unlike the bench."""
    from pathlib import Path

    cfg = CameraConfig.model_validate(
        {"id": "door", "source": str(Path(str(pets_footage)) / "img1"), "fps": 7,
         "model": "fastestdet"}
    )  # fmt: skip
    worker = CameraWorker(cfg, queue.Queue(), threading.Event(), start_ts=0.0)
    worker.setup()
    try:
        frame = worker._source.read()
        width, height = worker._pipeline.detector.input_size
        assert frame.image.shape[1] >= width and frame.image.shape[0] >= height, (
            frame.image.shape,
            (width, height),
        )
    finally:
        worker.teardown()
