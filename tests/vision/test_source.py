"""Frame sources on real files: numbered images (with corrupt ones), a video file."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.source import (
    ImageDirSource,
    SourceError,
    VideoFileSource,
    jpeg_size,
    open_capture,
    open_file_source,
    reduction_for,
    source_kind,
)


@pytest.fixture()
def excerpt(pets_footage: Path, tmp_path: Path) -> Path:
    """Frames 11..16 of PETS09 with their own names, plus a corrupt and an empty file."""
    out = tmp_path / "img1"
    out.mkdir()
    for n in range(11, 17):
        shutil.copy(pets_footage / "img1" / f"{n:06d}.jpg", out / f"{n:06d}.jpg")
    (out / "000013.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (out / "000015.jpg").write_bytes(b"")
    (out / "notes.txt").write_text("ignored")
    return out


def test_image_directory_keeps_file_numbers_and_skips_corrupt_frames(excerpt: Path) -> None:
    source = ImageDirSource(excerpt, fps=7.0)
    frames = list(source)
    assert [f.index for f in frames] == [11, 12, 14, 16]
    assert [f.ts for f in frames] == pytest.approx([0.0, 1 / 7, 3 / 7, 5 / 7])
    assert all(f.image.shape == (576, 768, 3) and f.image.dtype == np.uint8 for f in frames)
    assert source.counters.frames == 4 and source.counters.corrupt == 2
    assert "000015.jpg" in source.counters.last_error
    assert source.state == "ended"
    assert source.read() is None  # reading past the end stays quiet


def test_pets_numbering_starts_at_one(pets_footage: Path) -> None:
    source = ImageDirSource(pets_footage / "img1", fps=7.0, limit=3, start_ts=100.0)
    frames = list(source)
    assert [f.index for f in frames] == [1, 2, 3]
    assert frames[0].ts == 100.0
    assert len(source) == 3


def test_reduced_decode_reports_original_size(excerpt: Path) -> None:
    source = ImageDirSource(excerpt, fps=7.0, input_size=(416, 416))
    frame = source.read()
    assert frame is not None
    assert source.reduction == 2
    assert frame.image.shape == (288, 384, 3) and frame.scale == 2.0
    assert (frame.width, frame.height) == (768, 576)


@pytest.mark.parametrize(
    ("frame", "model", "expected"),
    [
        ((768, 576), (416, 416), 2),
        ((1920, 1080), (416, 416), 4),
        ((1920, 1080), (640, 640), 2),
        ((640, 480), (640, 640), 1),
        ((3840, 2160), (320, 320), 8),
    ],
)
def test_reduction_keeps_the_pixels_the_model_sees(
    frame: tuple[int, int], model: tuple[int, int], expected: int
) -> None:
    assert reduction_for(frame, model) == expected


def test_stretching_models_need_the_finer_axis() -> None:
    # FastestDet stretches 768x576 to 352x352: 352 rows from 576 is a 0.61 scale, so half-size
    # decoding (288 rows) would lose vertical detail.
    assert reduction_for((768, 576), (352, 352)) == 2
    assert reduction_for((768, 576), (352, 352), stretch=True) == 1


def test_realtime_paces_frames_by_their_timestamps(excerpt: Path) -> None:
    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    source = ImageDirSource(excerpt, fps=7.0, realtime=True, clock=lambda: now[0], sleep=sleep)
    list(source)
    # Frames 11, 12, 14, 16 are due at 0, 1/7, 3/7, 5/7 s after the first.
    assert slept == pytest.approx([1 / 7, 2 / 7, 2 / 7])


def test_missing_or_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        ImageDirSource(tmp_path / "nope", fps=7.0)
    with pytest.raises(SourceError, match="no numbered images"):
        ImageDirSource(tmp_path, fps=7.0)


@pytest.fixture()
def video(pets_footage: Path, tmp_path: Path) -> Path:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 14.0, (768, 576))
    for n in range(1, 15):
        writer.write(cv2.imread(str(pets_footage / "img1" / f"{n:06d}.jpg")))
    writer.release()
    return path


def test_video_file_frames_and_timestamps(video: Path) -> None:
    source = VideoFileSource(video)
    frames = list(source)
    assert [f.index for f in frames] == list(range(1, 15))
    assert frames[1].ts == pytest.approx(1 / 14)
    assert source.state == "ended" and source.counters.corrupt == 0


def test_video_file_drops_frames_evenly_to_the_processing_rate(video: Path) -> None:
    source = VideoFileSource(video, fps=7.0)
    frames = list(source)
    assert [f.index for f in frames] == [1, 3, 5, 7, 9, 11, 13]
    assert source.counters.dropped == 7


def test_source_kind_and_factory(excerpt: Path, video: Path) -> None:
    assert source_kind(str(excerpt)) == "images"
    assert source_kind(str(video)) == "video"
    assert source_kind(0) == "live" and source_kind("2") == "live"
    assert source_kind("/dev/video0") == "live"
    assert source_kind("rtsp://10.0.0.5/stream1") == "live"
    assert isinstance(open_file_source(str(excerpt), 7.0, False), ImageDirSource)
    assert isinstance(open_file_source(str(video), 7.0, False), VideoFileSource)
    with pytest.raises(SourceError, match="LiveCapture"):
        open_file_source("rtsp://10.0.0.5/stream1", 7.0, False)


def test_open_capture_reports_what_it_could_not_open() -> None:
    with pytest.raises(SourceError, match=r"cannot open http://127.0.0.1:9/x.mjpg"):
        open_capture("http://127.0.0.1:9/x.mjpg", open_timeout_s=1.0, read_timeout_s=1.0)
    with pytest.raises(SourceError, match="cannot open /dev/video99"):
        open_capture("/dev/video99")


def test_jpeg_frames_defer_the_colour_decode(excerpt: Path) -> None:
    source = ImageDirSource(excerpt, fps=7.0, input_size=(416, 416))
    frames = list(source)
    # the same frames and corrupt-file handling as the eager path: headers are checked in read()
    assert [f.index for f in frames] == [11, 12, 14, 16]
    assert source.counters.corrupt == 2
    assert not any(f.decoded for f in frames)
    assert all((f.width, f.height) == (768, 576) and f.scale == 2.0 for f in frames)
    reduced = frames[0].reduced_grey(4)
    assert reduced is not None
    grey, factor = reduced
    assert factor == 4 and grey.shape == (144, 192)
    assert not frames[0].decoded  # the grey picture did not need the colour one
    eager = ImageDirSource(excerpt, fps=7.0, input_size=(416, 416), defer_decode=False)
    for deferred, decoded in zip(frames, eager, strict=True):
        assert decoded.decoded
        np.testing.assert_array_equal(deferred.image, decoded.image)
        assert deferred.decoded and deferred.reduced_grey(4) is None


def test_jpeg_size_reads_headers_only(pets_footage: Path) -> None:
    data = (pets_footage / "img1" / "000001.jpg").read_bytes()
    assert jpeg_size(data) == (768, 576)
    assert jpeg_size(data[:200]) is None  # cut before the start of scan
    assert jpeg_size(b"\xff\xd8\xff\xe0 this is not a jpeg") is None
    assert jpeg_size(b"") is None
    ok, png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    assert ok and jpeg_size(png.tobytes()) is None


def test_undecodable_jpeg_data_becomes_a_grey_frame_and_counts(
    pets_footage: Path, tmp_path: Path
) -> None:
    data = bytearray((pets_footage / "img1" / "000001.jpg").read_bytes())
    # A Huffman table whose code counts add up to more than 256 codes: the headers still
    # parse (jpeg_size finds SOF and SOS) but libjpeg refuses to decode the picture.
    dht = data.index(b"\xff\xc4")
    data[dht + 5 : dht + 21] = bytes([255] * 16)
    (tmp_path / "000001.jpg").write_bytes(bytes(data))
    source = ImageDirSource(tmp_path, fps=7.0, input_size=(416, 416))
    frame = source.read()
    assert frame is not None and source.counters.corrupt == 0
    grey = frame.reduced_grey(4)  # the gate's decode fails first...
    assert grey is not None and int(grey[0].min()) == int(grey[0].max()) == 128
    image = frame.image  # never raises: the failed decode is a uniform grey picture
    assert image.shape == (288, 384, 3) and int(image.min()) == int(image.max()) == 128
    # ...and the frame is counted corrupt once, not once per decode attempted.
    assert source.counters.corrupt == 1 and "000001.jpg" in source.counters.last_error
