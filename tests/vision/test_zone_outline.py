"""Zone polygons that do not outline one area are rejected where the technician wrote them.

Containment is even-odd: corners listed in "Z" order make a bow-tie that covers two triangles
instead of the rectangle, and a pentagram's centre counts as outside. Such a zone would count
the wrong area without any warning, so the config refuses it.
"""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from edge_agent.config_report import ConfigError, parse_config_text
from vision.config import CameraConfig, ZoneConfig
from vision.geometry import self_intersections
from vision.zones import ZoneCounter

PENTAGRAM = [
    [
        100 + 90 * math.cos(math.radians(90 + 144 * k)),
        100 - 90 * math.sin(math.radians(90 + 144 * k)),
    ]
    for k in range(5)
]


def rejected(polygon: list[list[float]]) -> str:
    with pytest.raises(ValidationError) as exc:
        ZoneConfig(id="z", polygon=polygon)
    (err,) = exc.value.errors()
    assert err["loc"] == ("polygon",)
    return str(err["msg"])


def test_corners_in_z_order_are_rejected_with_the_order_around_the_zone() -> None:
    msg = rejected([[0, 0], [200, 0], [0, 200], [200, 200]])
    assert "outline crosses itself" in msg
    assert "the edge from [200, 0] to [0, 200] meets the edge from [200, 200] to [0, 0]" in msg
    assert "in order around the zone" in msg
    assert msg.endswith("in that order these corners are [[0, 0], [200, 0], [200, 200], [0, 200]]")
    # the suggested order is accepted and covers the whole square
    zone = ZoneConfig(id="z", polygon=[[0, 0], [200, 0], [200, 200], [0, 200]])
    inside = ZoneCounter("c", [zone]).polygons[0].contains([(100, 20), (20, 100), (180, 100)])
    assert inside.tolist() == [True, True, True]


def test_a_pentagram_is_rejected() -> None:
    assert "outline crosses itself" in rejected(PENTAGRAM)


@pytest.mark.parametrize(
    ("polygon", "expected"),
    [
        ([[0, 0], [10, 0], [20, 0]], "the zone has no area: its points lie on one line"),
        ([[5, 5], [5, 5], [5, 5]], "the zone has no area"),
        ([[0, 0], [10, 0], [5, 0], [5, 10]], "outline doubles back over itself"),
        # two squares meeting at one corner: not one area
        (
            [[0, 0], [10, 0], [10, 10], [20, 10], [20, 20], [10, 20], [10, 10], [0, 10]],
            "outline touches itself",
        ),
    ],
)
def test_degenerate_outlines_are_rejected(polygon: list[list[float]], expected: str) -> None:
    assert expected in rejected(polygon)


@pytest.mark.parametrize(
    "polygon",
    [
        [[0, 0], [1, 0], [0, 1]],
        [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]],  # closed by repeating the first corner
        [[0, 0], [40, 0], [40, 60], [60, 60], [60, 0], [100, 0], [100, 100], [0, 100]],  # U
        [[0, 0], [10, 0], [20, 0], [20, 10], [0, 10]],  # a corner on a straight edge
    ],
)
def test_simple_outlines_are_accepted(polygon: list[list[float]]) -> None:
    assert ZoneConfig(id="z", polygon=polygon).polygon == polygon


def test_self_intersections_lists_edge_pairs() -> None:
    assert self_intersections([[0, 0], [200, 0], [0, 200], [200, 200]]) == [(1, 3)]
    assert self_intersections([[0, 0], [200, 0], [200, 200], [0, 200]]) == []
    assert len(self_intersections(PENTAGRAM)) == 5


def test_check_config_reports_the_zone_on_its_line() -> None:
    text = """\
store:
  id: s1
device:
  id: d1
cameras:
  - id: c1
    source: 0
    zones:
      - id: ok
        polygon: [[0, 0], [200, 0], [200, 200], [0, 200]]
      - id: till
        polygon: [[0, 0], [200, 0], [0, 200], [200, 200]]
"""
    with pytest.raises(ConfigError) as exc:
        parse_config_text(text, "agent.yaml")
    (issue,) = [str(i) for i in exc.value.issues]
    assert issue.startswith(
        "agent.yaml:12 cameras[0].zones[1].polygon: the zone's outline crosses itself"
    ), issue


def test_camera_config_from_yaml_dicts_rejects_a_bow_tie() -> None:
    data = {
        "id": "c",
        "source": "0",
        "zones": [{"id": "z", "polygon": [[0, 0], [9, 0], [0, 9], [9, 9]]}],
    }
    with pytest.raises(ValidationError, match="crosses itself"):
        CameraConfig.model_validate(data)
