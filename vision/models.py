"""Which ONNX file a camera's `model:` names, how to feed it, and whether it is the right file.

A name is looked up in models/manifest.yaml (installed: <prefix>/share/footfall/models), plus
any manifest.yaml in a model directory, and its file searched for in FOOTFALL_MODELS_DIR
(os.pathsep-separated), /var/lib/footfall/models and the repo's models/ folder, in that order. The file's sha256 must match the manifest. A path to an
.onnx file with no manifest entry is inspected instead: the output shape and the ultralytics
metadata (`imgsz`, `names`) tell the layout.
"""

from __future__ import annotations

import ast
import hashlib
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml

Layout = Literal["ultralytics", "yolox", "fastestdet"]
LetterboxStyle = Literal["top_left", "center", "stretch"]
ColourOrder = Literal["bgr", "rgb"]

REPO_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
# Where a non-editable install puts the manifest (setup.cfg data_files: share/footfall/models).
INSTALLED_MODELS_DIR = Path(sys.prefix) / "share" / "footfall" / "models"
SYSTEM_MODELS_DIR = Path("/var/lib/footfall/models")
MANIFEST_NAME = "manifest.yaml"
ENV_MODELS_DIR = "FOOTFALL_MODELS_DIR"
_LAYOUTS: tuple[str, ...] = ("ultralytics", "yolox", "fastestdet")
_LETTERBOXES: tuple[str, ...] = ("top_left", "center", "stretch")
# YOLOX and ultralytics heads both predict on strides 8, 16 and 32; FastestDet on stride 16 only.
_YOLO_STRIDES = (8, 16, 32)
_FASTESTDET_STRIDE = 16


class ModelError(Exception):
    """A model cannot be used: unknown name, missing file, wrong hash or unknown layout."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Everything the detector needs to feed a model and decode its output."""

    name: str
    path: Path
    layout: Layout
    input_width: int
    input_height: int
    colour_order: ColourOrder
    scale: float
    letterbox: LetterboxStyle
    pad_value: int = 114
    num_classes: int = 80
    person_class: int = 0
    sha256: str | None = None
    min_confidence: float | None = None
    licence: str = ""
    source: str = ""


def model_dirs() -> list[Path]:
    """The directories searched for model files, in priority order."""
    dirs: list[Path] = []
    for part in os.environ.get(ENV_MODELS_DIR, "").split(os.pathsep):
        if part.strip():
            dirs.append(Path(part.strip()).expanduser())
    dirs += [SYSTEM_MODELS_DIR, REPO_MODELS_DIR]
    return dirs


