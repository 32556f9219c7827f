"""The hourly rollup: everything analytics needs from a device's summaries, one row per
store, local hour and device (pure code, no SQL).

Why one row per device-hour holding a small JSON document, and not one row per line, zone,
dwell bin and transition: a realistic 1-minute summary (2 lines, 4 zones with dwell
histograms, 3 transitions) touches ~24 such rows, and upserting them capped ingest at ~1,000
summaries/s on PostgreSQL. A device-hour document is one read-modify-write per summary (the
writer locks the row, merges, writes back), and a 30-day store report reads ~720 rows per
device. Keys inside the document join ids with '/' and '|', which ids cannot contain.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge_agent.wire import Summary

# zone figures, in this order: visits, dwell_count, dwell_sum_s, occupancy_person_s,
# covered_s, occupancy_max
ZONE_FIELDS = ("visits", "dwell_count", "dwell_sum_s", "occupancy_person_s", "covered_s", "max")


@lru_cache(maxsize=512)
def zone_info(name: str) -> ZoneInfo:
    """The store's zone; an unknown name falls back to UTC (ingest rejects those earlier)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_hour_ts(instant: datetime, timezone: str) -> int:
    """Epoch second of the start of the local wall-clock hour that contains `instant`."""
    local = instant.astimezone(zone_info(timezone))
    # replace() keeps `fold`, so the repeated hour at a DST fall-back stays distinct.
    return int(local.replace(minute=0, second=0, microsecond=0).timestamp())


@lru_cache(maxsize=256)
def _bin_keys(edges: tuple[float, ...]) -> tuple[str, ...]:
    """ "lo|hi" keys of a histogram's bins (devices share a few edge sets, so this caches)."""
    return tuple(f"{a!r}|{b!r}" for a, b in itertools.pairwise(edges))


@dataclass
class HourData:
    """Additive figures of one device for one hour."""

    summaries: int = 0
    lines: dict[str, list[int]] = field(default_factory=dict)  # "cam/line" -> [in, out]
    zones: dict[str, list[float]] = field(default_factory=dict)  # "cam/zone" -> ZONE_FIELDS
    bins: dict[str, dict[str, int]] = field(default_factory=dict)  # "cam/zone" -> {"lo|hi": n}
    transitions: dict[str, int] = field(default_factory=dict)  # "cam|from|to" -> n

    def add_summary(self, s: Summary) -> None:
        self.summaries += 1
        duration_s = (s.interval_end - s.interval_start).total_seconds()
        for lc in s.lines:
            acc = self.lines.setdefault(f"{lc.camera_id}/{lc.line_id}", [0, 0])
            acc[0] += lc.in_count
            acc[1] += lc.out_count
        for z in s.zones:
            key = f"{z.camera_id}/{z.zone_id}"
            za = self.zones.setdefault(key, [0, 0, 0.0, 0.0, 0.0, 0])
            za[0] += z.visits
            za[1] += z.dwell_count
            if z.dwell_mean_s is not None:
                za[2] += z.dwell_mean_s * z.dwell_count
            za[3] += z.occupancy_mean * duration_s
            za[4] += duration_s
            za[5] = max(za[5], z.occupancy_max)
            if z.dwell_hist is not None:
                names = _bin_keys(tuple(z.dwell_hist.edges_s))
                zb = self.bins.setdefault(key, {})
                for b, n in zip(names, z.dwell_hist.counts, strict=True):
                    if n:
                        zb[b] = zb.get(b, 0) + n
        for t in s.transitions:
            k = f"{t.camera_id}|{t.from_zone}|{t.to_zone}"
            self.transitions[k] = self.transitions.get(k, 0) + t.count

    def merge(self, other: HourData) -> None:
        self.summaries += other.summaries
        for k, (i, o) in other.lines.items():
            acc = self.lines.setdefault(k, [0, 0])
            acc[0] += i
            acc[1] += o
        for k, z in other.zones.items():
            za = self.zones.setdefault(k, [0, 0, 0.0, 0.0, 0.0, 0])
            for j in range(5):
                za[j] += z[j]
            za[5] = max(za[5], z[5])
        for k, bins in other.bins.items():
            zb = self.bins.setdefault(k, {})
            for b, n in bins.items():
                zb[b] = zb.get(b, 0) + n
        for k, n in other.transitions.items():
            self.transitions[k] = self.transitions.get(k, 0) + n

    def to_json(self) -> str:
        return json.dumps(
            {"l": self.lines, "z": self.zones, "b": self.bins, "t": self.transitions},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, summaries: int, text: str) -> HourData:
        d: dict[str, Any] = json.loads(text) if text else {}
        return cls(summaries, d.get("l", {}), d.get("z", {}), d.get("b", {}), d.get("t", {}))


RollupKey = tuple[str, int, str]  # store_id, hour_ts, device_id


def rollup(summaries: Iterable[Summary]) -> dict[RollupKey, HourData]:
    out: dict[RollupKey, HourData] = {}
    for s in summaries:
        key = (s.store_id, local_hour_ts(s.interval_start, s.timezone), s.device_id)
        hd = out.get(key)
        if hd is None:
            hd = out[key] = HourData()
        hd.add_summary(s)
    return out


__all__ = ["ZONE_FIELDS", "HourData", "RollupKey", "local_hour_ts", "rollup", "zone_info"]
