"""LiveCapture against a real MJPEG-over-HTTP stream served by a thread in the test.

The camera is the only fake here: a small HTTP server that sends numbered JPEG frames, can stall
(stop sending, and accept no new stream), and resumes. OpenCV's FFmpeg backend reads it like an
IP camera, so the stall detection, reconnect and newest-frame logic run for real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.capture import LiveCapture, PrefetchSource, PreparedFeed, grab_one
from vision.config import CameraConfig
from vision.detector import OnnxDetector
from vision.models import resolve_model
from vision.pipeline import CameraPipeline
from vision.source import ImageDirSource, SourceError

BLOCK = 16
BITS = 12  # 4 x 3 blocks of 16 px: frame numbers survive JPEG compression exactly


def encode_number(n: int) -> bytes:
    image = np.zeros((3 * BLOCK, 4 * BLOCK, 3), dtype=np.uint8)
    for bit in range(BITS):
        if n >> bit & 1:
            row, col = divmod(bit, 4)
            image[row * BLOCK : (row + 1) * BLOCK, col * BLOCK : (col + 1) * BLOCK] = 255
    ok, jpg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return jpg.tobytes()


def decode_number(image: np.ndarray) -> int:
    n = 0
    for bit in range(BITS):
        row, col = divmod(bit, 4)
        block = image[
            row * BLOCK + 4 : (row + 1) * BLOCK - 4, col * BLOCK + 4 : (col + 1) * BLOCK - 4
        ]
        if block.mean() > 128:
            n |= 1 << bit
    return n


class MjpegCamera:
    """An IP camera stand-in: multipart/x-mixed-replace JPEG stream at `fps`."""

    def __init__(self, fps: float = 25.0, garbage_every: int = 0) -> None:
        self.fps = fps
        self.garbage_every = garbage_every
        self.counter = 0
        self.connections = 0
        self.running = threading.Event()
        self.running.set()
        self.closing = threading.Event()
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                # A stalled camera accepts the TCP connection but sends nothing.
                while not camera.running.is_set() and not camera.closing.is_set():
                    time.sleep(0.02)
                camera.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while not camera.closing.is_set():
                        if not camera.running.is_set():
                            time.sleep(0.02)
                            continue
                        camera.counter += 1
                        jpg = encode_number(camera.counter)
                        if camera.garbage_every and camera.counter % camera.garbage_every == 0:
                            jpg = b"\xff\xd8\xff\xdb" + bytes(range(256)) * 4  # not a JPEG
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            + f"Content-Length: {len(jpg)}\r\n\r\n".encode()
                            + jpg
                            + b"\r\n"
                        )
                        self.wfile.flush()
                        time.sleep(1.0 / camera.fps)
                except (BrokenPipeError, ConnectionResetError):
                    return

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"

    def stop(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def camera() -> Iterator[MjpegCamera]:
    cam = MjpegCamera()
    yield cam
    cam.stop()


def wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_reconnects_after_a_stall_and_resumes_with_new_frames(camera: MjpegCamera) -> None:
    cap = LiveCapture(camera.url, stall_timeout_s=0.6, backoff_initial_s=0.1, backoff_max_s=0.4)
    cap.start()
    try:
        first = cap.read(timeout_s=10.0)
        assert first is not None, cap.counters.last_error
        assert cap.state == "connected"
        assert decode_number(first.image) >= 1
        camera.running.clear()  # the camera stalls: no frames, no new streams
        assert wait_for(lambda: cap.state == "reconnecting", 5.0)
        assert wait_for(lambda: cap.counters.reconnects >= 2, 5.0)  # retried while stalled
        stalled_at = camera.counter
        camera.running.set()
        frame = None
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            frame = cap.read(timeout_s=1.0)
            if frame is not None and decode_number(frame.image) > stalled_at:
                break
        assert frame is not None and decode_number(frame.image) > stalled_at
        assert cap.state == "connected"
        assert camera.connections >= 2  # the frames after the stall came over a new stream
        assert frame.index > first.index
        assert "no frame" in cap.counters.last_error or "cannot open" in cap.counters.last_error
    finally:
        cap.close(timeout_s=5.0)
    assert cap.state == "ended"
    assert not cap._thread.is_alive()


def test_slow_consumer_gets_the_newest_frame_not_a_backlog(camera: MjpegCamera) -> None:
    cap = LiveCapture(camera.url, stall_timeout_s=2.0).start()
    try:
        assert cap.read(timeout_s=10.0) is not None
        time.sleep(0.8)  # ~20 frames arrive meanwhile
        frame = cap.read(timeout_s=1.0)
        assert frame is not None
        # The frame handed over is the latest the camera sent, not the one after the last read.
        assert camera.counter - decode_number(frame.image) <= 3
        assert cap.counters.dropped >= 5
    finally:
        cap.close(timeout_s=5.0)


def test_unreachable_source_fails_after_max_reconnects() -> None:
    # Nothing listens on this port: every open fails, backoff doubles, then it gives up.
    cap = LiveCapture(
        "http://127.0.0.1:9/none.mjpg",
        stall_timeout_s=0.5,
        backoff_initial_s=0.05,
        max_reconnects=2,
    ).start()
    assert wait_for(lambda: cap.state == "failed", 10.0)
    assert cap.counters.frames == 0
    assert cap.counters.reconnects == 2
    assert "cannot open" in cap.counters.last_error
    cap.close(timeout_s=2.0)


def test_grab_one_reads_a_frame_and_reports_a_dead_source(camera: MjpegCamera) -> None:
    image = grab_one(camera.url, timeout_s=10.0)
    assert image.shape == (3 * BLOCK, 4 * BLOCK, 3)
    with pytest.raises(SourceError, match="cannot open"):
        grab_one("http://127.0.0.1:9/none.mjpg", timeout_s=1.0)


def test_prefetch_source_yields_the_same_frames_in_order(pets_footage: Path) -> None:
    direct = [f.index for f in ImageDirSource(pets_footage / "img1", 7.0, limit=12)]
    ahead = PrefetchSource(ImageDirSource(pets_footage / "img1", 7.0, limit=12), depth=2)
    frames = list(iter(ahead.read, None))
    got = [f.index for f in frames]
    # the JPEGs' deferred colour decode happened on the reader thread, ahead of the consumer
    assert all(f.decoded for f in frames)
    assert got == direct == list(range(1, 13))
    assert ahead.read() is None  # the end is sticky
    assert ahead.state == "ended" and ahead.counters.frames == 12
    ahead.close()


def test_prefetch_source_close_stops_a_reader_blocked_on_a_full_queue(
    pets_footage: Path,
) -> None:
    ahead = PrefetchSource(ImageDirSource(pets_footage / "img1", 7.0, limit=50), depth=1)
    first = ahead.read()
    assert first is not None and first.index == 1
    ahead.close()  # the reader is waiting to put frame 3: it must notice the stop
    assert not ahead._thread.is_alive()


def test_prepared_feed_gives_the_same_results_as_inline_processing(pets_footage: Path) -> None:
    camera = CameraConfig.model_validate(
        {
            "id": "pets",
            "source": "unused",
            "fps": 7,
            "lines": [{"id": "road", "points": [[500, 100], [500, 560]]}],
            "detector": {"threads": 1},
        }
    )
    detector = OnnxDetector(resolve_model("fastestdet"), camera.detector)

    def source() -> ImageDirSource:
        return ImageDirSource(pets_footage / "img1", 7.0, limit=20)

    inline = CameraPipeline(camera, detector)
    expected = [inline.process(f) for f in source()]
    ahead = CameraPipeline(camera, detector)
    feed = PreparedFeed(source(), ahead, depth=2)
    got = [ahead.process_prepared(p) for p in iter(feed.read, None)]
    feed.close()
    assert [r.frame_index for r in got] == list(range(1, 21))
    assert [r.ran_detector for r in got] == [r.ran_detector for r in expected]
    for a, b in zip(got, expected, strict=True):
        # separate preprocessing buffers per frame in flight: nothing overwritten too early
        np.testing.assert_allclose(a.detections.xyxy, b.detections.xyxy, atol=1e-3)
        assert a.tracks.track_ids.tolist() == b.tracks.track_ids.tolist()


def test_a_stream_with_garbage_frames_keeps_delivering_good_ones() -> None:
    camera = MjpegCamera(garbage_every=3)
    cap = LiveCapture(camera.url, stall_timeout_s=2.0, backoff_initial_s=0.1).start()
    try:
        numbers = set()
        deadline = time.monotonic() + 10.0
        while len(numbers) < 8 and time.monotonic() < deadline:
            frame = cap.read(timeout_s=1.0)
            if frame is not None:
                numbers.add(decode_number(frame.image))
        assert len(numbers) >= 8, cap.counters
        assert not any(n % 3 == 0 for n in numbers)  # garbage parts never become frames
        assert cap._thread.is_alive()
    finally:
        cap.close(timeout_s=5.0)
        camera.stop()
