"""What really happened in the simulated store, measured the same way the counter is asked to.

Crossings use the project's direction convention on the true feet (the anchor) at frame times;
zone visits are the true time the feet spend inside each polygon, with the zone's
`min_visit_s` applied, so the counted-vs-true comparison is like for like.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.demo import floor_plan as fp
from edge_agent.demo.store_sim import StockOutSpan, StoreDay
from vision.config import CameraConfig

F32 = npt.NDArray[np.float32]
Bool = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Truth:
    line_in: dict[str, int]
    line_out: dict[str, int]
    visitors: int  # shoppers who entered
    passers: int  # people who walked past without entering
    occupancy_peak: int
    occupancy_peak_frame: int
    zone_visits: dict[str, int]
    zone_dwell_median_s: dict[str, float | None]
    transactions: int
    takes: int
    stockouts: list[StockOutSpan]  # when shelves were truly empty (seconds after opening)


def side_value(feet: F32, p1: list[float], p2: list[float]) -> npt.NDArray[np.float64]:
    """(x2-x1)*(py-y1) - (y2-y1)*(px-x1): negative -> positive is `in`."""
    (x1, y1), (x2, y2) = p1, p2
    return (x2 - x1) * (feet[:, 1].astype(np.float64) - y1) - (y2 - y1) * (
        feet[:, 0].astype(np.float64) - x1
    )


def crossings(feet: F32, p1: list[float], p2: list[float]) -> tuple[int, int]:
    """(in, out) crossings of the segment by a trajectory sampled at frame times."""
    v = side_value(feet, p1, p2)
    a, b = v[:-1], v[1:]
    changed = np.nonzero((a < 0) & (b > 0) | (a > 0) & (b < 0))[0]
    n_in = n_out = 0
    seg = np.array(p2, dtype=np.float64) - np.array(p1, dtype=np.float64)
    for i in changed.tolist():
        # Where the step crosses the infinite line, and is that point on the segment?
        t = a[i] / (a[i] - b[i])
        hit = feet[i] + t * (feet[i + 1] - feet[i])
        along = float(np.dot(hit - np.array(p1), seg) / np.dot(seg, seg))
        if 0.0 <= along <= 1.0:
            if a[i] < 0:
                n_in += 1
            else:
                n_out += 1
    return n_in, n_out


def inside_polygon(points: F32, polygon: list[list[float]]) -> Bool:
    """Even-odd rule, vectorised over points."""
    poly = np.asarray(polygon, dtype=np.float64)
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    inside = np.zeros(points.shape[0], dtype=bool)
    for (xa, ya), (xb, yb) in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        straddles = (ya > y) != (yb > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = xa + (y - ya) * (xb - xa) / (yb - ya)
        inside ^= straddles & (x < x_cross)
    return inside


def visit_lengths_s(inside: Bool, fps: float) -> list[float]:
    """Length of each run of frames inside, entry frame to first frame outside."""
    padded = np.concatenate([[False], inside, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    return [float(e - s) / fps for s, e in zip(starts, ends, strict=True)]


def measure(day: StoreDay, camera: CameraConfig) -> Truth:
    fps = day.params.fps
    line_in = dict.fromkeys((ln.id for ln in camera.lines), 0)
    line_out = dict.fromkeys(line_in, 0)
    dwell: dict[str, list[float]] = {z.id: [] for z in camera.zones}
    occ_delta = np.zeros(day.n_frames + 2, dtype=np.int64)
    for person in day.people:
        for line in camera.lines:
            n_in, n_out = crossings(person.feet, line.points[0], line.points[1])
            line_in[line.id] += n_in
            line_out[line.id] += n_out
        for zone in camera.zones:
            runs = visit_lengths_s(inside_polygon(person.feet, zone.polygon), fps)
            dwell[zone.id] += [r for r in runs if r >= zone.min_visit_s]
        in_store = np.nonzero(person.feet[:, 1] < fp.STOREFRONT_Y_PX)[0]
        if in_store.size:
            occ_delta[person.start_frame + in_store[0]] += 1
            occ_delta[person.start_frame + in_store[-1] + 1] -= 1
    shoppers = day.shoppers
    occupancy = np.cumsum(occ_delta)
    return Truth(
        line_in=line_in,
        line_out=line_out,
        visitors=len(shoppers),
        passers=len(day.people) - len(shoppers),
        occupancy_peak=int(occupancy.max(initial=0)),
        occupancy_peak_frame=int(np.argmax(occupancy)),
        zone_visits={z: len(v) for z, v in dwell.items()},
        zone_dwell_median_s={z: (float(np.median(v)) if v else None) for z, v in dwell.items()},
        transactions=len(day.sales),
        takes=len(day.takes),
        stockouts=list(day.stockouts),
    )


__all__ = ["Truth", "crossings", "inside_polygon", "measure", "side_value", "visit_lengths_s"]
