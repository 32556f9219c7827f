"""OnnxDetector: one frame in, person boxes in original-frame pixels out.

Split into preprocess / infer / postprocess so the bench can time each stage. Preprocessing
resizes straight into a preallocated letterbox canvas and converts it into a preallocated input
tensor (no per-frame allocation of the big arrays); decoding, the score filter and NMS are
vectorised numpy / OpenCV.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from vision.config import DetectorConfig
from vision.detections import Detections
from vision.models import ModelError, ModelSpec, infer_layout

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
# Frames come from OpenCV, whose stubs type images loosely; any uint8 (H, W, 3) array works.
Image = npt.NDArray[Any]


@dataclass(frozen=True, slots=True)
class LetterboxMeta:
    """How a frame was mapped into the network input, to map boxes back.

    input_x = frame_x * ratio_x + pad_x (same for y); source_scale converts the frame given to
    preprocess into original-frame pixels (2.0 when the source decoded it at half size).
    """

    frame_width: int
    frame_height: int
    ratio_x: float
    ratio_y: float
    pad_x: int
    pad_y: int
    source_scale: float = 1.0

    def to_frame(self, xyxy: F32) -> F32:
        """Boxes from network-input pixels to original-frame pixels, clipped to the frame."""
        out = np.empty_like(xyxy)
        sx = self.source_scale / self.ratio_x
        sy = self.source_scale / self.ratio_y
        out[:, 0::2] = (xyxy[:, 0::2] - self.pad_x) * sx
        out[:, 1::2] = (xyxy[:, 1::2] - self.pad_y) * sy
        np.clip(out[:, 0::2], 0.0, self.frame_width * self.source_scale, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0.0, self.frame_height * self.source_scale, out=out[:, 1::2])
        return out


Preprocessor = Callable[[Any, float], tuple[F32, Any]]


class Detector(Protocol):
    """What the pipeline needs from a detector (OnnxDetector, or a FakeDetector in tests)."""

    def preprocess(self, frame: Image, source_scale: float = 1.0) -> tuple[F32, Any]: ...

    def make_preprocessor(self) -> Preprocessor: ...

    def infer(self, tensor: F32) -> list[npt.NDArray[np.float32]]: ...

    def postprocess(self, outputs: list[npt.NDArray[np.float32]], meta: Any) -> Detections: ...


def letterbox_geometry(
    frame_width: int, frame_height: int, spec: ModelSpec
) -> tuple[int, int, float, float, int, int]:
    """(resized_w, resized_h, ratio_x, ratio_y, pad_x, pad_y) for a frame of this size."""
    in_w, in_h = spec.input_width, spec.input_height
    if spec.letterbox == "stretch":
        return in_w, in_h, in_w / frame_width, in_h / frame_height, 0, 0
    ratio = min(in_w / frame_width, in_h / frame_height)
    new_w = min(in_w, max(1, round(frame_width * ratio)))
    new_h = min(in_h, max(1, round(frame_height * ratio)))
    if spec.letterbox == "center":
        pad_x, pad_y = (in_w - new_w) // 2, (in_h - new_h) // 2
    else:
        pad_x, pad_y = 0, 0
    # The effective ratio per axis after rounding, so undoing it lands on the original pixels.
    return new_w, new_h, new_w / frame_width, new_h / frame_height, pad_x, pad_y


def _yolox_grid(width: int, height: int) -> tuple[F32, F32]:
    grids: list[F32] = []
    strides: list[F32] = []
    for stride in (8, 16, 32):
        gh, gw = height // stride, width // stride
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32))
        strides.append(np.full(gh * gw, stride, dtype=np.float32))
    return np.concatenate(grids), np.concatenate(strides)


def _nms(xyxy: F32, scores: F32, iou: float) -> npt.NDArray[np.intp]:
    if len(scores) == 0:
        return np.zeros(0, dtype=np.intp)
    xywh = xyxy.copy()
    xywh[:, 2:] -= xyxy[:, :2]
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), 0.0, iou)
    return np.asarray(keep, dtype=np.intp).reshape(-1)


class Letterboxer:
    """Letterboxes frames into a model's input tensor, in buffers it allocates once.

    Each call overwrites the tensor returned by the previous call. Resizing writes straight
    into the canvas; only the picture rows are converted to float (the padding rows of the
    tensor are written once per frame size); cv2.split then fills each channel plane.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        shape = (spec.input_height, spec.input_width)
        self._canvas: U8 = np.full((*shape, 3), spec.pad_value, dtype=np.uint8)
        self._tensor: F32 = np.zeros((1, 3, *shape), np.float32)
        self._hwc: F32 = np.zeros((*shape, 3), np.float32)
        planes = [self._tensor[0, c] for c in range(3)]
        # Views of the tensor's channel planes in the order the model wants them.
        self._planes = planes[::-1] if spec.colour_order == "rgb" else planes
        self._geometry_key: tuple[int, int] | None = None
        self._geometry = (0, 0, 1.0, 1.0, 0, 0)
        self._rows = slice(0, spec.input_height)

    def _convert(self, rows: slice) -> None:
        canvas, hwc = self._canvas[rows], self._hwc[rows]
        # uint8 HWC -> float32 HWC in one contiguous pass, then cv2.split writes each channel
        # into its plane of the NCHW tensor: about 3x faster than a strided transpose.
        if self.spec.scale == 1.0:
            np.copyto(hwc, canvas, casting="unsafe")
        else:
            np.multiply(canvas, np.float32(self.spec.scale), out=hwc, casting="unsafe")
        cv2.split(hwc, [plane[rows] for plane in self._planes])

    def __call__(self, frame: Image, source_scale: float = 1.0) -> tuple[F32, LetterboxMeta]:
        # A grey or BGRA frame was resized beside the canvas, not into it, and gave 0 boxes
        # with no error; an empty one raised ZeroDivisionError in letterbox_geometry.
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.size == 0:
            raise ValueError(
                f"the detector needs a non-empty 3-channel BGR frame (height, width, 3), "
                f"got an array of shape {frame.shape}"
            )
        height, width = frame.shape[:2]
        if self._geometry_key != (width, height):
            self._geometry = letterbox_geometry(width, height, self.spec)
            self._geometry_key = (width, height)
            self._canvas.fill(self.spec.pad_value)
            self._convert(slice(0, self.spec.input_height))  # the padding, once
            new_w, new_h, _, _, _, pad_y = self._geometry
            # When the picture spans the full width, only its rows change from frame to frame.
            full_width = new_w == self.spec.input_width
            self._rows = (
                slice(pad_y, pad_y + new_h) if full_width else slice(0, self.spec.input_height)
            )
        new_w, new_h, ratio_x, ratio_y, pad_x, pad_y = self._geometry
        roi = self._canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w]
        if (new_w, new_h) == (width, height):
            roi[...] = frame
        else:
            # Resizing into the canvas view writes the letterbox in place: no temporary image.
            cv2.resize(frame, (new_w, new_h), dst=roi, interpolation=cv2.INTER_LINEAR)
        self._convert(self._rows)
        meta = LetterboxMeta(width, height, ratio_x, ratio_y, pad_x, pad_y, source_scale)
        return self._tensor, meta


