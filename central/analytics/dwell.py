"""Dwell per zone (mean, median, p90) and zone-to-zone transitions over a range.

How the median over many intervals is computed, honestly: a median cannot be combined from
per-interval medians. The edge sends, per zone and interval, a histogram of the dwell times of
the visits that ended (`dwell_hist`). Central sums those histograms (hourly rollup), and reads
the quantiles off the merged histogram, assuming visits are spread evenly inside a bin. The
result is exact up to the bin width, and the bins used are reported. The edge's last bin is
open-ended (an hour or longer): a median or p90 that falls in it is reported as its lower
edge with `median_at_least` / `p90_at_least` true, never interpolated up to the bin's cap.
The mean is exact (dwell_mean_s x dwell_count, summed). Only when a zone has no histograms at
all does central fall back to the dwell_count-weighted median of the per-interval medians and
p90s, which is an approximation and labelled `"method": "weighted_interval_quantiles"`.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from central.analytics.footfall import ReportRange, camera_key, shared_cameras
from central.storage.base import Storage

# The edge clips every stay to the top edge of its histogram (one day), so its last bin,
# [3600, 86400) by default, holds "an hour or longer": a bin reaching this edge is open-ended.
# The rollups keep only non-empty bins, so central cannot see which bin was a histogram's last
# and goes by this edge (a test keeps it equal to the agent's).
OPEN_BIN_UPPER_EDGE_S = 86400.0


@dataclass(frozen=True, slots=True)
class DwellQuantile:
    value_s: float
    at_least: bool = False  # in an open-ended bin: the stay is value_s or longer


def histogram_quantile(
    bins: Sequence[tuple[float, float, float]], q: float
) -> DwellQuantile | None:
    """Quantile `q` (0..1) of a mixture of bins `(lo_s, hi_s, count)`.

    A bin's mass is spread evenly over its width, except in an open-ended bin (upper edge
    `OPEN_BIN_UPPER_EDGE_S`), whose stays are only known to be at least `lo_s`: its mass sits
    at `lo_s`, and a quantile that needs any of it is a lower bound (`at_least`).
    Bins may overlap (edges changed between summaries): the CDF is walked over the union of
    all edges.
    """
    total = sum(c for _, _, c in bins)
    if total <= 0:
        return None
    closed = [(lo, hi, c) for lo, hi, c in bins if hi < OPEN_BIN_UPPER_EDGE_S]
    open_at: dict[float, float] = defaultdict(float)
    for lo, hi, c in bins:
        if hi >= OPEN_BIN_UPPER_EDGE_S:
            open_at[lo] += c
    edges = sorted({e for lo, hi, _ in closed for e in (lo, hi)} | set(open_at))
    target = q * total
    cum = open_cum = 0.0
    # The last edge pairs with itself: a zero-width step that only holds its open mass.
    for a, b in itertools.pairwise([*edges, edges[-1]]):
        point = open_at.get(a, 0.0)
        if point > 0 and cum + point >= target:
            return DwellQuantile(a, at_least=True)
        cum += point
        open_cum += point
        mass = sum(c * (b - a) / (hi - lo) for lo, hi, c in closed if lo <= a and b <= hi)
        if mass > 0 and cum + mass >= target:
            # Open mass already counted below may in truth lie above: then so may the quantile.
            return DwellQuantile(a + (b - a) * (target - cum) / mass, at_least=open_cum > 0)
        cum += mass
    return DwellQuantile(edges[-1], at_least=open_cum > 0)


def weighted_quantile(values: Iterable[tuple[float, int]], q: float) -> float | None:
    """The value below which a share q of the weight lies (no interpolation)."""
    pairs = sorted((v, w) for v, w in values if w > 0)
    total = sum(w for _, w in pairs)
    if total == 0:
        return None
    cum = 0
    for v, w in pairs:
        cum += w
        if cum >= q * total:
            return v
    return pairs[-1][0]


def dwell(storage: Storage, rng: ReportRange) -> dict[str, Any]:
    zones: dict[str, dict[str, Any]] = {}
    zone_rows = storage.zone_hours(rng.store_id, rng.start, rng.end)
    bin_rows = storage.dwell_bins(rng.store_id, rng.start, rng.end)
    shared = shared_cameras([*zone_rows, *bin_rows])
    for z in zone_rows:
        key = f"{camera_key(z.camera_id, z.device_id, shared)}/{z.zone_id}"
        acc = zones.setdefault(
            key, {"visits": 0, "dwell_count": 0, "dwell_sum_s": 0.0, "occupancy_max": 0}
        )
        acc["visits"] += z.visits
        acc["dwell_count"] += z.dwell_count
        acc["dwell_sum_s"] += z.dwell_sum_s
        acc["occupancy_max"] = max(acc["occupancy_max"], z.occupancy_max)
    bins: dict[str, dict[tuple[float, float], int]] = defaultdict(lambda: defaultdict(int))
    for b in bin_rows:
        bins[f"{camera_key(b.camera_id, b.device_id, shared)}/{b.zone_id}"][(b.lo_s, b.hi_s)] += (
            b.count
        )
    no_hist = [k for k, v in zones.items() if v["dwell_count"] and k not in bins]
    fallback = _interval_quantiles(storage, rng, set(no_hist), shared) if no_hist else {}
    out: dict[str, Any] = {}
    for key, acc in sorted(zones.items()):
        n = acc["dwell_count"]
        entry: dict[str, Any] = {
            "visits": acc["visits"],
            "dwell_count": n,
            "mean_s": round(acc["dwell_sum_s"] / n, 1) if n else None,
            "occupancy_max": acc["occupancy_max"],
        }
        if key in bins:
            merged = [(lo, hi, float(c)) for (lo, hi), c in sorted(bins[key].items())]
            med = histogram_quantile(merged, 0.5)
            p90 = histogram_quantile(merged, 0.9)
            entry.update(
                median_s=None if med is None else round(med.value_s, 1),
                median_at_least=med is not None and med.at_least,
                p90_s=None if p90 is None else round(p90.value_s, 1),
                p90_at_least=p90 is not None and p90.at_least,
                method="histogram",
                histogram={
                    "edges_s": sorted({e for lo, hi, _ in merged for e in (lo, hi)}),
                    "visits_in_histogram": int(sum(c for *_, c in merged)),
                },
            )
        elif key in fallback:
            entry.update(
                fallback[key],
                median_at_least=False,
                p90_at_least=False,
                method="weighted_interval_quantiles",
            )
        else:
            entry.update(
                median_s=None, median_at_least=False, p90_s=None, p90_at_least=False, method=None
            )
        out[key] = entry
    return {"zones": out}


def _interval_quantiles(
    storage: Storage, rng: ReportRange, keys: set[str], shared: set[str]
) -> dict[str, dict[str, float | None]]:
    meds: dict[str, list[tuple[float, int]]] = defaultdict(list)
    p90s: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for s in storage.summary_messages(rng.store_id, rng.start, rng.end):
        for z in s.zones:
            key = f"{camera_key(z.camera_id, s.device_id, shared)}/{z.zone_id}"
            if key in keys and z.dwell_count:
                if z.dwell_median_s is not None:
                    meds[key].append((z.dwell_median_s, z.dwell_count))
                if z.dwell_p90_s is not None:
                    p90s[key].append((z.dwell_p90_s, z.dwell_count))
    return {
        k: {"median_s": weighted_quantile(meds[k], 0.5), "p90_s": weighted_quantile(p90s[k], 0.5)}
        for k in keys
    }


def transitions(storage: Storage, rng: ReportRange) -> list[dict[str, Any]]:
    """Where shoppers go next: counts per (from, to), and each one's share of the moves out
    of its `from` zone. `camera_id` carries the device when two devices share the id."""
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    hour_rows = storage.transition_hours(rng.store_id, rng.start, rng.end)
    shared = shared_cameras(hour_rows)
    for t in hour_rows:
        counts[(camera_key(t.camera_id, t.device_id, shared), t.from_zone, t.to_zone)] += t.count
    leaving: dict[tuple[str, str], int] = defaultdict(int)
    for (cam, a, _), n in counts.items():
        leaving[(cam, a)] += n
    rows: list[dict[str, Any]] = [
        {
            "camera_id": cam,
            "from": a,
            "to": b,
            "count": n,
            "share_of_from": round(n / leaving[(cam, a)], 4),
        }
        for (cam, a, b), n in counts.items()
    ]
    rows.sort(key=lambda r: (-int(r["count"]), r["camera_id"], r["from"], r["to"]))
    return rows


__all__ = [
    "OPEN_BIN_UPPER_EDGE_S",
    "DwellQuantile",
    "dwell",
    "histogram_quantile",
    "transitions",
    "weighted_quantile",
]
