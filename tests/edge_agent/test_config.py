"""Technician-facing config errors: every mistake gets FILE:LINE KEY: message and exit 78."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.config_report import EX_CONFIG, ConfigError, parse_config_text

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))

VALID = """\
store:
  id: s1
device:
  id: d1
cameras:
  - id: c1
    source: 0
    lines:
      - id: l1
        points: [[0, 0], [10, 10]]
"""


def issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config_text(text, "agent.yaml")
    return [str(i) for i in exc.value.issues]


def test_examples_exist_and_pass() -> None:
    assert len(EXAMPLES) >= 3
    assert main(["check-config", *map(str, EXAMPLES)]) == 0


def test_valid_minimal_config() -> None:
    cfg = parse_config_text(VALID, "agent.yaml")
    assert cfg.cameras[0].lines[0].points == [[0.0, 0.0], [10.0, 10.0]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            VALID.replace("  id: d1\n", "  id: d1\n  colour: red\n"),
            "agent.yaml:5 device.colour: unknown key",
        ),
        (VALID.replace("store:\n  id: s1\n", ""), "agent.yaml:1 store: required key is missing"),
        (
            VALID.replace("[[0, 0], [10, 10]]", "[[0, 0], [10, 10], [20, 20]]"),
            "agent.yaml:10 cameras[0].lines[0].points: a line needs exactly 2 points, got 3",
        ),
        (
            VALID.replace("  id: d1\n", "  id: d1\n   oops: 1\n"),
            "agent.yaml:5 <yaml>: YAML syntax error",
        ),
        (
            VALID.replace("id: s1", "id: s1\n  timezone: Mars/Olympus"),
            "agent.yaml:3 store.timezone: unknown time zone",
        ),
        (VALID + "products:\n  '12345': {name: x}\n", "agent.yaml:12 products.12345: "),
        (
            VALID.replace("  id: d1\n", "  id: d1\n  id: d2\n"),
            "agent.yaml:5 device.id: duplicate key",
        ),
        ("", "agent.yaml:1 <root>: the file is empty"),
        ("- a\n- b\n", "agent.yaml:1 <root>: the top level must be a mapping"),
    ],
)
def test_each_mistake_names_file_line_and_key(text: str, expected: str) -> None:
    got = issues(text)
    assert any(line.startswith(expected) for line in got), got


def test_every_error_is_reported_not_just_the_first() -> None:
    text = VALID.replace("  id: d1\n", "  id: d1\n  colour: red\n").replace(
        "source: 0", "source: 0\n    fps: -1"
    )
    got = issues(text)
    assert len(got) == 2, got


def test_line_outside_declared_frame() -> None:
    text = VALID.replace("source: 0", "source: 0\n    resolution: [5, 5]")
    assert issues(text) == [
        "agent.yaml:11 cameras[0].lines[0].points[1]: point [10, 10] is outside the 5x5 frame"
    ]


def test_duplicate_line_id_points_at_the_duplicate() -> None:
    text = VALID + "      - id: l1\n        points: [[1, 1], [2, 2]]\n"
    assert issues(text) == [
        "agent.yaml:11 cameras[0].lines[1].id: duplicate id 'l1' (already used by lines[0])"
    ]


def test_every_config_field_has_a_description() -> None:
    from pydantic import BaseModel

    from edge_agent.config import AgentConfig

    seen: set[type[BaseModel]] = set()

    def walk(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            for arg in _model_types(field.annotation):
                walk(arg)

    walk(AgentConfig)
    assert len(seen) > 10


def _model_types(annotation: object) -> list[type]:
    from typing import get_args

    from pydantic import BaseModel

    out: list[type] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        out.append(annotation)
    for arg in get_args(annotation):
        out.extend(_model_types(arg))
    return out


def test_cli_exit_code_and_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(VALID.replace("store:\n  id: s1\n", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "edge_agent", "check-config", str(bad)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == EX_CONFIG
    assert f"{bad}:1 store: required key is missing" in proc.stdout


def test_show_redacts_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    pw = tmp_path / "pw"
    pw.write_text("hunter2\n")
    cfg = tmp_path / "a.yaml"
    cfg.write_text(VALID + f"mqtt:\n  username: u\n  password_file: {pw}\n")
    assert main(["check-config", "--show", "--json", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    doc = json.loads(out)
    assert doc["files"][0]["config"]["mqtt"]["password"] == "***"


def test_unclosed_bracket_is_reported_where_it_opens() -> None:
    text = VALID.replace("[[0, 0], [10, 10]]", "[[0, 0], [10, 10]\n      - id: l2\n")
    (issue,) = issues(text)
    # The bracket opens on line 10; the parser only gives up on a later line.
    assert issue.startswith("agent.yaml:10 <yaml>: YAML syntax error"), issue
    assert "noticed at line" in issue


@pytest.mark.parametrize("word", ["yes", "no", "on", "true"])
def test_a_yaml_boolean_is_not_taken_as_a_number(word: str) -> None:
    text = VALID.replace("    source: 0\n", f"    source: 0\n    fps: {word}\n")
    assert issues(text) == [
        "agent.yaml:8 cameras[0].fps: expected a number, got a YAML boolean (yes, no, on, off, "
        "true and false are booleans in YAML)"
    ]


def test_a_boolean_field_still_takes_a_boolean() -> None:
    cfg = parse_config_text(
        VALID.replace("    source: 0\n", "    source: 0\n    realtime: no\n"), "a.yaml"
    )
    assert cfg.cameras[0].realtime is False


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv"
)
def test_unreadable_models_directory_is_a_config_error_not_a_traceback(models_dir: Path) -> None:
    # The README's install once made /opt/footfall/models root-only: the service user then got
    # a PermissionError traceback and exit 1 instead of a config error naming the file.
    work = Path(tempfile.mkdtemp(prefix="footfall-perm-"))
    try:
        work.chmod(0o755)
        private = work / "models"
        private.mkdir(mode=0o700)
        (private / "yolox_nano.onnx").symlink_to(models_dir / "yolox_nano.onnx")
        cfg = work / "agent.yaml"
        cfg.write_text(VALID)
        cfg.chmod(0o644)
        env = {**os.environ, "FOOTFALL_MODELS_DIR": str(private), "HOME": str(work)}
        proc = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-m",
                "edge_agent",
                "check-config",
                str(cfg),
            ],
            check=False,
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(work)
    assert proc.returncode == EX_CONFIG, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{cfg}:6 cameras[0].model: model 'yolox_nano': cannot read" in proc.stdout
    assert "Permission denied" in proc.stdout


def test_duplicate_ids_point_at_the_second_entry() -> None:
    text = VALID + "  - id: c1\n    source: 1\n"
    assert issues(text) == [
        "agent.yaml:11 cameras[1].id: duplicate id 'c1' (already used by cameras[0])"
    ]
