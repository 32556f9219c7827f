"""Frame sources: a directory of numbered images, a video file, and opening a live capture.

Sources are single-threaded: `read()` returns the next Frame or None when there is none (ended,
or a live source with nothing new). A corrupt image or frame is counted and skipped; `read()`
never raises for bad data. Live cameras are read on their own thread by the application
(edge_agent.capture.LiveCapture), which uses `open_capture` from here.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import cv2
import numpy as np
import numpy.typing as npt

SourceState = Literal["connected", "reconnecting", "ended", "failed"]
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
_REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


class SourceError(Exception):
    """A source cannot be opened at all (missing directory, camera that does not exist)."""


_GREY_FLAGS = {
    1: cv2.IMREAD_GRAYSCALE,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}
# JPEG start-of-frame markers (baseline, progressive, lossless...); C4, C8 and CC are not SOFs.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) from a JPEG's headers, or None when the headers are not a JPEG's (SOI,
    a start-of-frame, then start-of-scan). Costs microseconds: no pixel is decoded."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    pos, size = 2, None
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the compressed picture follows
            return size
        if marker == 0xD9 or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            if marker == 0xD9:
                return None
            pos += 2
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < 2:
            return None
        if marker in _SOF_MARKERS and pos + 9 <= len(data):
            height = (data[pos + 5] << 8) | data[pos + 6]
            width = (data[pos + 7] << 8) | data[pos + 8]
            if width == 0 or height == 0:
                return None
            size = (width, height)
        pos += 2 + length
    return None


@dataclass(slots=True)
class _Jpeg:
    """Compressed JPEG data of a frame whose colour decode is deferred (see Frame)."""

    data: npt.NDArray[np.uint8]
    reduction: int
    name: str
    counters: SourceCounters | None
    failed: bool = False  # a decode failed once: counted once, not decoded again


class Frame:
    """One frame.

    image: BGR uint8 (H, W, 3). ts: seconds (source time for files, wall clock for live
    sources). index: frame number, from 1 (image directories: the number in the file name).
    scale: original-frame pixels per image pixel; 2.0 when the source decoded at half size, so
    detections can be reported in the original frame's pixels.

    A JPEG directory source hands out frames whose colour decode is deferred until `image` is
    first read: the motion gate can look at a cheap reduced greyscale decode (`reduced_grey`)
    and a frame it skips is never decoded in colour. A deferred decode that fails (headers
    fine, data not) gives a uniform grey picture, as libjpeg does for a truncated file, and is
    counted as corrupt by the source: reading `image` never raises.
    """

    __slots__ = ("_image", "_jpeg", "_size", "index", "scale", "ts")

    def __init__(
        self, image: npt.NDArray[np.uint8], ts: float, index: int, scale: float = 1.0
    ) -> None:
        self._image: npt.NDArray[np.uint8] | None = image
        self._jpeg: _Jpeg | None = None
        self._size: tuple[int, int] | None = None
        self.ts = ts
        self.index = index
        self.scale = scale

    @classmethod
    def deferred_jpeg(
        cls,
        data: npt.NDArray[np.uint8],
        size: tuple[int, int],
        reduction: int,
        ts: float,
        index: int,
        *,
        name: str = "",
        counters: SourceCounters | None = None,
    ) -> Frame:
        """A frame of compressed JPEG `data` (original `size` from its headers), decoded at
        1/`reduction` in colour when `image` is first read."""
        frame = cls.__new__(cls)
        frame._image = None
        frame._jpeg = _Jpeg(data, reduction, name, counters)
        frame._size = size
        frame.ts = ts
        frame.index = index
        frame.scale = float(reduction)
        return frame

    @property
    def decoded(self) -> bool:
        """True once the colour image exists (always for frames built from an image)."""
        return self._image is not None

    @property
    def image(self) -> npt.NDArray[np.uint8]:
        if self._image is None:
            jpeg = self._jpeg
            assert jpeg is not None
            image = None if jpeg.failed else _imdecode(jpeg.data, _REDUCED_FLAGS[jpeg.reduction])
            if image is None or image.ndim != 3:
                self._failed(jpeg)
                width, height = self._reduced_size(jpeg.reduction)
                image = np.full((height, width, 3), 128, np.uint8)
            self._image = cast(npt.NDArray[np.uint8], image)
            self._jpeg = None  # the compressed data is not needed any more
        return self._image

    def reduced_grey(self, factor: int) -> tuple[npt.NDArray[np.uint8], int] | None:
        """A greyscale picture at 1/f of the original size, f the largest of 1, 2, 4, 8 that
        divides `factor`, with f; decoded from the JPEG data without colour (about 0.2 ms less
        than the colour decode for PETS09's 768x576, more for larger frames). None when the
        colour image is already decoded or the frame has no JPEG data: use `image` then."""
        jpeg = self._jpeg
        if jpeg is None or self._image is not None:
            return None
        f = max(d for d in (1, 2, 4, 8) if factor % d == 0)
        grey = None if jpeg.failed else _imdecode(jpeg.data, _GREY_FLAGS[f])
        if grey is None or grey.ndim != 2:
            self._failed(jpeg)
            width, height = self._reduced_size(f)
            grey = np.full((height, width), 128, np.uint8)
        return cast(npt.NDArray[np.uint8], grey), f

    def _reduced_size(self, factor: int) -> tuple[int, int]:
        assert self._size is not None
        # libjpeg's scaled output rounds up
        return -(-self._size[0] // factor), -(-self._size[1] // factor)

    @staticmethod
    def _failed(jpeg: _Jpeg) -> None:
        if jpeg.failed:
            return
        jpeg.failed = True
        if jpeg.counters is not None:
            jpeg.counters.corrupt += 1
            jpeg.counters.last_error = f"{jpeg.name}: JPEG data not decodable"

    @property
    def width(self) -> int:
        """Width of the original frame in pixels."""
        if self._size is not None:
            return self._size[0]
        return round(self.image.shape[1] * self.scale)

    @property
    def height(self) -> int:
        if self._size is not None:
            return self._size[1]
        return round(self.image.shape[0] * self.scale)

    def __repr__(self) -> str:
        return (
            f"Frame(index={self.index}, ts={self.ts}, scale={self.scale}, decoded={self.decoded})"
        )


def _imdecode(data: npt.NDArray[np.uint8], flags: int) -> npt.NDArray[Any] | None:
    try:
        return cv2.imdecode(data, flags)
    except cv2.error:  # some malformed files make libjpeg raise, not fail
        return None


@dataclass(slots=True)
class SourceCounters:
    frames: int = 0
    corrupt: int = 0
    reconnects: int = 0
    dropped: int = 0
    last_error: str = ""


class FrameSource(Protocol):
    @property
    def state(self) -> SourceState: ...

    @property
    def counters(self) -> SourceCounters: ...

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class _Pacer:
    """Sleeps so frames come out at their source time when running in real time."""

    realtime: bool
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    origin: tuple[float, float] | None = field(default=None)

    def wait_until(self, source_ts: float) -> None:
        if not self.realtime:
            return
        now = self.clock()
        if self.origin is None:
            self.origin = (now, source_ts)
            return
        due = self.origin[0] + (source_ts - self.origin[1])
        if due > now:
            self.sleep(due - now)


def reduction_for(
    frame_size: tuple[int, int],
    input_size: tuple[int, int],
    keep: float = 0.9,
    stretch: bool = False,
) -> int:
    """Largest JPEG DCT reduction (1, 2, 4, 8) that still gives the detector >= `keep` of the
    pixels its letterbox would take from the full frame (so accuracy is unchanged while the
    decode costs a fraction). A model that stretches the frame to its input (no letterbox)
    needs the resolution of the more demanding axis."""
    fw, fh = frame_size
    pick = max if stretch else min
    ratio = pick(input_size[0] / fw, input_size[1] / fh)
    best = 1
    for factor in (2, 4, 8):
        if 1.0 / factor >= keep * ratio:
            best = factor
    return best


_DIGITS = re.compile(r"(\d+)")


def _frame_number(path: Path) -> int | None:
    found = _DIGITS.findall(path.stem)
    return int(found[-1]) if found else None


class ImageDirSource:
    """A directory of numbered images (000001.jpg ...), the form the test footage comes in.

    Frames keep the number in their file name; ts = start_ts + (number - first) / fps.
    With `input_size` (the detector's), JPEGs are decoded at the smallest 1/2^k scale that
    still covers the letterbox (see `reduction_for`; `stretch` for models without letterbox,
    OnnxDetector.stretches_input).

    JPEG frames come out with their colour decode deferred (`Frame.deferred_jpeg`): `read()`
    only reads the file and checks its headers, so a frame the motion gate skips costs a
    reduced greyscale decode instead of a colour one. `defer_decode=False` decodes in `read()`.
    Other formats are always decoded in `read()`.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        realtime: bool = False,
        *,
        input_size: tuple[int, int] | None = None,
        stretch: bool = False,
        start_ts: float = 0.0,
        limit: int | None = None,
        defer_decode: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise SourceError(f"image directory {self.path} not found")
        if fps <= 0:
            raise SourceError(f"fps must be > 0, got {fps}")
        numbered = [
            (n, p)
            for p in self.path.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and (n := _frame_number(p)) is not None
        ]
        numbered.sort()
        if limit is not None:
            numbered = numbered[:limit]
        if not numbered:
            raise SourceError(f"image directory {self.path} has no numbered images")
        self._files = numbered
        self._pos = 0
        self.fps = fps
        self.start_ts = start_ts
        self._first = numbered[0][0]
        self._input_size = input_size
        self._stretch = stretch
        self.defer_decode = defer_decode
        self.reduction: int | None = None if input_size is not None else 1
        self._pacer = _Pacer(realtime, clock, sleep)
        self.state: SourceState = "connected"
        self.counters = SourceCounters()

    def __len__(self) -> int:
        return len(self._files)

    @property
    def files(self) -> list[Path]:
        """The image files in frame order."""
        return [path for _, path in self._files]

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def _read_bytes(self, path: Path) -> npt.NDArray[np.uint8] | None:
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as exc:
            self.counters.last_error = f"{path.name}: {exc}"
            return None
        return data if data.size else None

    def _decode_bytes(self, data: npt.NDArray[np.uint8]) -> npt.NDArray[Any] | None:
        if self.reduction is None:
            image = _imdecode(data, cv2.IMREAD_COLOR)
            if image is not None and self._input_size is not None:
                self.reduction = self._reduction((image.shape[1], image.shape[0]))
                if self.reduction > 1:
                    image = _imdecode(data, _REDUCED_FLAGS[self.reduction])
            return image
        return _imdecode(data, _REDUCED_FLAGS[self.reduction])

    def _reduction(self, size: tuple[int, int]) -> int:
        if self._input_size is None:
            return 1
        return reduction_for(size, self._input_size, stretch=self._stretch)

    def _frame(self, number: int, path: Path) -> Frame | None:
        data = self._read_bytes(path)
        if data is None:
            return None
        ts = self.start_ts + (number - self._first) / self.fps
        if self.defer_decode and path.suffix.lower() in (".jpg", ".jpeg"):
            size = jpeg_size(data.data)
            if size is None:
                return None
            if self.reduction is None:
                self.reduction = self._reduction(size)
            return Frame.deferred_jpeg(
                data, size, self.reduction, ts, number, name=path.name, counters=self.counters
            )
        image = self._decode_bytes(data)
        if image is None or image.ndim != 3 or image.shape[2] != 3:
            return None
        return Frame(cast(npt.NDArray[np.uint8], image), ts, number, float(self.reduction or 1))

    def read(self) -> Frame | None:
        while self._pos < len(self._files):
            number, path = self._files[self._pos]
            self._pos += 1
            frame = self._frame(number, path)
            if frame is None:
                self.counters.corrupt += 1
                self.counters.last_error = f"{path.name}: not a decodable image"
                continue
            self._pacer.wait_until(frame.ts)
            self.counters.frames += 1
            return frame
        self.state = "ended"
        return None

    def close(self) -> None:
        self._pos = len(self._files)
        self.state = "ended"


class _SlotGrid:
    """Which frames of a file keep the processing rate: the first at or after each k / fps.

    The next slot used to be the kept frame's time + 1/fps with half a file frame of
    tolerance, which kept frames early: a 25 fps file at fps 10 gave 11.5 frames/s. On a fixed
    grid the intervals vary (0.08 s and 0.12 s) but average exactly 1/fps. After a gap in the
    file (a corrupt stretch) the grid moves on to the first slot after the kept frame, so the
    missed slots are not made up by a burst of consecutive frames.
    """

    # frame times are k / file_fps, slots k / fps: equal ones may differ by rounding
    _EPS_S = 1e-6

    def __init__(self, fps: float) -> None:
        self.period_s = 1.0 / fps
        self._slot = 0

    def keep(self, ts: float) -> bool:
        if ts < self._slot * self.period_s - self._EPS_S:
            return False
        self._slot = max(self._slot + 1, math.floor(ts / self.period_s + self._EPS_S) + 1)
        return True


class VideoFileSource:
    """A video file, decoded with OpenCV/FFmpeg; frames numbered from 1, ts from the file.

    fps below the file's rate drops frames evenly (processing 10 fps out of a 25 fps file):
    the first frame at or after each slot of a fixed grid (k / fps) is kept, so a file yields
    the configured rate however its own rate divides into it. fps None keeps every frame.
    """

    # A corrupt stretch longer than this many frames is treated as the end of the file.
    MAX_CONSECUTIVE_FAILURES = 25

    def __init__(
        self,
        path: str | Path,
        fps: float | None = None,
        realtime: bool = False,
        *,
        start_ts: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"video file {self.path} not found")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise SourceError(f"video file {self.path} cannot be opened")
        file_fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.file_fps = file_fps if file_fps > 0 else (fps or 25.0)
        self.fps = min(fps, self.file_fps) if fps else self.file_fps
        self._frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.start_ts = start_ts
        self._number = 0
        self._slots = _SlotGrid(self.fps)
        self._pacer = _Pacer(realtime, clock, sleep)
        self.state: SourceState = "connected"
        self.counters = SourceCounters()

    def read(self) -> Frame | None:
        failures = 0
        while self.state == "connected":
            try:
                ok, image = self._cap.read()
            except cv2.error as exc:
                ok, image = False, None
                self.counters.last_error = str(exc)
            self._number += 1
            if not ok or image is None:
                beyond_end = self._frame_count <= 0 or self._number >= self._frame_count
                failures += 1
                if beyond_end or failures > self.MAX_CONSECUTIVE_FAILURES:
                    self.close()
                    return None
                self.counters.corrupt += 1
                self.counters.last_error = f"frame {self._number}: not decodable"
                continue
            failures = 0
            file_ts = (self._number - 1) / self.file_fps
            if not self._slots.keep(file_ts):
                self.counters.dropped += 1
                continue
            ts = self.start_ts + file_ts
            self._pacer.wait_until(ts)
            self.counters.frames += 1
            return Frame(cast(npt.NDArray[np.uint8], image), ts, self._number)
        return None

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def close(self) -> None:
        self._cap.release()
        self.state = "ended"


SourceKind = Literal["images", "video", "live"]


def source_kind(source: str | int) -> SourceKind:
    """What a camera's `source:` setting names: an image directory, a video file, or a live
    camera/stream (USB index, /dev/video*, rtsp/http URL)."""
    if isinstance(source, int) or str(source).isdigit():
        return "live"
    text = str(source)
    if "://" in text or text.startswith("/dev/video"):
        return "live"
    path = Path(text).expanduser()
    if path.is_dir():
        return "images"
    return "video"


def open_capture(
    source: str | int, open_timeout_s: float = 10.0, read_timeout_s: float = 10.0
) -> cv2.VideoCapture:
    """Open a live camera or stream without threads; raise SourceError when it cannot open.

    The FFmpeg timeouts make a stalled network stream return from read() instead of blocking
    forever, so the caller's stall detection can act.
    """
    timeouts = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(open_timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(read_timeout_s * 1000),
    ]
    if isinstance(source, int) or str(source).isdigit():
        cap = cv2.VideoCapture(int(source), cv2.CAP_ANY)
        where = f"camera index {source}"
    elif str(source).startswith("/dev/video"):
        cap = cv2.VideoCapture(str(source), cv2.CAP_V4L2)
        where = str(source)
    else:
        cap = cv2.VideoCapture(str(source), cv2.CAP_FFMPEG, timeouts)
        where = str(source)
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"cannot open {where}")
    # Keep the driver queue short: the newest frame matters, not a backlog.
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    return cap


def open_file_source(
    source: str | int,
    fps: float,
    realtime: bool,
    input_size: tuple[int, int] | None = None,
    stretch: bool = False,
) -> ImageDirSource | VideoFileSource:
    """The file-backed source for a camera's `source:` (image directory or video file)."""
    kind = source_kind(source)
    if kind == "images":
        return ImageDirSource(str(source), fps, realtime, input_size=input_size, stretch=stretch)
    if kind == "video":
        return VideoFileSource(str(source), fps, realtime)
    raise SourceError(f"{source} is a live source: read it with edge_agent.capture.LiveCapture")


__all__ = [
    "Frame",
    "FrameSource",
    "ImageDirSource",
    "SourceCounters",
    "SourceError",
    "SourceKind",
    "SourceState",
    "VideoFileSource",
    "jpeg_size",
    "open_capture",
    "open_file_source",
    "reduction_for",
    "source_kind",
]
