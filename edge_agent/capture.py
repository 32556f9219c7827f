"""LiveCapture: a camera or network stream read on its own thread, newest frame only.

The reader thread keeps exactly one frame (the newest): a slow consumer skips frames instead of
falling behind the live scene. When the stream drops, fails to open, or stalls (no frame for
`stall_timeout_s`), the thread releases the capture and reopens it with exponential backoff.
State and counters are readable from any thread; `close()` stops the thread within a bounded
time. OpenCV releases the GIL while it waits on the network or decodes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from vision.pipeline import CameraPipeline, PreparedFrame
from vision.source import (
    Frame,
    FrameSource,
    SourceCounters,
    SourceError,
    SourceState,
    open_capture,
)

log = logging.getLogger(__name__)

Opener = Callable[[str | int, float, float], Any]


class SteadyClock:
    """Seconds since the epoch that never jump: the wall time when it was made plus the
    monotonic time since.

    Live frames are stamped with it. A Pi has no real-time clock, and NTP may step its wall
    clock minutes or hours after the agent started: stamped with the wall clock, a step back
    made the tracker refuse every frame, and a step forward was added to an open zone visit
    as dwell. `offset_s()` is how far the wall clock has moved away since, to put the
    pipeline's events back on the wall clock when they leave the camera.
    """

    def __init__(
        self, wall: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic
    ) -> None:
        self._wall = wall
        self._mono = mono
        self._base_s = wall() - mono()

    def __call__(self) -> float:
        return self._base_s + self._mono()

    def offset_s(self) -> float:
        return self._wall() - self()


class LiveCapture:
    """Threaded reader of a USB camera, /dev/video*, or rtsp/http stream.

    Args:
        source: camera index, device path or URL.
        stall_timeout_s: no frame for this long means the stream is stalled: reconnect.
        backoff_initial_s / backoff_max_s: wait between reconnect attempts, doubling each time
            an attempt fails, back to the initial value once frames flow again.
        max_reconnects: give up (state "failed") after this many reconnects in a row without a
            frame; None retries for ever, which is what a store camera wants.
        clock: timestamp of each frame (by default a `SteadyClock`: seconds since the epoch
            that do not jump when the wall clock is set).
    """

    def __init__(
        self,
        source: str | int,
        stall_timeout_s: float = 10.0,
        *,
        open_timeout_s: float | None = None,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_reconnects: int | None = None,
        clock: Callable[[], float] | None = None,
        opener: Opener = open_capture,
        name: str | None = None,
    ) -> None:
        self.source = source
        self.stall_timeout_s = stall_timeout_s
        self.open_timeout_s = open_timeout_s if open_timeout_s is not None else stall_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_reconnects = max_reconnects
        self._clock = clock if clock is not None else SteadyClock()
        self._opener = opener
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._latest_taken = True
        self._index = 0
        self._last_frame_mono: float | None = None
        self.state: SourceState = "reconnecting"
        self.counters = SourceCounters()
        self._thread = threading.Thread(
            target=self._run, name=name or f"capture-{source}", daemon=True
        )

    def start(self) -> LiveCapture:
        self._thread.start()
        return self

    @property
    def seconds_since_frame(self) -> float | None:
        """Age of the newest frame (None before the first one): feeds the health report."""
        if self._last_frame_mono is None:
            return None
        return time.monotonic() - self._last_frame_mono

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        """The newest frame not returned before, waiting up to timeout_s; None if none came."""
        with self._cond:
            if self._latest_taken and not self._stop.is_set():
                self._cond.wait_for(
                    lambda: not self._latest_taken or self._stop.is_set(), timeout_s
                )
            if self._latest_taken or self._latest is None:
                return None
            self._latest_taken = True
            return self._latest

    def close(self, timeout_s: float | None = None) -> None:
        """Stop the reader thread. It may be inside a blocking read for up to the stall
        timeout, so the wait is bounded by that (or timeout_s)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s if timeout_s is not None else self.stall_timeout_s + 1.0)
        self.state = "ended"

    # -- reader thread -------------------------------------------------------------------

    def _publish(self, image: npt.NDArray[np.uint8]) -> None:
        self._index += 1
        frame = Frame(image, self._clock(), self._index)
        with self._cond:
            if not self._latest_taken:
                self.counters.dropped += 1  # the consumer was slower than the camera
            self._latest = frame
            self._latest_taken = False
            self._cond.notify_all()
        self.counters.frames += 1
        self._last_frame_mono = time.monotonic()

    def _pump(self, cap: Any) -> bool:
        """Read until the stream fails or stalls; True if at least one frame arrived."""
        got_frame = False
        last_ok = time.monotonic()
        while not self._stop.is_set():
            try:
                ok, image = cap.read()
            except Exception as exc:  # a decoder error is a broken stream: reconnect
                self.counters.last_error = f"read failed: {exc!r}"
                return got_frame
            if ok and image is not None:
                if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                    self.counters.corrupt += 1
                    self.counters.last_error = f"frame of shape {image.shape} {image.dtype}"
                    continue
                self._publish(cast(npt.NDArray[np.uint8], image))
                self.state = "connected"
                got_frame = True
                last_ok = time.monotonic()
                continue
            # The FFmpeg read timeout (= stall timeout) ends a blocking read on a stalled
            # stream; a closed stream fails at once. Both mean: reconnect.
            stalled = time.monotonic() - last_ok
            self.counters.last_error = (
                f"no frame for {stalled:.1f} s"
                if stalled >= self.stall_timeout_s
                else "read failed"
            )
            return got_frame
        return got_frame

    def _run(self) -> None:
        backoff = self.backoff_initial_s
        failures_in_row = 0
        first = True
        while not self._stop.is_set():
            if not first:
                self.counters.reconnects += 1
            first = False
            got_frame = False
            try:
                cap = self._opener(self.source, self.open_timeout_s, self.stall_timeout_s)
            except SourceError as exc:
                self.counters.last_error = str(exc)
            except Exception as exc:  # OpenCV/FFmpeg errors must not kill the reader thread
                self.counters.last_error = f"open failed: {exc!r}"
            else:
                try:
                    got_frame = self._pump(cap)
                finally:
                    cap.release()
            if self._stop.is_set():
                break
            if got_frame:
                backoff = self.backoff_initial_s
                failures_in_row = 0
            else:
                failures_in_row += 1
            if self.max_reconnects is not None and failures_in_row > self.max_reconnects:
                self.state = "failed"
                log.error("camera %s failed: %s", self.source, self.counters.last_error)
                return
            self.state = "reconnecting"
            log.warning(
                "camera %s: %s; reconnecting in %.1f s",
                self.source,
                self.counters.last_error,
                backoff,
            )
            self._stop.wait(backoff)
            if not got_frame:
                backoff = min(self.backoff_max_s, backoff * 2)