class OnnxDetector:
    """Person detector on ONNX Runtime for the ultralytics, YOLOX and FastestDet layouts."""

    def __init__(self, spec: ModelSpec, cfg: DetectorConfig | None = None) -> None:
        self.spec = spec
        self.cfg = cfg or DetectorConfig()
        available = ort.get_available_providers()
        if self.cfg.provider not in available:
            raise ModelError(
                f"ONNX Runtime provider {self.cfg.provider!r} is not installed "
                f"(available: {', '.join(available)})"
            )
        options = ort.SessionOptions()
        # One camera's inference uses the cores it is given; no inter-op parallelism because
        # these graphs are a single chain, and ALL optimisations fuse conv+activation.
        options.intra_op_num_threads = self.cfg.effective_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle intra-op workers would otherwise spin for a while after each run, burning the
        # core that decoding, tracking and the other cameras need (measured: about +50% CPU
        # per frame on 2 cores for a few % of inference speed; BENCHMARKS.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = [self.cfg.provider]
        if self.cfg.provider != "CPUExecutionProvider":
            providers.append("CPUExecutionProvider")
        try:
            self._session = ort.InferenceSession(str(spec.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{spec.path}: cannot be loaded by ONNX Runtime: {exc}") from exc
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        if len(inputs) != 1:
            raise ModelError(f"{spec.path}: expected one image input, found {len(inputs)}")
        metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        try:
            found = infer_layout(inputs[0].shape, [o.shape for o in outputs], metadata)
        except ModelError as exc:
            raise ModelError(f"{spec.path}: {exc}") from exc
        if found[:3] != (spec.layout, spec.input_width, spec.input_height):
            raise ModelError(
                f"{spec.path}: the file has a {found[0]} output for a {found[1]}x{found[2]} "
                f"input but model {spec.name!r} is declared {spec.layout} "
                f"{spec.input_width}x{spec.input_height}"
            )
        if spec.min_confidence is not None and self.cfg.confidence < spec.min_confidence:
            log.warning(
                "model %s gives duplicate or false boxes below confidence %.2f (configured %.2f)",
                spec.name,
                spec.min_confidence,
                self.cfg.confidence,
            )
        self._input_name = inputs[0].name
        self._output_names = [o.name for o in outputs]
        self._letterboxer = Letterboxer(spec)
        self._grid, self._strides = _yolox_grid(spec.input_width, spec.input_height)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.spec.input_width, self.spec.input_height

    @property
    def stretches_input(self) -> bool:
        """True when frames are resized to the input without letterbox (both axes matter)."""
        return self.spec.letterbox == "stretch"

    def preprocess(self, frame: Image, source_scale: float = 1.0) -> tuple[F32, LetterboxMeta]:
        """Letterbox a BGR uint8 frame into the input tensor.

        The returned tensor is a buffer owned by the detector, overwritten by the next call;
        copy it to keep it.
        """
        return self._letterboxer(frame, source_scale)

    def make_preprocessor(self) -> Letterboxer:
        """A preprocessor with its own buffers, e.g. for preparing frames ahead elsewhere."""
        return Letterboxer(self.spec)

    def infer(self, tensor: F32) -> list[npt.NDArray[np.float32]]:
        outputs = self._session.run(self._output_names, {self._input_name: tensor})
        return [np.asarray(o) for o in outputs]

    def postprocess(
        self, outputs: list[npt.NDArray[np.float32]], meta: LetterboxMeta
    ) -> Detections:
        if self.spec.layout == "ultralytics":
            boxes, scores = self._decode_ultralytics(outputs[0])
        elif self.spec.layout == "yolox":
            boxes, scores = self._decode_yolox(outputs[0])
        else:
            boxes, scores = self._decode_fastestdet(outputs[0])
        if len(scores) == 0:
            return Detections.empty()
        xyxy = meta.to_frame(boxes)
        keep = _nms(xyxy, scores, self.cfg.nms_iou)
        return Detections.from_arrays(xyxy[keep], scores[keep])

    def detect(self, frame: Image, source_scale: float = 1.0) -> Detections:
        tensor, meta = self.preprocess(frame, source_scale)
        return self.postprocess(self.infer(tensor), meta)

    # Decoders return (xyxy in network-input pixels, scores) of the person candidates above the
    # confidence threshold; they filter before decoding so only a handful of rows are touched.

    def _decode_ultralytics(self, out: F32) -> tuple[F32, F32]:
        pred = out[0]  # (4 + nc, N)
        scores = pred[4 + self.spec.person_class]
        keep = np.flatnonzero(scores >= self.cfg.confidence)
        cx, cy, w, h = pred[:4, keep]
        xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        return xyxy.astype(np.float32, copy=False), scores[keep].astype(np.float32)

    def _decode_yolox(self, out: F32) -> tuple[F32, F32]:
        pred = out[0]  # (N, 5 + nc); objectness and class scores already sigmoid
        scores = pred[:, 4] * pred[:, 5 + self.spec.person_class]
        keep = np.flatnonzero(scores >= self.cfg.confidence)
        rows = pred[keep]
        stride = self._strides[keep]
        cx = (rows[:, 0] + self._grid[keep, 0]) * stride
        cy = (rows[:, 1] + self._grid[keep, 1]) * stride
        w = np.exp(rows[:, 2]) * stride
        h = np.exp(rows[:, 3]) * stride
        xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        return xyxy.astype(np.float32, copy=False), scores[keep].astype(np.float32)

    def _decode_fastestdet(self, out: F32) -> tuple[F32, F32]:
        pred = out[0]  # (5 + nc, H, W): obj, tx, ty, tw, th, softmaxed classes
        grid_h, grid_w = pred.shape[1:]
        flat = pred.reshape(pred.shape[0], -1)
        person = flat[5 + self.spec.person_class]
        scores = np.power(flat[0], 0.6) * np.power(person, 0.4)
        keep = np.flatnonzero(scores >= self.cfg.confidence)
        # Class filter: the cell's best class must be person, as the upstream decoder does.
        keep = keep[np.argmax(flat[5:, keep], axis=0) == self.spec.person_class]
        gy, gx = np.divmod(keep, grid_w)
        cx = (gx + np.tanh(flat[1, keep])) / grid_w * self.spec.input_width
        cy = (gy + np.tanh(flat[2, keep])) / grid_h * self.spec.input_height
        w = 1.0 / (1.0 + np.exp(-flat[3, keep])) * self.spec.input_width
        h = 1.0 / (1.0 + np.exp(-flat[4, keep])) * self.spec.input_height
        xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        return xyxy.astype(np.float32, copy=False), scores[keep].astype(np.float32)


__all__ = [
    "Detector",
    "LetterboxMeta",
    "Letterboxer",
    "OnnxDetector",
    "Preprocessor",
    "letterbox_geometry",
]
