"""Test-wide settings: where the shared models and footage live.

FOOTFALL_SHARED points at the shared data (default: ../shared beside the repo). Under CI=true a
missing folder fails the run instead of skipping the tests that need it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_root() -> Path:
    return Path(os.environ.get("FOOTFALL_SHARED", REPO.parent / "shared")).resolve()


# Model resolution (vision.models) searches FOOTFALL_MODELS_DIR first: point it at the shared,
# verified weights so configs naming `yolox_nano` validate and run in tests.
if "FOOTFALL_MODELS_DIR" not in os.environ and (shared_root() / "models").is_dir():
    os.environ["FOOTFALL_MODELS_DIR"] = str(shared_root() / "models")


def _require(path: Path) -> Path:
    if not path.exists():
        msg = f"shared data {path} is missing (set FOOTFALL_SHARED)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(shared_root())


@pytest.fixture(scope="session")
def models_dir(shared_dir: Path) -> Path:
    return _require(shared_dir / "models")


@pytest.fixture(scope="session")
def pets_footage(shared_dir: Path) -> Path:
    return _require(shared_dir / "data" / "footage" / "PETS09-S2L1")


@pytest.fixture(scope="session")
def pets_detections(shared_dir: Path) -> Path:
    return _require(shared_dir / "data" / "detections" / "PETS09-S2L1")


@pytest.fixture(scope="session")
def rfid_reference(shared_dir: Path) -> Path:
    return _require(shared_dir / "docs" / "rfid-reference.md")


@pytest.fixture()
def mosquitto(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh real broker per test, on a free port."""
    from tests.mosquitto import Mosquitto

    broker = Mosquitto(tmp_path / "broker").start()
    yield broker
    broker.stop()