def grab_one(source: str | int, timeout_s: float = 10.0) -> npt.NDArray[np.uint8]:
    """One frame from a live source, without a thread (for `snapshot`)."""
    cap = open_capture(source, timeout_s, timeout_s)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ok, image = cap.read()
            if ok and image is not None:
                return cast(npt.NDArray[np.uint8], image)
            time.sleep(0.05)  # a camera that is still starting up returns no frame at first
        raise SourceError(f"no frame from {source} within {timeout_s:g} s")
    finally:
        cap.release()


class _ReadAhead:
    """A thread producing items into a small queue; None from `_produce` ends the stream."""

    _END = object()

    def __init__(self, source: FrameSource, depth: int, name: str) -> None:
        self.source = source
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def state(self) -> SourceState:
        return self.source.state

    @property
    def counters(self) -> SourceCounters:
        return self.source.counters

    def _produce(self) -> object | None:
        raise NotImplementedError

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                item = self._produce()
                self._put(self._END if item is None else item)
                if item is None:
                    return
        except Exception as exc:  # a reader bug must end the stream, not hang the consumer
            self.source.counters.last_error = f"reader failed: {exc!r}"
            log.exception("read-ahead thread failed")
            self._put(self._END)

    def _get(self) -> object | None:
        item = self._queue.get()
        if item is self._END:
            self._queue.put(item)  # later reads see the end too
            return None
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.source.close()


class PrefetchSource(_ReadAhead):
    """Reads (and so decodes) a file or directory source ahead on its own thread.

    While the detector runs on one frame, the next is decoded: OpenCV and ONNX Runtime both
    release the GIL, so decoding no longer adds to the time per frame. The queue is small
    (`depth` frames) to bound memory. `read()` has the FrameSource signature.
    """

    def __init__(self, source: FrameSource, depth: int = 2, name: str = "prefetch") -> None:
        super().__init__(source, depth, name)

    def _produce(self) -> object | None:
        frame = self.source.read()
        if frame is not None:
            frame.image  # noqa: B018 - a deferred JPEG decode must happen here, ahead
        return frame

    def read(self) -> Frame | None:
        return cast(Frame | None, self._get())


class PreparedFeed(_ReadAhead):
    """Reads, gates and preprocesses frames ahead for one CameraPipeline.

    The pipeline's thread then only infers, tracks and counts: decoding, the motion gate and
    the letterbox of frame n+1 happen while frame n is inferred. Each frame in flight has its
    own preprocessing buffers (queue depth + one being filled + one being inferred).
    """

    def __init__(
        self,
        source: FrameSource,
        pipeline: CameraPipeline,
        depth: int = 2,
        name: str = "prepare",
    ) -> None:
        self._pipeline = pipeline
        self._preprocessors = [pipeline.make_preprocessor() for _ in range(depth + 2)]
        self._next = 0
        super().__init__(source, depth, name)

    def _produce(self) -> object | None:
        frame = self.source.read()
        if frame is None:
            return None
        preprocessor = self._preprocessors[self._next]
        self._next = (self._next + 1) % len(self._preprocessors)
        return self._pipeline.prepare(frame, preprocessor)

    def read(self) -> PreparedFrame | None:
        return cast(PreparedFrame | None, self._get())


__all__ = ["LiveCapture", "PrefetchSource", "PreparedFeed", "grab_one"]
