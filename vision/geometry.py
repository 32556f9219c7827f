"""Plane geometry for counting lines and zones, in pixels (x right, y down).

Every function is vectorised over points so a frame with many tracks costs one numpy call.
The side convention is the one the issue fixes for evaluation: for a line x1,y1 -> x2,y2,
``side(p) = (x2-x1)*(py-y1) - (y2-y1)*(px-x1)``; ``in`` is negative -> positive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


def _points(points: npt.ArrayLike) -> F64:
    arr = np.asarray(points, dtype=np.float64)
    return arr.reshape(-1, 2)


@dataclass(frozen=True, slots=True)
class Line:
    """A directed finite segment from (x1, y1) to (x2, y2)."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        if self.x1 == self.x2 and self.y1 == self.y2:
            raise ValueError("the two points of a line must differ")

    @classmethod
    def from_points(cls, points: Sequence[Sequence[float]]) -> Line:
        (x1, y1), (x2, y2) = points
        return cls(float(x1), float(y1), float(x2), float(y2))

    @property
    def length(self) -> float:
        return float(np.hypot(self.x2 - self.x1, self.y2 - self.y1))

    def side(self, points: npt.ArrayLike) -> F64:
        """The issue's cross product for each point (sign = side, 0 = on the line)."""
        p = _points(points)
        return (self.x2 - self.x1) * (p[:, 1] - self.y1) - (self.y2 - self.y1) * (p[:, 0] - self.x1)

    def signed_distance(self, points: npt.ArrayLike) -> F64:
        """Perpendicular distance in pixels to the infinite line, signed like side()."""
        return self.side(points) / self.length

    def crosses(self, starts: npt.ArrayLike, ends: npt.ArrayLike) -> Bools:
        """Whether each path segment start->end touches this finite segment."""
        return segments_intersect(starts, ends, (self.x1, self.y1), (self.x2, self.y2))


def _orient(a: F64, b: F64, c: F64) -> F64:
    """Cross product (b - a) x (c - a) for rows of points (broadcasting)."""
    return (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (
        c[..., 0] - a[..., 0]
    )


def _on_segment(a: F64, b: F64, p: F64) -> Bools:
    """For collinear p: whether p lies within the bounding box of a-b."""
    return (
        (np.minimum(a[..., 0], b[..., 0]) <= p[..., 0])
        & (p[..., 0] <= np.maximum(a[..., 0], b[..., 0]))
        & (np.minimum(a[..., 1], b[..., 1]) <= p[..., 1])
        & (p[..., 1] <= np.maximum(a[..., 1], b[..., 1]))
    )


def segments_intersect(
    p1: npt.ArrayLike, p2: npt.ArrayLike, q1: npt.ArrayLike, q2: npt.ArrayLike
) -> Bools:
    """Whether segments p1-p2 and q1-q2 share a point (endpoints included).

    Any argument may be one point (2,) or rows of points (N, 2); they broadcast.
    """
    a = np.asarray(p1, dtype=np.float64)
    b = np.asarray(p2, dtype=np.float64)
    c = np.asarray(q1, dtype=np.float64)
    d = np.asarray(q2, dtype=np.float64)
    o1 = _orient(a, b, c)
    o2 = _orient(a, b, d)
    o3 = _orient(c, d, a)
    o4 = _orient(c, d, b)
    proper = (np.sign(o1) * np.sign(o2) < 0) & (np.sign(o3) * np.sign(o4) < 0)
    zero = (o1 == 0) | (o2 == 0) | (o3 == 0) | (o4 == 0)
    if not zero.any():  # the common case: no collinear endpoint, no bounding-box checks
        return np.asarray(proper, dtype=np.bool_)
    touching = (
        ((o1 == 0) & _on_segment(a, b, c))
        | ((o2 == 0) & _on_segment(a, b, d))
        | ((o3 == 0) & _on_segment(c, d, a))
        | ((o4 == 0) & _on_segment(c, d, b))
    )
    return np.asarray(proper | touching, dtype=np.bool_)


@dataclass(frozen=True, slots=True)
class Polygon:
    """A simple polygon given by its vertices (closed implicitly)."""

    vertices: F64

    def __post_init__(self) -> None:
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 2 or len(self.vertices) < 3:
            raise ValueError(f"a polygon needs at least 3 (x, y) vertices, got {self.vertices}")

    @classmethod
    def from_points(cls, points: Sequence[Sequence[float]]) -> Polygon:
        return cls(np.asarray(points, dtype=np.float64).reshape(-1, 2))

    def contains(self, points: npt.ArrayLike) -> Bools:
        """Even-odd rule, vectorised over points (N,) x edges (E,)."""
        return points_in_polygon(points, self.vertices)


def points_in_polygon(points: npt.ArrayLike, vertices: npt.ArrayLike) -> Bools:
    """Ray casting to +x for every point against every edge at once."""
    p = _points(points)
    v = _points(vertices)
    if p.shape[0] == 0:
        return np.zeros(0, dtype=np.bool_)
    a = v[None, :, :]
    b = np.roll(v, -1, axis=0)[None, :, :]
    px = p[:, 0:1]
    py = p[:, 1:2]
    # half-open rule on y so a vertex exactly at py is counted once
    straddles = (a[..., 1] > py) != (b[..., 1] > py)
    dy = b[..., 1] - a[..., 1]
    safe_dy = np.where(dy == 0, 1.0, dy)
    x_at = a[..., 0] + (py - a[..., 1]) * (b[..., 0] - a[..., 0]) / safe_dy
    hits = straddles & (px < x_at)
    return np.asarray(np.count_nonzero(hits, axis=1) % 2 == 1, dtype=np.bool_)


def self_intersections(vertices: npt.ArrayLike) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of edges of the closed outline that meet where they should not.

    Edge i runs from vertex i to vertex i+1 (the last back to the first). Non-adjacent edges
    must not share any point; adjacent edges only their common vertex, so a pair of adjacent
    edges is listed when the outline doubles back along itself there. Even-odd containment
    on such an outline covers a different area than the one the points were meant to enclose.
    """
    v = _points(vertices)
    n = len(v)
    a, b = v, np.roll(v, -1, axis=0)
    meets = segments_intersect(a[:, None, :], b[:, None, :], a[None, :, :], b[None, :, :])
    i, j = np.triu_indices(n, k=2)
    hit = meets[i, j] & ~((i == 0) & (j == n - 1))  # the last edge is adjacent to the first
    pairs = {(int(x), int(y)) for x, y in zip(i[hit], j[hit], strict=True)}
    # adjacent edges a->b, b->c overlap when c lies back along b->a
    c = np.roll(v, -2, axis=0)
    back = (_orient(a, b, c) == 0) & (np.einsum("ij,ij->i", b - a, c - b) < 0)
    for k in np.flatnonzero(back):
        k1 = (int(k) + 1) % n
        pairs.add((min(int(k), k1), max(int(k), k1)))
    return sorted(pairs)


__all__ = [
    "Line",
    "Polygon",
    "points_in_polygon",
    "segments_intersect",
    "self_intersections",
]
