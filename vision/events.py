"""Typed events the vision pipeline hands to the aggregator.

Every event carries the camera id and the timestamp of the frame that produced it
(seconds since the Unix epoch, as passed in by the caller), never wall-clock time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Direction = Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class CrossingEvent:
    """A tracked person crossed a counting line."""

    camera_id: str
    line_id: str
    direction: Direction
    track_id: int
    ts: float
    frame_index: int


@dataclass(frozen=True, slots=True)
class ZoneVisit:
    """A person left a zone (or the visit was closed at shutdown); dwell_s is the visit length."""

    camera_id: str
    zone_id: str
    track_id: int
    entered_ts: float
    exited_ts: float

    @property
    def dwell_s(self) -> float:
        return self.exited_ts - self.entered_ts


@dataclass(frozen=True, slots=True)
class ZoneTransition:
    """A person went from one zone straight to another (anonymous once aggregated)."""

    camera_id: str
    from_zone: str
    to_zone: str
    ts: float


@dataclass(frozen=True, slots=True)
class ZoneOccupancy:
    """How many people are in each zone of a camera at one frame."""

    camera_id: str
    ts: float
    counts: dict[str, int]


VisionEvent = CrossingEvent | ZoneVisit | ZoneTransition | ZoneOccupancy


def shifted(event: VisionEvent, delta_s: float) -> VisionEvent:
    """The event with every time moved by `delta_s` (a visit keeps its dwell): from the
    clock the frames were stamped with to the wall clock the intervals are kept in."""
    if isinstance(event, ZoneVisit):
        return replace(
            event, entered_ts=event.entered_ts + delta_s, exited_ts=event.exited_ts + delta_s
        )
    return replace(event, ts=event.ts + delta_s)


__all__ = [
    "CrossingEvent",
    "Direction",
    "VisionEvent",
    "ZoneOccupancy",
    "ZoneTransition",
    "ZoneVisit",
    "shifted",
]
