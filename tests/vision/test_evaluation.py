"""Metric maths: count accuracy and one-to-one event matching within one second."""

from __future__ import annotations

import pytest

from vision.evaluation import TimedCrossing, count_accuracy, line_report, match_events


@pytest.mark.parametrize(
    ("counted", "true", "expected"),
    [(10, 10, 1.0), (9, 10, 0.9), (11, 10, 0.9), (25, 10, 0.0), (0, 0, 1.0), (1, 0, 0.0)],
)
def test_count_accuracy(counted: int, true: int, expected: float) -> None:
    assert count_accuracy(counted, true) == pytest.approx(expected)


def tc(line: str, direction: str, frame: int) -> TimedCrossing:
    return TimedCrossing(line, direction, frame)  # type: ignore[arg-type]


def test_matching_window_direction_and_line() -> None:
    truth = [tc("A", "in", 100), tc("A", "out", 200), tc("B", "in", 300)]
    counted = [
        tc("A", "in", 107),  # 1.0 s late at 7 fps: matches
        tc("A", "in", 200),  # wrong direction for the gt at 200
        tc("B", "in", 308),  # 8 frames = 1.14 s: too late
    ]
    s = match_events(counted, truth, fps=7)
    assert s.true_positives == 1
    assert s.precision == pytest.approx(1 / 3)
    assert s.recall == pytest.approx(1 / 3)
    assert s.f1 == pytest.approx(1 / 3)


def test_matching_is_one_to_one_and_closest_first() -> None:
    truth = [tc("A", "in", 10), tc("A", "in", 14)]
    counted = [tc("A", "in", 13), tc("A", "in", 13)]
    s = match_events(counted, truth, fps=7)
    assert s.true_positives == 2
    # a duplicate count cannot match the same true crossing twice
    s = match_events([tc("A", "in", 10), tc("A", "in", 10)], [tc("A", "in", 10)], fps=7)
    assert (s.true_positives, s.precision, s.recall) == (1, 0.5, 1.0)


def test_empty_cases() -> None:
    assert match_events([], [], fps=7).f1 == 1.0
    assert match_events([tc("A", "in", 1)], [], fps=7).f1 == 0.0
    with pytest.raises(ValueError):
        match_events([], [], fps=0)


def test_line_report_per_direction() -> None:
    truth = [tc("A", "in", 10), tc("A", "in", 40), tc("A", "out", 70), tc("A", "out", 90)]
    counted = [tc("A", "in", 11), tc("A", "out", 71), tc("A", "out", 91), tc("A", "out", 150)]
    rep = line_report(["A", "Z"], counted, truth, fps=7)["A"]
    assert rep["gt_in"] == 2 and rep["gt_out"] == 2
    assert rep["accuracy_in"] == pytest.approx(0.5)
    assert rep["accuracy_out"] == pytest.approx(0.5)
    assert rep["precision"] == pytest.approx(0.75)
    assert rep["recall"] == pytest.approx(0.75)
    empty = line_report(["Z"], counted, truth, fps=7)["Z"]
    assert empty["f1"] == 1.0 and empty["gt_in"] == 0
