"""The daemon's threads: one per camera, one per reader, and the aggregator.

Every worker loops on ``while not stop.is_set()`` with a bounded wait in each step, refreshes
its heartbeat (the systemd watchdog is fed only while all are fresh), and survives its own
failures: an exception in a step is counted and logged, the worker backs off and carries on, and
a source that cannot be opened is retried. One camera or reader failing never stops the others.

Each source has its own bounded queue to the aggregator: a camera whose queue is full waits (its
live capture keeps only the newest frame, so a slow camera drops frames), and it can never fill
the queue an RFID reader uses.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from rfid.config import ReaderConfig
from rfid.events import TagRead
from vision.config import CameraConfig
from vision.events import VisionEvent, shifted

log = logging.getLogger(__name__)

QUEUE_ITEMS = 256
RATE_WINDOW_S = 5.0
_ERROR_BACKOFF_S = (0.5, 30.0)


@dataclass(frozen=True, slots=True)
class CameraBatch:
    """The events of one processed frame; `ts` (the frame time) is the camera's watermark."""

    camera_id: str
    ts: float
    events: list[VisionEvent]


@dataclass(frozen=True, slots=True)
class ReaderBatch:
    reader_id: str
    ts: float
    reads: list[TagRead]
    healthy: bool
    heard_ts: float | None = None  # the reader's last frame, if its frames prove it looks


@dataclass(frozen=True, slots=True)
class SourceEnded:
    source_id: str
    ts: float


Item = CameraBatch | ReaderBatch | SourceEnded


@dataclass
class RateMeter:
    """Events per second (frames/s, reads/s) over windows of ``RATE_WINDOW_S``; time passed in
    (monotonic seconds).

    The last full window's rate stands until the window in progress is itself a full window
    long; from then on the window in progress is what the source is doing now. A window is
    only closed by an event, so without that rule a source that stopped would report its last
    rate for ever.
    """

    since: float  # start of the window in progress
    _rate_hz: float = 0.0
    _count: int = 0

    def add(self, n: int, now: float) -> None:
        self._count += n
        elapsed = now - self.since
        if elapsed >= RATE_WINDOW_S:
            # A rate() racing this update can read one window's start with the other's count:
            # a momentary glitch in a health figure, not worth a lock on every frame.
            self._rate_hz = self._count / elapsed
            self.since = now
            self._count = 0

    def rate(self, now: float) -> float:
        elapsed = now - self.since
        if elapsed >= RATE_WINDOW_S:
            return self._count / elapsed
        return self._rate_hz


