"""The detector's default thread count leaves a core to the rest of the agent."""

from __future__ import annotations

import os

import pytest

from vision.config import DetectorConfig


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (4, 3), (8, 4), (64, 4)])
def test_default_threads_is_cores_minus_one_within_bounds(
    monkeypatch: pytest.MonkeyPatch, cores: int, threads: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert DetectorConfig().effective_threads() == threads


def test_configured_threads_win() -> None:
    assert DetectorConfig(threads=2).effective_threads() == 2
