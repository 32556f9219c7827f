"""CameraWorker on a live stream: the configured fps, not the camera's, sets the work done."""

from __future__ import annotations

import queue
import threading
import time

from edge_agent.workers import CameraBatch, CameraWorker, Item
from tests.edge_agent.test_capture import MjpegCamera, wait_for
from vision.config import CameraConfig


def test_live_camera_is_processed_at_the_configured_fps(models_dir: object) -> None:
    camera = MjpegCamera(fps=25.0)
    out: queue.Queue[Item] = queue.Queue()
    stop = threading.Event()
    cfg = CameraConfig.model_validate(
        {
            "id": "door",
            "source": camera.url,
            "fps": 2,
            "lines": [{"id": "l", "points": [[0, 0], [9, 9]]}],
        }
    )
    worker = CameraWorker(cfg, out, stop, start_ts=time.time())
    worker.start()
    try:
        assert worker.opened.wait(60.0) and worker.state != "failed", worker.errors
        # Count from the first processed frame, once the model is loaded and the stream is up.
        assert wait_for(lambda: not out.empty(), 30.0)
        sent_before, t0 = camera.counter, time.monotonic()
        while not out.empty():
            out.get_nowait()
        time.sleep(3.0)
        processed = 0
        while not out.empty():
            processed += isinstance(out.get_nowait(), CameraBatch)
        elapsed_s = time.monotonic() - t0
        sent = camera.counter - sent_before
    finally:
        stop.set()
        worker.join(10.0)
        camera.stop()
    # The stream offered more frames than were processed, and processing kept to 2 frames/s
    # (one slot of slack for where the window starts). Load can only make either fewer, so
    # this bounds the work done, it does not time it.
    assert sent > processed, (sent, processed)
    assert 1 <= processed <= 2 * elapsed_s + 1, (processed, elapsed_s)
    assert not worker.is_alive()