class Worker(threading.Thread):
    """A supervised loop: setup() once (retried), step() until stop, teardown() once."""

    kind: Literal["camera", "reader", "aggregator"] = "aggregator"

    def __init__(self, source_id: str, stop: threading.Event) -> None:
        super().__init__(name=f"{self.kind}-{source_id}", daemon=True)
        self.source_id = source_id
        self.stop_event = stop
        self.heartbeat = time.monotonic()
        self.state = "starting"
        self.errors: Counter[str] = Counter()
        self.opened = threading.Event()  # set once the first open attempt is over
        self.ended = False
        self.last_data_mono: float | None = None
        self._backoff_s = _ERROR_BACKOFF_S[0]

    def setup(self) -> None:
        """Open the device; raise to be retried."""

    def step(self) -> None:
        raise NotImplementedError

    def teardown(self) -> None:
        """Close the device (called once, from the worker's own thread)."""

    def run(self) -> None:
        ready = False
        while not self.stop_event.is_set() and not self.ended:
            self.heartbeat = time.monotonic()
            try:
                if not ready:
                    self.setup()
                    ready = True
                    self.opened.set()
                self.step()
                self._backoff_s = _ERROR_BACKOFF_S[0]
            except Exception as exc:
                self.errors[type(exc).__name__] += 1
                if not ready:
                    self.state = "failed"
                    self.opened.set()
                log.error(
                    "%s: %s: %s (retry in %.1f s)",
                    self.name,
                    type(exc).__name__,
                    exc,
                    self._backoff_s,
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
                # Sleep in short slices: the heartbeat stays fresh while we wait.
                deadline = time.monotonic() + self._backoff_s
                while time.monotonic() < deadline and not self.stop_event.is_set():
                    self.heartbeat = time.monotonic()
                    self.stop_event.wait(min(1.0, deadline - time.monotonic()))
                self._backoff_s = min(self._backoff_s * 2, _ERROR_BACKOFF_S[1])
        try:
            if ready:
                self.teardown()
        except Exception:
            log.exception("%s: error while closing", self.name)
        self.opened.set()
        if self.state not in ("failed", "ended"):
            self.state = "stopped"

    def fresh(self, max_age_s: float) -> bool:
        """Looping recently (an ended file source has nothing left to do: always fresh)."""
        return self.ended or time.monotonic() - self.heartbeat <= max_age_s

    def health(self) -> dict[str, Any]:
        return {
            "id": self.source_id,
            "kind": self.kind,
            "state": self.state,
            "errors": dict(self.errors),
        }

    def _put(self, out: queue.Queue[Item], item: Item) -> None:
        """Queue an item, waiting while the aggregator catches up (never silently lost)."""
        while True:
            try:
                out.put(item, timeout=0.5)
                return
            except queue.Full:
                self.heartbeat = time.monotonic()
                if self.stop_event.is_set():
                    self.errors["queue_full_at_stop"] += 1
                    return


class CameraWorker(Worker):
    """Frames -> CameraPipeline -> events. Live cameras via LiveCapture; files at `start_ts`."""

    kind = "camera"

    def __init__(
        self, cam: CameraConfig, out: queue.Queue[Item], stop: threading.Event, start_ts: float
    ) -> None:
        super().__init__(cam.id, stop)
        self.cam = cam
        self.out = out
        self.start_ts = start_ts
        self.frames = RateMeter(since=time.monotonic())
        self.inference_ms: float | None = None
        self.live = False
        self._source: Any = None
        self._pipeline: Any = None
        self._last_ts = start_ts
        self._next_due_mono = 0.0
        self._clock: Any = None  # live cameras: the SteadyClock their frames are stamped with

    def setup(self) -> None:
        from edge_agent.capture import LiveCapture, SteadyClock
        from vision.detector import OnnxDetector
        from vision.models import resolve_model
        from vision.pipeline import CameraPipeline
        from vision.source import ImageDirSource, VideoFileSource, source_kind

        self.state = "connecting"
        kind = source_kind(self.cam.source)
        self.live = kind == "live"
        try:
            detector = OnnxDetector(resolve_model(self.cam.model), self.cam.detector)
        except Exception:
            self._give_up_if_file()
            raise
        self._pipeline = CameraPipeline(self.cam, detector)
        if kind == "live":
            self._clock = SteadyClock()
            self._source = LiveCapture(
                self.cam.source,
                self.cam.stall_timeout_s,
                clock=self._clock,
                name=f"capture-{self.cam.id}",
            ).start()
        elif kind == "images":
            try:
                self._source = ImageDirSource(
                    str(self.cam.source),
                    self.cam.fps,
                    self.cam.realtime,
                    input_size=detector.input_size,
                    stretch=detector.stretches_input,
                    start_ts=self.start_ts,
                )
            except Exception:
                self._give_up_if_file()
                raise
        else:
            try:
                self._source = VideoFileSource(
                    str(self.cam.source), self.cam.fps, self.cam.realtime, start_ts=self.start_ts
                )
            except Exception:
                self._give_up_if_file()
                raise
        self.state = "connected" if not self.live else "reconnecting"

    def _give_up_if_file(self) -> None:
        """A file that cannot be opened will not open later: end this source (as failed) so a
        batch run does not wait for it for ever. Live cameras are retried instead."""
        if not self.live:
            self.ended = True
            self._put(self.out, SourceEnded(self.cam.id, self.start_ts))

    def step(self) -> None:
        src = self._source
        if self.live:
            # A camera delivers 25-30 frames/s whatever `fps` says; the capture thread keeps
            # only the newest, so waiting for the next slot here is what holds processing (and
            # CPU) to the configured rate. Short waits keep the heartbeat and the stop prompt.
            wait_s = self._next_due_mono - time.monotonic()
            if wait_s > 0:
                self.stop_event.wait(min(wait_s, 0.5))
                return
        frame = src.read(timeout_s=0.5) if self.live else src.read()
        if self.live:
            self.state = src.state
        if frame is None:
            if not self.live and src.state == "ended":
                events = self._pipeline.close(self._last_ts)
                self._put(self.out, CameraBatch(self.cam.id, self._last_ts, list(events)))
                self._put(self.out, SourceEnded(self.cam.id, self._last_ts))
                self.state = "ended"
                self.ended = True
            return
        if self.live:
            now = time.monotonic()
            # On schedule, slots stay evenly spaced; after a slow frame, restart from now
            # rather than bursting to catch up.
            self._next_due_mono = max(self._next_due_mono + 1.0 / self.cam.fps, now)
        result = self._pipeline.process(frame)
        self._last_ts = frame.ts
        self.last_data_mono = time.monotonic()
        self.frames.add(1, self.last_data_mono)
        if result.ran_detector:
            ms = result.timings.inference_s * 1000.0
            self.inference_ms = (
                ms if self.inference_ms is None else 0.9 * self.inference_ms + 0.1 * ms
            )
        self._put(self.out, self._batch(frame.ts, result.events))

    def _batch(self, ts: float, events: Iterable[VisionEvent]) -> CameraBatch:
        """A batch on the wall clock: live frames carry steady time (`SteadyClock`), so their
        events move by however far the wall clock has been set since the camera started."""
        if self._clock is None:
            return CameraBatch(self.cam.id, ts, list(events))
        delta_s = self._clock.offset_s()
        return CameraBatch(self.cam.id, ts + delta_s, [shifted(e, delta_s) for e in events])

    def teardown(self) -> None:
        if self._source is None:
            return
        if not self.ended and self._pipeline is not None:
            # Close the open zone visits so their dwell is counted in the final interval.
            ts = self._clock() if self._clock is not None else self._last_ts
            events = self._pipeline.close(ts)
            if events:
                try:
                    self.out.put_nowait(self._batch(ts, events))
                except queue.Full:
                    self.errors["queue_full_at_stop"] += 1
        if self.live:
            self._source.close(timeout_s=2.0)
        else:
            self._source.close()

    def health(self) -> dict[str, Any]:
        doc = super().health()
        counters = getattr(self._source, "counters", None)
        if counters is not None:
            for name in ("corrupt", "dropped", "reconnects"):
                if getattr(counters, name, 0):
                    doc["errors"][f"frames_{name}"] = int(getattr(counters, name))
        doc["rate_hz"] = round(self.frames.rate(time.monotonic()), 2)
        doc["inference_ms"] = None if self.inference_ms is None else round(self.inference_ms, 1)
        return doc


class ReaderWorker(Worker):
    """Polls one reader (serial or LLRP); reads and its health go to the aggregator's stock
    engine. A batch goes out at least every ``BATCH_EVERY_S``, empty or not: it is also the
    worker's heartbeat to the stock engine (see :func:`reader_silent_after_s`)."""

    kind = "reader"
    BATCH_EVERY_S = 0.5

    def __init__(self, cfg: ReaderConfig, out: queue.Queue[Item], stop: threading.Event) -> None:
        super().__init__(cfg.id, stop)
        self.cfg = cfg
        self.out = out
        self._reader: Any = None
        self._pending: list[TagRead] = []
        self._last_put = 0.0

    def setup(self) -> None:
        from rfid.readers import make_reader

        self._reader = make_reader(self.cfg)

    def step(self) -> None:
        now = time.time()
        reads = self._reader.poll(now)
        self.state = self._reader.state
        if reads:
            self._pending.extend(reads)
            self.last_data_mono = time.monotonic()
        if self._pending or now - self._last_put >= self.BATCH_EVERY_S:
            healthy = self.state == "connected"
            batch = ReaderBatch(self.cfg.id, now, self._pending, healthy, self._reader.heard_ts)
            self._put(self.out, batch)
            self._pending = []
            self._last_put = now
        if not self._reader.is_open:
            self.stop_event.wait(0.1)  # reopening is scheduled by the reader: do not spin

    def teardown(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def health(self) -> dict[str, Any]:
        doc = super().health()
        if self._reader is not None:
            h = self._reader.health(time.time())
            doc["errors"].update(h.errors)
            doc["rate_hz"] = round(h.read_rate_hz, 2)
            doc["last_data_age_s"] = h.last_frame_age_s
        return doc


def reader_silent_after_s(cfg: ReaderConfig) -> float:
    """How long the aggregator waits for a reader's next batch before the stock engine treats
    that reader as unhealthy (its zones freeze: no removal, no stock_out).

    A looping ReaderWorker sends a batch at least every ``BATCH_EVERY_S`` plus one step, and a
    step is about one poll cycle (one inventory command per ``poll_interval_s``; reading waits
    0.05 s at most; serial and LLRP I/O are non-blocking), so batches come about
    ``BATCH_EVERY_S + poll_interval_s`` apart at most (measured on the 2-core test VM at load ~6, poll 0.1 s, over 60 s: largest gap 0.31 s with
    tags in the field, 0.75 s with none). Four of those absorb the scheduling stalls of a loaded
    Pi without flagging a working reader (a false flag only delays removals by one absence
    window: cheap); no batch for that long means the worker is hung or backing off after
    errors (up to 30 s), and its silence must not read as "every tag has gone". Never longer
    than the reader's own ``stale_after_s``: the bound the reader applies to a silent device.
    Removals wait for a tag to go unread for at least ``min_absence_s`` (10 s by default), so
    with the default poll interval (0.2 s: 2.8 s) the flag is set long before a hung worker's
    tags could be removed; a ``min_absence_s`` configured below it lowers the bound to half of
    itself, so the flag still comes first.
    """
    return min(
        4 * (ReaderWorker.BATCH_EVERY_S + cfg.poll_interval_s),
        cfg.presence.stale_after_s,
        cfg.presence.min_absence_s / 2,
    )


__all__ = [
    "QUEUE_ITEMS",
    "RATE_WINDOW_S",
    "CameraBatch",
    "CameraWorker",
    "Item",
    "RateMeter",
    "ReaderBatch",
    "ReaderWorker",
    "SourceEnded",
    "Worker",
    "reader_silent_after_s",
]
