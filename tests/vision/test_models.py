"""Model resolution: manifest names, search directories, sha256 checks, layout inference."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from vision.models import (
    ENV_MODELS_DIR,
    ModelError,
    infer_layout,
    load_manifest,
    model_dirs,
    resolve_model,
    sha256_of,
)

SHARED_MODELS = ("yolox_nano", "yolox_nano_ultralytics_io", "fastestdet")


def reshape_model(
    path: Path,
    input_hw: tuple[int, int],
    output_shape: list[int],
    metadata: dict[str, str] | None = None,
) -> Path:
    """A tiny real ONNX graph: flatten the image, take the first elements, reshape them."""
    count = int(np.prod(output_shape))
    h, w = input_hw
    nodes = [
        helper.make_node("Flatten", ["images"], ["flat"], axis=0),
        helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["head"]),
        helper.make_node("Reshape", ["head", "shape"], ["output0"]),
    ]
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [count]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("shape", TensorProto.INT64, [len(output_shape)], output_shape),
    ]
    graph = helper.make_graph(
        nodes,
        "reshape",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, output_shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("name", SHARED_MODELS)
def test_shared_models_resolve_by_name_and_verify(name: str, models_dir: Path) -> None:
    spec = resolve_model(name)
    # The shared folder may be reached through a symlink (../shared in CI): same file.
    assert spec.path.resolve() == (models_dir / f"{name}.onnx").resolve()
    assert spec.sha256 == sha256_of(spec.path)


def test_default_model_is_in_the_manifest() -> None:
    manifest = load_manifest()
    assert set(SHARED_MODELS) <= set(manifest)
    assert manifest["yolox_nano"].layout == "yolox"
    assert manifest["fastestdet"].letterbox == "stretch"


def test_search_order_env_dirs_then_system_then_repo(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_MODELS_DIR, f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    dirs = model_dirs()
    assert dirs[:2] == [tmp_path / "a", tmp_path / "b"]
    assert dirs[2] == Path("/var/lib/footfall/models")
    assert dirs[3].name == "models" and (dirs[3] / "manifest.yaml").is_file()


def test_first_directory_holding_the_file_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, models_dir: Path
) -> None:
    shutil.copy(models_dir / "fastestdet.onnx", tmp_path / "fastestdet.onnx")
    monkeypatch.setenv(ENV_MODELS_DIR, f"{tmp_path}:{models_dir}")
    assert resolve_model("fastestdet").path == tmp_path / "fastestdet.onnx"


def test_missing_file_says_where_it_looked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_MODELS_DIR, str(tmp_path / "empty"))
    with pytest.raises(ModelError) as err:
        resolve_model("yolox_nano")
    message = str(err.value)
    assert "yolox_nano.onnx not found" in message
    assert str(tmp_path / "empty") in message
    assert "/var/lib/footfall/models" in message
    assert ENV_MODELS_DIR in message


def test_sha256_mismatch_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, models_dir: Path
) -> None:
    data = bytearray((models_dir / "fastestdet.onnx").read_bytes())
    data[-1] ^= 0xFF  # one flipped byte: a truncated or tampered download
    (tmp_path / "fastestdet.onnx").write_bytes(bytes(data))
    monkeypatch.setenv(ENV_MODELS_DIR, str(tmp_path))
    with pytest.raises(ModelError) as err:
        resolve_model("fastestdet")
    message = str(err.value)
    assert "sha256" in message
    assert load_manifest()["fastestdet"].sha256 in message
    assert sha256_of(tmp_path / "fastestdet.onnx") in message
    assert resolve_model("fastestdet", verify=False).path == tmp_path / "fastestdet.onnx"


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'yolo_giant'.*yolox_nano"):
        resolve_model("yolo_giant")


def test_missing_path_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        resolve_model(str(tmp_path / "nope.onnx"))


def test_a_listed_file_given_by_path_uses_its_manifest_entry(
    tmp_path: Path, models_dir: Path
) -> None:
    copy = tmp_path / "renamed.onnx"
    shutil.copy(models_dir / "yolox_nano.onnx", copy)
    spec = resolve_model(str(copy))
    assert spec.name == "yolox_nano" and spec.path == copy and spec.letterbox == "top_left"


def test_unlisted_ultralytics_export_is_inferred_from_metadata(tmp_path: Path) -> None:
    # An ultralytics-style export for 2 classes where person is class 1, at 64x64.
    path = reshape_model(
        tmp_path / "store.onnx",
        (64, 64),
        [1, 6, 84],
        {"imgsz": "[64, 64]", "names": "{0: 'car', 1: 'person'}", "task": "detect"},
    )
    spec = resolve_model(str(path))
    assert (spec.layout, spec.input_width, spec.input_height) == ("ultralytics", 64, 64)
    assert spec.num_classes == 2 and spec.person_class == 1
    assert spec.colour_order == "rgb" and spec.letterbox == "center"
    assert spec.sha256 is None


def test_unknown_output_layout_is_a_clear_error(tmp_path: Path) -> None:
    path = reshape_model(tmp_path / "odd.onnx", (32, 32), [1, 3, 1024])
    with pytest.raises(ModelError, match=r"unknown output layout \[1, 3, 1024\]"):
        resolve_model(str(path))


def test_a_model_dir_manifest_adds_a_store_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = reshape_model(tmp_path / "door.onnx", (64, 64), [1, 85, 84])
    (tmp_path / "manifest.yaml").write_text(
        "models:\n"
        "  door:\n"
        "    file: door.onnx\n"
        f"    sha256: {sha256_of(path)}\n"
        "    input: [64, 64]\n"
        "    layout: ultralytics\n"
        "    colour_order: rgb\n"
        "    scale: 0.00392156862745098\n"
        "    letterbox: center\n"
    )
    monkeypatch.setenv(ENV_MODELS_DIR, str(tmp_path))
    spec = resolve_model("door")
    assert spec.path == path and spec.layout == "ultralytics"
    assert "yolox_nano" in load_manifest()  # the repo's entries are still there


def test_bad_manifest_entry_names_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "manifest.yaml").write_text(
        "models:\n  door:\n    file: d.onnx\n    input: [64, 64]\n    layout: ssd\n"
    )
    monkeypatch.setenv(ENV_MODELS_DIR, str(tmp_path))
    with pytest.raises(ModelError, match=r"manifest.yaml: model 'door'.*layout 'ssd'"):
        load_manifest()


@pytest.mark.parametrize(
    ("input_shape", "output_shape", "metadata", "expected"),
    [
        ([1, 3, 416, 416], [1, 84, 3549], {}, ("ultralytics", 416, 416, 80)),
        ([1, 3, 320, 320], [1, 84, 2100], {}, ("ultralytics", 320, 320, 80)),
        ([1, 3, 416, 416], [1, 3549, 85], {}, ("yolox", 416, 416, 80)),
        ([1, 3, 352, 352], [1, 85, 22, 22], {}, ("fastestdet", 352, 352, 80)),
        # dynamic ultralytics export: size from metadata, N symbolic
        (
            [1, 3, "height", "width"],
            [1, 5, "anchors"],
            {"imgsz": "[480, 640]", "names": "{0: 'person'}"},
            ("ultralytics", 640, 480, 1),
        ),
    ],
)
def test_layout_inference_table(
    input_shape: list[object],
    output_shape: list[object],
    metadata: dict[str, str],
    expected: tuple[str, int, int, int],
) -> None:
    assert infer_layout(input_shape, [output_shape], metadata) == expected


@pytest.mark.parametrize(
    ("input_shape", "output_shapes", "match"),
    [
        ([1, 3, 640, 640], [[1, 300, 6]], "unknown output layout"),  # end-to-end NMS export
        ([1, 3, 416, 416], [[1, 3549, 85], [1, 10]], "one output"),
        ([1, 3, 416, 416], [[1, 84]], "rank 3 or 4"),
        ([1, 3, "h", "w"], [[1, 84, 3549]], "no fixed size"),
        ([1, 3, 352, 352], [[1, 85, 11, 11]], "unknown output layout"),
    ],
)
def test_layout_inference_rejects(
    input_shape: list[object], output_shapes: list[list[object]], match: str
) -> None:
    with pytest.raises(ModelError, match=match):
        infer_layout(input_shape, output_shapes, {})
