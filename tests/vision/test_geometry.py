"""Geometry: the issue's side convention, finite-segment intersection, point in polygon."""

from __future__ import annotations

import numpy as np
import pytest

from vision.geometry import Line, Polygon, points_in_polygon, segments_intersect


@pytest.mark.parametrize(
    ("line", "point", "sign"),
    [
        # vertical line pointing down: the issue's formula is positive left of x
        (Line(100, 0, 100, 200), (50, 100), 1),
        (Line(100, 0, 100, 200), (150, 100), -1),
        # horizontal line pointing right: positive below (y down)
        (Line(0, 100, 200, 100), (50, 150), 1),
        (Line(0, 100, 200, 100), (50, 50), -1),
        (Line(0, 100, 200, 100), (50, 100), 0),
    ],
)
def test_side_follows_issue_formula(line: Line, point: tuple[float, float], sign: int) -> None:
    px, py = point
    expected = (line.x2 - line.x1) * (py - line.y1) - (line.y2 - line.y1) * (px - line.x1)
    got = line.side([point])[0]
    assert got == pytest.approx(expected)
    assert np.sign(got) == sign


def test_signed_distance_is_pixels() -> None:
    line = Line(0, 0, 30, 40)  # length 50
    # (0, 10): cross = 30*10 - 40*0 = 300 -> 6 px
    assert line.signed_distance([(0, 10)])[0] == pytest.approx(6.0)


@pytest.mark.parametrize(
    ("p1", "p2", "expected"),
    [
        ((50, 100), (150, 100), True),  # straight across
        ((50, 250), (150, 250), False),  # across the infinite line, below the segment's end
        ((50, -10), (150, -10), False),  # above the start
        ((50, 200), (150, 200), True),  # through the end point exactly
        ((100, 50), (100, 80), True),  # collinear and overlapping
        ((100, 250), (100, 300), False),  # collinear, beyond the end
        ((50, 100), (99, 100), False),  # stops short
        ((50, 100), (100, 100), True),  # stops on the line
    ],
)
def test_segment_intersection(
    p1: tuple[float, float], p2: tuple[float, float], expected: bool
) -> None:
    assert bool(Line(100, 0, 100, 200).crosses(p1, p2)) is expected


def test_segment_intersection_vectorised() -> None:
    starts = np.array([[50, 100], [50, 250], [150, 10]])
    ends = np.array([[150, 100], [150, 250], [60, 190]])
    got = segments_intersect(starts, ends, (100, 0), (100, 200))
    assert got.tolist() == [True, False, True]


def test_point_in_polygon_concave_and_vectorised() -> None:
    # a U shape: the notch (40..60 x, 0..60 y) is outside
    u_shape = Polygon.from_points(
        [[0, 0], [40, 0], [40, 60], [60, 60], [60, 0], [100, 0], [100, 100], [0, 100]]
    )
    pts = np.array([[20, 20], [50, 20], [50, 80], [80, 20], [150, 50], [-1, 50]])
    assert u_shape.contains(pts).tolist() == [True, False, True, True, False, False]
    assert points_in_polygon(np.zeros((0, 2)), u_shape.vertices).shape == (0,)


def test_degenerate_shapes_rejected() -> None:
    with pytest.raises(ValueError, match="differ"):
        Line(1, 1, 1, 1)
    with pytest.raises(ValueError, match="3"):
        Polygon.from_points([[0, 0], [1, 1]])
