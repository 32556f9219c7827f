"""`footfall-agent eval` end to end, as a subprocess: the JSON contract and accuracy floors.

Floors come from measurements (BENCHMARKS.md, Vision / Accuracy and comparison) minus a
margin, not from the code under test: on the public PETS09 detections every line scored
per-direction accuracy 1.0 and F1 >= 0.969; on the 150-frame excerpt with yolox_nano every
line scored 1.0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
LINES = ["A=180,170,180,330", "B=330,180,330,360", "C=560,180,560,420", "D=620,190,620,430"]
ZONE = "Z=350,250;550,250;550,400;350,400"


def eval_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    line_args = [a for ln in LINES for a in ("--line", ln)]
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "eval", *args, *line_args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
        check=False,
    )


def check_contract(doc: dict[str, Any], frames: int) -> None:
    assert doc["frames"] == frames
    assert doc["wall_s"] > 0 and doc["fps"] > 0
    assert set(doc["lines"]) == {"A", "B", "C", "D"}
    for entry in doc["lines"].values():
        events = entry["events"]
        assert entry["in"] == sum(e["direction"] == "in" for e in events)
        assert entry["out"] == sum(e["direction"] == "out" for e in events)
        assert all(set(e) == {"frame", "direction", "track_id"} for e in events)
        assert all(1 <= e["frame"] <= frames and e["track_id"] >= 1 for e in events)
        assert [e["frame"] for e in events] == sorted(e["frame"] for e in events)


def test_eval_public_detections_json_and_accuracy(pets_detections: Path) -> None:
    proc = eval_cli(
        "--detections",
        str(pets_detections / "det.txt"),
        "--fps",
        "7",
        "--gt",
        str(pets_detections / "gt.txt"),
        "--zone",
        ZONE,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one document on stdout
    check_contract(doc, 795)
    total = 0
    for lid, entry in doc["lines"].items():
        gt = entry["gt"]
        total += gt["gt_in"] + gt["gt_out"]
        assert gt["accuracy_in"] >= 0.95 and gt["accuracy_out"] >= 0.95, (lid, gt)
        assert gt["f1"] >= 0.93, (lid, gt)
    assert total >= 100  # the lines really sit on the walking paths
    zone = doc["zones"]["Z"]
    assert zone["gt"]["visits"] > 10
    assert zone["gt"]["visits_accuracy"] >= 0.8
    assert zone["max_occupancy"] >= 2 and zone["mean_dwell_s"] > 1.0


def test_eval_real_model_on_a_pets_excerpt(
    pets_footage: Path, models_dir: Path, tmp_path: Path
) -> None:
    frames = tmp_path / "img1"
    frames.mkdir()
    for k in range(1, 151):
        name = f"{k:06d}.jpg"
        (frames / name).symlink_to(pets_footage / "img1" / name)
    # crossings the gt settles on in the last frames would only be confirmed after the cut
    rows = (pets_footage / "gt" / "gt.txt").read_text().splitlines()
    (tmp_path / "gt.txt").write_text(
        "\n".join(r for r in rows if int(r.split(",")[0]) <= 147) + "\n"
    )
    proc = eval_cli(
        "--frames",
        str(frames),
        "--fps",
        "7",
        "--model",
        str(models_dir / "yolox_nano.onnx"),
        "--gt",
        str(tmp_path / "gt.txt"),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    check_contract(doc, 150)
    assert doc["source"] == "frames" and doc["bad_frames"] == 0
    counted = sum(e["in"] + e["out"] for e in doc["lines"].values())
    assert counted >= 15
    for lid, entry in doc["lines"].items():
        gt = entry["gt"]
        assert gt["accuracy_in"] >= 0.8 and gt["accuracy_out"] >= 0.8, (lid, gt)
        assert gt["f1"] >= 0.85, (lid, gt)


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """In-process `footfall-agent eval` (no interpreter start-up) for the error paths."""
    from edge_agent.cli import main

    line_args = [a for ln in LINES for a in ("--line", ln)]
    try:
        code = main(["eval", *args, *line_args])
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_text_output_and_bad_inputs(
    pets_detections: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(
        capsys, "--detections", str(pets_detections / "det.txt"), "--fps", "7"
    )
    assert code == 0, err
    assert "line A: in" in out

    code, _, err = run_main(capsys, "--detections", "x.txt", "--fps", "7", "--line", "A=1,2,3")
    assert code == 2 and "ID=x1,y1,x2,y2" in err

    code, out, err = run_main(
        capsys, "--detections", str(tmp_path / "nope.txt"), "--fps", "7", "--json"
    )
    assert code == 65 and "cannot read" in err
    assert out == ""

    garbage = tmp_path / "det.txt"
    garbage.write_text("1,-1,not,a,box\n")
    code, _, err = run_main(capsys, "--detections", str(garbage), "--fps", "7")
    assert code == 65 and "det.txt:1" in err

    code, _, err = run_main(capsys, "--frames", str(tmp_path / "empty"), "--fps", "7")
    assert code == 65 and "not found" in err

    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "000001.jpg").write_bytes(b"not a jpeg")
    code, _, err = run_main(
        capsys,
        "--frames",
        str(tmp_path / "frames"),
        "--fps",
        "7",
        "--model",
        str(tmp_path / "m.onnx"),
    )
    assert code == 65 and "m.onnx" in err

    for fps in ("0", "-7"):
        code, _, err = run_main(capsys, "--detections", str(garbage), "--fps", fps)
        assert code == 2 and "fps" in err


def test_eval_counts_a_corrupt_frame_and_goes_on(
    pets_footage: Path, models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = tmp_path / "img1"
    frames.mkdir()
    for k in range(1, 6):
        (frames / f"{k:06d}.jpg").symlink_to(pets_footage / "img1" / f"{k:06d}.jpg")
    (frames / "000003.jpg").unlink()
    (frames / "000003.jpg").write_bytes(b"\xff\xd8 truncated")
    code, out, err = run_main(
        capsys,
        "--frames",
        str(frames),
        "--fps",
        "7",
        "--model",
        str(models_dir / "yolox_nano.onnx"),
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["frames"] == 5 and doc["bad_frames"] == 1
    # a line outside the frame is a usage error, reported like check-config does
    code, out, err = run_main(
        capsys, "--frames", str(frames), "--fps", "7", "--line", "X=0,0,900,10"
    )
    assert code == 2 and "outside the 768x576 frame" in err and out == ""
