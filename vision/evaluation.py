"""Counting metrics: per-direction count accuracy and event precision/recall/F1.

Count accuracy per line and direction is ``1 - |counted - true| / true`` (floored at 0; when
there is no true crossing it is 1 if nothing was counted, else 0). Events: a counted crossing
matches an unmatched true crossing of the same line and direction at most ``tolerance_s``
apart; pairs are taken closest first, which is optimal here because each counted and true
event can match only one partner on a single time axis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vision.events import Direction

DIRECTIONS: tuple[Direction, Direction] = ("in", "out")


@dataclass(frozen=True, slots=True)
class TimedCrossing:
    """A crossing reduced to what evaluation compares."""

    line_id: str
    direction: Direction
    frame: int


@dataclass(frozen=True, slots=True)
class EventScores:
    true_positives: int
    counted: int
    truth: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.counted if self.counted else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.truth if self.truth else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0


def count_accuracy(counted: int, true: int) -> float:
    """1 - |counted - true| / true, floored at 0 (1.0 when both are 0)."""
    if true == 0:
        return 1.0 if counted == 0 else 0.0
    return max(0.0, 1.0 - abs(counted - true) / true)


def match_events(
    counted: Sequence[TimedCrossing],
    truth: Sequence[TimedCrossing],
    fps: float,
    tolerance_s: float = 1.0,
) -> EventScores:
    """Greedy closest-first one-to-one matching within tolerance_s."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    pairs: list[tuple[float, int, int]] = []
    for i, c in enumerate(counted):
        for j, t in enumerate(truth):
            if c.line_id != t.line_id or c.direction != t.direction:
                continue
            dt = abs(c.frame - t.frame) / fps
            if dt <= tolerance_s + 1e-9:
                pairs.append((dt, i, j))
    pairs.sort()
    used_c: set[int] = set()
    used_t: set[int] = set()
    for _, i, j in pairs:
        if i in used_c or j in used_t:
            continue
        used_c.add(i)
        used_t.add(j)
    return EventScores(len(used_c), len(counted), len(truth))


def line_report(
    line_ids: Iterable[str],
    counted: Sequence[TimedCrossing],
    truth: Sequence[TimedCrossing],
    fps: float,
    tolerance_s: float = 1.0,
) -> dict[str, dict[str, float]]:
    """Per line: true counts, per-direction accuracy, and event P/R/F1 (both directions)."""
    report: dict[str, dict[str, float]] = {}
    for lid in line_ids:
        c = [e for e in counted if e.line_id == lid]
        t = [e for e in truth if e.line_id == lid]
        scores = match_events(c, t, fps, tolerance_s)
        entry: dict[str, float] = {}
        for d in DIRECTIONS:
            nc = sum(1 for e in c if e.direction == d)
            nt = sum(1 for e in t if e.direction == d)
            entry[f"gt_{d}"] = nt
            entry[f"accuracy_{d}"] = round(count_accuracy(nc, nt), 4)
        entry["precision"] = round(scores.precision, 4)
        entry["recall"] = round(scores.recall, 4)
        entry["f1"] = round(scores.f1, 4)
        entry["true_positives"] = scores.true_positives
        report[lid] = entry
    return report


__all__ = [
    "DIRECTIONS",
    "EventScores",
    "TimedCrossing",
    "count_accuracy",
    "line_report",
    "match_events",
]