def _entry_spec(name: str, entry: Mapping[str, Any], where: str) -> ModelSpec:
    try:
        width, height = (int(v) for v in entry["input"])
        layout = str(entry["layout"])
        letterbox = str(entry.get("letterbox", "center"))
        colour = str(entry.get("colour_order", "rgb")).lower()
        if layout not in _LAYOUTS:
            raise ValueError(f"layout {layout!r} is not one of {', '.join(_LAYOUTS)}")
        if letterbox not in _LETTERBOXES:
            raise ValueError(f"letterbox {letterbox!r} is not one of {', '.join(_LETTERBOXES)}")
        if colour not in ("bgr", "rgb"):
            raise ValueError(f"colour_order {colour!r} is not bgr or rgb")
        min_conf = entry.get("min_confidence")
        return ModelSpec(
            name=name,
            path=Path(str(entry["file"])),
            layout=layout,  # type: ignore[arg-type]
            input_width=width,
            input_height=height,
            colour_order=colour,  # type: ignore[arg-type]
            scale=float(entry.get("scale", 1.0)),
            letterbox=letterbox,  # type: ignore[arg-type]
            pad_value=int(entry.get("pad_value", 114)),
            num_classes=int(entry.get("num_classes", 80)),
            person_class=int(entry.get("person_class", 0)),
            sha256=str(entry["sha256"]).lower() if entry.get("sha256") else None,
            min_confidence=None if min_conf is None else float(min_conf),
            licence=str(entry.get("licence", "")),
            source=str(entry.get("source", "")).strip(),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{where}: model {name!r} entry is invalid: {exc}") from exc


def load_manifest(dirs: Sequence[Path] | None = None) -> dict[str, ModelSpec]:
    """Manifest entries by name; a model directory's manifest.yaml overrides the repo's.

    Paths in the returned specs are bare file names, not yet resolved to a directory.
    """
    search = list(model_dirs() if dirs is None else dirs)
    shipped = next(
        (
            d / MANIFEST_NAME
            for d in (REPO_MODELS_DIR, INSTALLED_MODELS_DIR)
            if (d / MANIFEST_NAME).is_file()
        ),
        REPO_MODELS_DIR / MANIFEST_NAME,
    )
    files = [shipped] + [d / MANIFEST_NAME for d in reversed(search)]
    specs: dict[str, ModelSpec] = {}
    seen: set[Path] = set()
    for file in files:
        if file in seen or not file.is_file():
            continue
        seen.add(file)
        try:
            doc = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ModelError(f"{file}: not valid YAML: {exc}") from exc
        models = doc.get("models") if isinstance(doc, dict) else None
        if not isinstance(models, dict):
            raise ModelError(f"{file}: expected a 'models:' mapping of name -> entry")
        for name, entry in models.items():
            if not isinstance(entry, dict):
                raise ModelError(f"{file}: model {name!r} entry must be a mapping")
            specs[str(name)] = _entry_spec(str(name), entry, str(file))
    return specs


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _looks_like_path(name_or_path: str) -> bool:
    return name_or_path.endswith(".onnx") or "/" in name_or_path or os.sep in name_or_path


def resolve_model(name_or_path: str, verify: bool = True) -> ModelSpec:
    """Find, verify and describe a model given by manifest name or by .onnx path.

    Raises:
        ModelError: unknown name, file not found (the message lists where it looked), a file
            or directory the service user may not read, sha256 mismatch, or (for an unlisted
            file) an output layout footfall cannot decode.
    """
    try:
        return _resolve_model(name_or_path, verify)
    except OSError as exc:
        # A models directory installed root-only makes Path.is_file() raise EACCES: the
        # technician must see which file and why, as a config error, not a traceback.
        where = f" ({exc.filename})" if exc.filename else ""
        raise ModelError(
            f"model {name_or_path!r}: cannot read{where}: {exc.strerror or exc}"
        ) from exc


def _resolve_model(name_or_path: str, verify: bool) -> ModelSpec:
    dirs = model_dirs()
    manifest = load_manifest(dirs)
    if _looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ModelError(f"model file {path} not found")
        digest = sha256_of(path)
        for spec in manifest.values():
            if spec.sha256 == digest:
                return replace(spec, path=path)
        return inspect_onnx(path)
    if name_or_path not in manifest:
        known = ", ".join(sorted(manifest)) or "none"
        raise ModelError(
            f"unknown model {name_or_path!r}: not in the manifest (known: {known}); "
            "give a manifest name or a path to an .onnx file"
        )
    spec = manifest[name_or_path]
    candidates = [d / spec.path for d in dirs]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        looked = ", ".join(str(d) for d in dirs)
        raise ModelError(
            f"model {spec.name!r}: file {spec.path} not found in any model directory "
            f"(looked in {looked}; set {ENV_MODELS_DIR} or copy the file there)"
        )
    if verify and spec.sha256 is not None:
        actual = sha256_of(found)
        if actual != spec.sha256:
            raise ModelError(
                f"model {spec.name!r}: {found} has sha256 {actual} but the manifest expects "
                f"{spec.sha256}; the file is corrupt or a different model"
            )
    return replace(spec, path=found)


def _grid_cells(width: int, height: int, strides: Sequence[int]) -> int:
    return sum((width // s) * (height // s) for s in strides)


def _parse_imgsz(value: str | None) -> tuple[int, int] | None:
    """ultralytics stores imgsz as '[h, w]' (or one int)."""
    if not value:
        return None
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return None
    if isinstance(parsed, int):
        return parsed, parsed
    if isinstance(parsed, (list, tuple)) and len(parsed) == 2:
        return int(parsed[1]), int(parsed[0])
    return None


def _person_index(names: str | None) -> int:
    if not names:
        return 0
    try:
        parsed = ast.literal_eval(names)
    except (ValueError, SyntaxError):
        return 0
    if isinstance(parsed, dict):
        for key, value in parsed.items():
            if str(value).lower() == "person":
                return int(key)
    return 0


def infer_layout(
    input_shape: Sequence[object],
    output_shapes: Sequence[Sequence[object]],
    metadata: Mapping[str, str],
) -> tuple[Layout, int, int, int]:
    """(layout, input_width, input_height, num_classes) from a model's I/O shapes and metadata.

    Dynamic dimensions come as strings or None. Raises ModelError when nothing fits.
    """
    width = input_shape[3] if len(input_shape) == 4 else None
    height = input_shape[2] if len(input_shape) == 4 else None
    if not (isinstance(width, int) and isinstance(height, int)):
        size = _parse_imgsz(metadata.get("imgsz"))
        if size is None:
            raise ModelError(
                f"input shape {list(input_shape)} has no fixed size and no 'imgsz' metadata"
            )
        width, height = size
    shapes = [list(s) for s in output_shapes]
    if len(shapes) != 1 or len(shapes[0]) not in (3, 4):
        raise ModelError(f"unknown output layout {shapes}: expected one output of rank 3 or 4")
    shape = shapes[0]
    cells = _grid_cells(width, height, _YOLO_STRIDES)
    is_ultralytics_meta = metadata.get("task") == "detect" or "names" in metadata
    if len(shape) == 3:
        _, a, b = shape
        # [1, 4+nc, N]: N may be dynamic in ultralytics exports, then the metadata vouches.
        ultralytics_n = b == cells or (
            is_ultralytics_meta and (not isinstance(b, int) or (isinstance(a, int) and b > a))
        )
        if isinstance(a, int) and a > 4 and ultralytics_n:
            return "ultralytics", width, height, a - 4
        if isinstance(b, int) and b > 5 and a == cells:
            return "yolox", width, height, b - 5
    if len(shape) == 4:
        _, c, gh, gw = shape
        if (
            isinstance(c, int)
            and c > 5
            and gh == height // _FASTESTDET_STRIDE
            and gw == width // _FASTESTDET_STRIDE
        ):
            return "fastestdet", width, height, c - 5
    raise ModelError(
        f"unknown output layout {shape} for a {width}x{height} input: footfall decodes "
        f"ultralytics [1, 4+nc, {cells}], raw YOLOX [1, {cells}, 5+nc] and FastestDet "
        f"[1, 5+nc, {height // _FASTESTDET_STRIDE}, {width // _FASTESTDET_STRIDE}]"
    )


# How each layout is fed when no manifest says otherwise: what its exporter produces.
_DEFAULT_INPUT: dict[str, tuple[ColourOrder, float, LetterboxStyle, int]] = {
    "ultralytics": ("rgb", 1.0 / 255.0, "center", 114),
    "yolox": ("bgr", 1.0, "top_left", 114),
    "fastestdet": ("bgr", 1.0 / 255.0, "stretch", 0),
}


def inspect_onnx(path: Path) -> ModelSpec:
    """Describe an .onnx file that has no manifest entry from its shapes and metadata."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"{path}: cannot be loaded by ONNX Runtime: {exc}") from exc
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"{path}: expected one image input, found {len(inputs)}")
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    try:
        layout, width, height, num_classes = infer_layout(
            inputs[0].shape, [o.shape for o in session.get_outputs()], metadata
        )
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from exc
    colour, scale, letterbox, pad = _DEFAULT_INPUT[layout]
    return ModelSpec(
        name=path.stem,
        path=path,
        layout=layout,
        input_width=width,
        input_height=height,
        colour_order=colour,
        scale=scale,
        letterbox=letterbox,
        pad_value=pad,
        num_classes=num_classes,
        person_class=_person_index(metadata.get("names")),
        licence=metadata.get("license", ""),
        source=metadata.get("description", ""),
    )


__all__ = [
    "ENV_MODELS_DIR",
    "ModelError",
    "ModelSpec",
    "infer_layout",
    "inspect_onnx",
    "load_manifest",
    "model_dirs",
    "resolve_model",
    "sha256_of",
]
