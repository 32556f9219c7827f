"""`footfall-agent bench`, `snapshot` and the model check of `check-config`, run as the
technician runs them (a subprocess, real model, real PETS09 frames)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import REPO
from vision.config import LineConfig
from vision.detections import Detections
from vision.draw import IN_COLOUR, LINE_COLOUR, OUT_COLOUR, in_normal, render


def agent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_bench_prints_one_json_document(pets_footage: Path, models_dir: Path) -> None:
    proc = agent(
        "bench",
        "--frames",
        str(pets_footage / "img1"),
        "--model",
        "fastestdet",
        "--limit",
        "12",
        "--runs",
        "1",
        "--threads",
        "1",
        "--no-motion",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one document: json.loads rejects trailing text
    assert doc["model"] == "fastestdet" and doc["layout"] == "fastestdet"
    assert doc["frames"] == 12 and doc["detector_runs"] == 12
    stages = doc["stages_ms"]
    assert set(stages) == {
        "decode", "gate", "preprocess", "inference", "postprocess", "track", "count"
    }  # fmt: skip
    assert stages["inference"] > 0 and all(v >= 0 for v in stages.values())
    assert doc["pipeline_fps"] > 0 and doc["inference_only_fps"] > 0
    assert doc["pipeline_vs_inference"] == pytest.approx(
        doc["pipeline_fps"] / doc["inference_only_fps"]
    )
    assert 50 < doc["peak_rss_mb"] < 2000
    assert doc["cpu_ms_per_frame"] > 0
    assert doc["decode_reduction"] == 1  # 768x576 frames for a 352x352 input: 1/2 is too small


def test_bench_static_scene_runs_the_detector_only_when_forced(pets_footage: Path) -> None:
    proc = agent(
        "bench",
        "--frames",
        str(pets_footage / "img1"),
        "--model",
        "fastestdet",
        "--static",
        "--limit",
        "20",
        "--runs",
        "1",
        "--threads",
        "1",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["static_scene"] and doc["frames"] == 20
    assert doc["detector_runs"] == 2  # 20 frames at 7 fps: t=0 and the forced run at 2 s
    assert doc["forced_runs"] == 1 and doc["deferred_decode"]
    # The gate looks at the frame after each detection in colour (frames 2 and 16, as the
    # detector probably runs again), at all others in greyscale, forced frame 15 included.
    assert doc["gate_grey_decodes"] == 20 - 1 - 2


def test_bench_human_table_and_bad_input(pets_footage: Path, tmp_path: Path) -> None:
    proc = agent(
        "bench",
        "--frames",
        str(pets_footage / "img1"),
        "--model",
        "fastestdet",
        "--limit",
        "5",
        "--runs",
        "1",
        "--threads",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout
    for label in ("inference", "track", "pipeline", "inference only", "peak RSS"):
        assert label in table
    assert "5 frames x 1 runs" in table
    proc = agent("bench", "--frames", str(tmp_path), "--model", "nope")
    assert proc.returncode != 0 and "unknown model 'nope'" in proc.stderr
    proc = agent("bench", "--frames", str(tmp_path), "--model", "fastestdet")
    assert proc.returncode != 0 and "no numbered images" in proc.stderr


def _colour_mask(image: np.ndarray, bgr: tuple[int, int, int]) -> np.ndarray:
    return np.all(np.abs(image.astype(int) - np.array(bgr)) <= 40, axis=2)


def test_snapshot_from_a_source_with_lines_zones_and_detections(
    pets_footage: Path, tmp_path: Path
) -> None:
    out = tmp_path / "door.png"
    proc = agent(
        "snapshot",
        "--source",
        str(pets_footage / "img1"),
        "--frame",
        "100",
        "--line",
        "road=500,100,500,560",
        "--zone",
        "junction=250,150;650,150;650,450;250,450",
        "--out",
        str(out),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["frame"] == 100 and doc["size"] == [768, 576]
    assert doc["lines"] == ["road"] and doc["zones"] == ["junction"]
    assert doc["detections"] >= 4  # people on frame 100
    image = cv2.imread(str(out))
    assert image.shape == (576, 768, 3)
    assert _colour_mask(image[120:540, 498:503], LINE_COLOUR).mean() > 0.3  # the line itself


def test_in_arrow_points_to_the_positive_side() -> None:
    # Line (500,100)->(500,560): (x2-x1)*(py-y1) - (y2-y1)*(px-x1) = -460*(px-500) > 0 left of it.
    line = LineConfig(id="road", points=[[500, 100], [500, 560]])
    nx, ny = in_normal(500, 100, 500, 560)
    assert (nx, ny) == pytest.approx((-1.0, 0.0))
    picture = render(np.zeros((576, 768, 3), np.uint8), [line], (), Detections.empty())
    for colour, tip_side in ((IN_COLOUR, "left"), (OUT_COLOUR, "right")):
        ys, xs = np.nonzero(_colour_mask(picture, colour))
        left, right = ys[xs < 495], ys[xs > 505]
        # The arrow head (spread over several rows) is on the side the arrow points to.
        spread_left = np.ptp(left) if len(left) else 0
        spread_right = np.ptp(right) if len(right) else 0
        assert (spread_left > spread_right) == (tip_side == "left"), colour


def _config(tmp: Path, source: Path, model: str) -> Path:
    path = tmp / "agent.yaml"
    path.write_text(
        "store: {id: s1}\n"
        "device: {id: d1}\n"
        "cameras:\n"
        "  - id: door\n"
        f"    source: {source}\n"
        f"    model: {model}\n"
        "    lines:\n"
        "      - id: road\n"
        "        points: [[500, 100], [500, 560]]\n"
    )
    return path


def test_snapshot_from_a_config_camera(pets_footage: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, pets_footage / "img1", "fastestdet")
    out = tmp_path / "cam.png"
    proc = agent("snapshot", "--config", str(config), "--camera", "door", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert cv2.imread(str(out)).shape == (576, 768, 3)
    proc = agent("snapshot", "--config", str(config), "--camera", "back", "--out", str(out))
    assert proc.returncode == 64 and "no camera 'back'" in proc.stderr


def test_check_config_reports_a_mismatched_model_on_its_line(
    pets_footage: Path, models_dir: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "models"
    bad.mkdir()
    data = bytearray((models_dir / "fastestdet.onnx").read_bytes())
    data[100] ^= 0x01
    (bad / "fastestdet.onnx").write_bytes(bytes(data))
    shutil.copy(models_dir / "yolox_nano.onnx", bad / "yolox_nano.onnx")
    config = _config(tmp_path, pets_footage / "img1", "fastestdet")
    proc = agent("check-config", str(config), env={"FOOTFALL_MODELS_DIR": str(bad)})
    assert proc.returncode == 78
    assert "agent.yaml:6 cameras[0].model:" in proc.stdout
    assert "sha256" in proc.stdout
    config = _config(tmp_path, pets_footage / "img1", "yolox_nano")
    proc = agent("check-config", str(config), env={"FOOTFALL_MODELS_DIR": str(bad)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
