"""OnnxDetector on the real shared models and real PETS09 frames, plus letterbox maths."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.vision.test_models import reshape_model
from vision.config import DetectorConfig
from vision.detector import LetterboxMeta, OnnxDetector, letterbox_geometry
from vision.models import ModelError, ModelSpec, resolve_model

FRAMES = (1, 120, 250, 400, 550, 700)
# Per-model confidence (FastestDet needs >= 0.5, MANIFEST.md) and the share of ground-truth
# people it must find at IoU >= 0.5 / the share of its boxes that must be on a person.
MODELS = {
    "yolox_nano": (0.3, 0.85, 0.6),
    "yolox_nano_ultralytics_io": (0.3, 0.85, 0.6),
    "fastestdet": (0.5, 0.65, 0.4),
}


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def gt_boxes(footage: Path, frame: int) -> np.ndarray:
    gt = np.loadtxt(footage / "gt" / "gt.txt", delimiter=",")
    rows = gt[(gt[:, 0] == frame) & (gt[:, 6] == 1)][:, 2:6].copy()
    rows[:, 2:] += rows[:, :2]
    return rows


def frame_path(footage: Path, index: int) -> Path:
    return footage / "img1" / f"{index:06d}.jpg"


@pytest.mark.parametrize("name", list(MODELS))
def test_detects_the_annotated_people_on_pets09(name: str, pets_footage: Path) -> None:
    conf, min_recall, min_precision = MODELS[name]
    detector = OnnxDetector(resolve_model(name), DetectorConfig(confidence=conf, threads=1))
    found = total = on_person = boxes = 0
    for index in FRAMES:
        image = cv2.imread(str(frame_path(pets_footage, index)))
        dets = detector.detect(image)
        assert dets.xyxy.dtype == np.float32 and (dets.track_ids == -1).all()
        assert (dets.scores >= conf).all()
        # Boxes are in original-frame pixels and inside the frame.
        assert (dets.xyxy[:, [0, 2]] <= 768).all() and (dets.xyxy[:, [1, 3]] <= 576).all()
        gt = gt_boxes(pets_footage, index)
        ious = iou_matrix(gt, dets.xyxy) if len(dets) else np.zeros((len(gt), 1))
        found += int((ious.max(axis=1) >= 0.5).sum())
        total += len(gt)
        on_person += int((ious.max(axis=0) >= 0.5).sum()) if len(dets) else 0
        boxes += len(dets)
    assert found / total >= min_recall, f"{name}: found {found} of {total} people"
    assert on_person / boxes >= min_precision, f"{name}: {on_person} of {boxes} boxes on people"


def test_reduced_decode_lands_on_the_same_people(pets_footage: Path) -> None:
    detector = OnnxDetector(resolve_model("yolox_nano"), DetectorConfig(threads=1))
    path = str(frame_path(pets_footage, 250))
    full = detector.detect(cv2.imread(path))
    half = detector.detect(cv2.imread(path, cv2.IMREAD_REDUCED_COLOR_2), source_scale=2.0)
    assert len(full) >= 4
    ious = iou_matrix(full.xyxy, half.xyxy)
    assert (ious.max(axis=1) >= 0.7).mean() >= 0.8


def _spec(**changes: object) -> ModelSpec:
    base = ModelSpec(
        name="t",
        path=Path("t.onnx"),
        layout="yolox",
        input_width=416,
        input_height=416,
        colour_order="bgr",
        scale=1.0,
        letterbox="top_left",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("letterbox", "expected"),
    [
        ("top_left", (416, 312, 0, 0)),
        ("center", (416, 312, 0, 52)),
        ("stretch", (416, 416, 0, 0)),
    ],
)
def test_letterbox_geometry(letterbox: str, expected: tuple[int, int, int, int]) -> None:
    new_w, new_h, rx, ry, pad_x, pad_y = letterbox_geometry(768, 576, _spec(letterbox=letterbox))
    assert (new_w, new_h, pad_x, pad_y) == expected
    assert rx == pytest.approx(new_w / 768) and ry == pytest.approx(new_h / 576)


@pytest.mark.parametrize("letterbox", ["top_left", "center", "stretch"])
@pytest.mark.parametrize("source_scale", [1.0, 2.0])
def test_boxes_map_back_to_original_pixels(letterbox: str, source_scale: float) -> None:
    frame_w, frame_h = 640 / source_scale, 360 / source_scale  # the decoded image
    _, _, rx, ry, px, py = letterbox_geometry(
        int(frame_w), int(frame_h), _spec(letterbox=letterbox)
    )
    meta = LetterboxMeta(int(frame_w), int(frame_h), rx, ry, px, py, source_scale)
    original = np.array([[100.0, 50.0, 180.0, 300.0], [0.0, 0.0, 640.0, 360.0]], np.float32)
    in_input = original.copy()
    in_input[:, 0::2] = original[:, 0::2] / source_scale * rx + px
    in_input[:, 1::2] = original[:, 1::2] / source_scale * ry + py
    np.testing.assert_allclose(meta.to_frame(in_input), original, atol=1e-3)
    # Boxes reaching into the padding are clipped to the frame.
    outside = np.array([[-50.0, -50.0, 1000.0, 1000.0]], np.float32)
    np.testing.assert_allclose(meta.to_frame(outside), [[0, 0, 640, 360]], atol=1e-3)


@pytest.mark.parametrize("name", list(MODELS))
def test_preprocess_fills_canvas_colour_order_and_scale(name: str) -> None:
    spec = resolve_model(name)
    detector = OnnxDetector(spec, DetectorConfig(threads=1))
    frame = np.empty((576, 768, 3), np.uint8)
    frame[:] = (10, 20, 30)  # B, G, R
    tensor, meta = detector.preprocess(frame)
    assert tensor.shape == (1, 3, spec.input_height, spec.input_width)
    assert tensor.dtype == np.float32
    _, new_h, _, _, _, pad_y = letterbox_geometry(768, 576, spec)
    bgr = np.array([10, 20, 30], np.float32)
    order = bgr[::-1] if spec.colour_order == "rgb" else bgr
    inside = tensor[0, :, pad_y + new_h // 2, spec.input_width // 2]
    np.testing.assert_allclose(inside, order * spec.scale, rtol=1e-5)
    if spec.letterbox != "stretch":
        # pad rows below (top_left) or above and below (center) hold the pad grey
        np.testing.assert_allclose(tensor[0, :, -1, :], spec.pad_value * spec.scale, rtol=1e-5)
    assert meta.pad_y == pad_y


def test_preprocess_refills_padding_when_the_frame_size_changes() -> None:
    detector = OnnxDetector(resolve_model("yolox_nano"), DetectorConfig(threads=1))
    detector.preprocess(np.full((416, 416, 3), 200, np.uint8))  # no padding at all
    tensor, meta = detector.preprocess(np.full((208, 416, 3), 200, np.uint8))
    assert meta.pad_y == 0 and tensor[0, 0, 300, 10] == 114  # the old pixels are gone


def test_unknown_layout_fails_at_load(tmp_path: Path) -> None:
    path = reshape_model(tmp_path / "odd.onnx", (32, 32), [1, 3, 1024])
    spec = _spec(path=path, input_width=32, input_height=32)
    with pytest.raises(ModelError, match="unknown output layout"):
        OnnxDetector(spec, DetectorConfig(threads=1))


def test_declared_layout_must_match_the_file(models_dir: Path) -> None:
    spec = replace(resolve_model("fastestdet"), layout="yolox")
    with pytest.raises(ModelError, match=r"fastestdet output .* declared yolox"):
        OnnxDetector(spec, DetectorConfig(threads=1))


def test_provider_that_is_not_installed_is_refused() -> None:
    cfg = DetectorConfig(provider="NoSuchExecutionProvider")
    with pytest.raises(ModelError, match=r"not installed.*CPUExecutionProvider"):
        OnnxDetector(resolve_model("fastestdet"), cfg)


def test_empty_scene_gives_no_people() -> None:
    detector = OnnxDetector(resolve_model("yolox_nano"), DetectorConfig(threads=1))
    dets = detector.detect(np.full((480, 640, 3), 128, np.uint8))
    assert len(dets) == 0
