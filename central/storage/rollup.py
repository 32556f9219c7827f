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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from itertools import compress
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
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


# Summaries of one interval share their start (devices close intervals on the minute), so
# the zone conversion runs once per start instead of once per summary (~7 us each).
hour_ts_of = lru_cache(maxsize=4096)(local_hour_ts)


@lru_cache(maxsize=256)
def _bin_keys(edges: tuple[float, ...]) -> tuple[str, ...]:
    """ "lo|hi" keys of a histogram's bins (devices share a few edge sets, so this caches)."""
    return tuple(f"{a!r}|{b!r}" for a, b in itertools.pairwise(edges))


# Built once: json.dumps builds an encoder per call, and JSONEncoder.encode its C encoder per
# call (~5 us of a ~16 us document). Same output; markers=None (no cycle check): the
# document is plain nested dicts and lists.
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)
_C_ENCODER = (
    None
    if c_make_encoder is None  # not CPython: no C encoder
    else c_make_encoder(
        None, _ENCODER.default, encode_basestring_ascii, None, ":", ",", False, False, True
    )
)


def _encode(doc: dict[str, Any]) -> str:
    if _C_ENCODER is None:
        return _ENCODER.encode(doc)
    return "".join(_C_ENCODER(doc, 0))


@dataclass
class HourData:
    """Additive figures of one device for one hour."""

    summaries: int = 0
    lines: dict[str, list[int]] = field(default_factory=dict)  # "cam/line" -> [in, out]
    zones: dict[str, list[float]] = field(default_factory=dict)  # "cam/zone" -> ZONE_FIELDS
    bins: dict[str, dict[str, int]] = field(default_factory=dict)  # "cam/zone" -> {"lo|hi": n}
    transitions: dict[str, int] = field(default_factory=dict)  # "cam|from|to" -> n

    def add_summary(self, s: Summary) -> None:
        """Add one summary's figures; the stored numbers are exactly those of adding them to
        zeroed accumulators and `merge`-ing that (0 + x == x, 0.0 + x == x but for -0.0)."""
        self.summaries += 1
        duration_s = (s.interval_end - s.interval_start).total_seconds()
        lines = self.lines
        for lc in s.lines:
            key = f"{lc.camera_id}/{lc.line_id}"
            acc = lines.get(key)
            if acc is None:
                lines[key] = [lc.in_count, lc.out_count]
            else:
                acc[0] += lc.in_count
                acc[1] += lc.out_count
        zones = self.zones
        for z in s.zones:
            key = f"{z.camera_id}/{z.zone_id}"
            mean = z.dwell_mean_s
            dwell_s = 0.0 if mean is None else 0.0 + mean * z.dwell_count
            za = zones.get(key)
            if za is None:
                zones[key] = [
                    z.visits,
                    z.dwell_count,
                    dwell_s,
                    0.0 + z.occupancy_mean * duration_s,
                    0.0 + duration_s,
                    z.occupancy_max,
                ]
            else:
                za[0] += z.visits
                za[1] += z.dwell_count
                za[2] += dwell_s
                za[3] += 0.0 + z.occupancy_mean * duration_s
                za[4] += 0.0 + duration_s
                za[5] = max(za[5], z.occupancy_max)
            hist = z.dwell_hist
            if hist is not None:
                # Most bins are empty: compress/filter skip them in C (the model checked
                # that counts has one entry per bin).
                counts = hist.counts
                nonzero = zip(
                    compress(_bin_keys(tuple(hist.edges_s)), counts),
                    filter(None, counts),
                    strict=True,
                )
                zb = self.bins.get(key)
                if zb is None:
                    self.bins[key] = dict(nonzero)
                else:
                    for b, n in nonzero:
                        zb[b] = zb.get(b, 0) + n
        transitions = self.transitions
        for t in s.transitions:
            k = f"{t.camera_id}|{t.from_zone}|{t.to_zone}"
            transitions[k] = transitions.get(k, 0) + t.count

    def merge_summaries(self, group: Sequence[Summary]) -> None:
        """`merge` of the group summed from zero, to the last bit of every float; a lone
        summary is added in place (0.0 + x == x) unless it names a zone twice, whose two
        figures the merge would have summed first."""
        if len(group) == 1:
            s = group[0]
            zones = s.zones
            if len(zones) < 2 or len({(z.camera_id, z.zone_id) for z in zones}) == len(zones):
                self.add_summary(s)
                return
        delta = HourData()
        for s in group:
            delta.add_summary(s)
        self.merge(delta)

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
        return _encode({"l": self.lines, "z": self.zones, "b": self.bins, "t": self.transitions})

    @classmethod
    def from_json(cls, summaries: int, text: str) -> HourData:
        d: dict[str, Any] = json.loads(text) if text else {}
        return cls(summaries, d.get("l", {}), d.get("z", {}), d.get("b", {}), d.get("t", {}))


RollupKey = tuple[str, int, str]  # store_id, hour_ts, device_id


def rollup_key(s: Summary) -> RollupKey:
    return (s.store_id, hour_ts_of(s.interval_start, s.timezone), s.device_id)


def group_by_hour(summaries: Iterable[Summary]) -> dict[RollupKey, list[Summary]]:
    """The summaries of each device-hour, in the order given."""
    out: dict[RollupKey, list[Summary]] = {}
    for s in summaries:
        key = (s.store_id, hour_ts_of(s.interval_start, s.timezone), s.device_id)
        group = out.get(key)
        if group is None:
            out[key] = [s]
        else:
            group.append(s)
    return out


def rollup(summaries: Iterable[Summary]) -> dict[RollupKey, HourData]:
    out: dict[RollupKey, HourData] = {}
    for key, group in group_by_hour(summaries).items():
        hd = out[key] = HourData()
        for s in group:
            hd.add_summary(s)
    return out


__all__ = [
    "ZONE_FIELDS",
    "HourData",
    "RollupKey",
    "group_by_hour",
    "hour_ts_of",
    "local_hour_ts",
    "rollup",
    "rollup_key",
    "zone_info",
]
