"""Events in, wire messages out: interval summaries and immediate stock events.

Pure and time-injected: the caller passes every timestamp (frame time, read time, or the wall
clock for ticks); nothing here reads a clock, touches a file or starts a thread.

Intervals are aligned to wall-clock boundaries of ``aggregation.interval_s`` in the store's
time zone (``interval_s`` divides an hour). An interval never spans a UTC-offset change: at a
DST transition that does not fall on a boundary (e.g. Lord Howe's 30-minute shift) the interval
is cut at the transition, so every summary is one stretch of constant local offset.

What a summary covers, and restarts (the design choice):

* A summary covers ``[interval_start, interval_end)`` of *observation*. In steady state that is
  one aligned interval. The first summary after a start begins at the start time, and the last
  one before a stop ends at the stop time (its real end), so central sums summaries that fall in
  the same aligned bucket and never sees a count for time nobody was watching.
* The open interval is checkpointed (``checkpoint()``) into the outbox's state table, in the same
  SQLite transaction as any summary emitted, and otherwise about once a second. A graceful stop
  flushes it as a summary with its real end. After a crash (kill -9, power cut) ``recover()``
  turns the last checkpoint into a summary ending at the last time it covered, written together
  with the new checkpoint: counts committed before the crash are sent exactly once. Events after
  the last checkpoint (at most ~1 s) were never committed and are the only loss.
* Zero intervals are emitted: a zero is data.

Zone ``visits`` are entries seen as increases of a zone's occupancy count between consecutive
frames (visits that *started* in the interval); ``dwell_*`` come from completed ``ZoneVisit``
events (visits that *ended* in the interval). Transitions are counted per zone pair: no track id
leaves the device.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from edge_agent import wire
from edge_agent.config import AgentConfig
from rfid.events import (
    ItemArrived,
    ItemMoved,
    ItemRemoved,
    StockEvent,
    StockLow,
    StockOut,
    StockRestored,
)
from vision.events import CrossingEvent, ZoneOccupancy, ZoneTransition, ZoneVisit

log = logging.getLogger(__name__)

# Dwell histogram bin edges (seconds). The last bin takes everything longer than an hour.
DWELL_EDGES_S: tuple[float, ...] = (0, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 86400)
# A clock jump (NTP correcting a Pi that booted without an RTC) must not emit thousands of
# zero summaries for time nobody observed: past this many intervals, the open interval is closed
# at its last observed time and a new one starts at the new time.
MAX_GAP_INTERVALS = 60
# Placeholder seq: the outbox stamps the real device seq inside the storing transaction.
UNSEQUENCED = 1

CHECKPOINT_VERSION = 1


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _offset_s(tz: ZoneInfo, t: int) -> int:
    off = datetime.fromtimestamp(t, tz).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


def _first_change(tz: ZoneInfo, lo: int, hi: int) -> int:
    """The first second in (lo, hi] whose UTC offset differs from lo's (one change inside)."""
    off = _offset_s(tz, lo)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset_s(tz, mid) == off:
            lo = mid
        else:
            hi = mid
    return hi


def next_boundary(ts: float, interval_s: int, tz: ZoneInfo) -> float:
    """The first local-time interval boundary (or UTC-offset change) strictly after ts."""
    t = math.floor(ts)
    off = _offset_s(tz, t)
    b = ((t + off) // interval_s + 1) * interval_s - off
    if _offset_s(tz, b) != off:
        b = _first_change(tz, t, b)
    return float(b)


def interval_start(ts: float, interval_s: int, tz: ZoneInfo) -> float:
    """The aligned start of the interval containing ts (respecting offset changes)."""
    t = math.floor(ts)
    off = _offset_s(tz, t)
    start = ((t + off) // interval_s) * interval_s - off
    if _offset_s(tz, start) != off:
        # The offset changed in (start, t]: the interval starts at that change.
        start = _first_change(tz, start, t)
    return float(start)


@dataclass
class _Open:
    """The counts of the interval being filled. All keys are 'camera/id' strings."""

    start: float
    end: float
    last_ts: float
    lines: dict[str, list[int]] = field(default_factory=dict)
    entries: dict[str, int] = field(default_factory=dict)
    occ_sum: dict[str, float] = field(default_factory=dict)
    occ_n: dict[str, int] = field(default_factory=dict)
    occ_max: dict[str, int] = field(default_factory=dict)
    dwell_s: dict[str, list[float]] = field(default_factory=dict)
    transitions: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        doc = {"v": CHECKPOINT_VERSION, **self.__dict__}
        return json.dumps(doc, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> _Open:
        doc: dict[str, Any] = json.loads(text)
        if doc.pop("v", None) != CHECKPOINT_VERSION:
            raise ValueError("unknown checkpoint version")
        return cls(**doc)


class Aggregator:
    """Turns vision and stock events into wire messages. Not thread-safe: one owner."""

    def __init__(self, cfg: AgentConfig, start_ts: float) -> None:
        self.cfg = cfg
        self.interval_s = cfg.aggregation.interval_s
        self.tz = ZoneInfo(cfg.store.timezone)
        self._lines = [f"{c.id}/{ln.id}" for c in cfg.cameras for ln in c.lines]
        self._zones = [f"{c.id}/{z.id}" for c in cfg.cameras for z in c.zones]
        self._zones_of: dict[str, list[str]] = {c.id: [z.id for z in c.zones] for c in cfg.cameras}
        self._last_occ: dict[str, int] = {}
        self._open = self._new(start_ts, start_ts)
        self.dirty = False
        self.unknown_events = 0
        # Events that could not become a wire message (a value the format refuses), dropped
        # alone: raising would also lose every message closed with them (see `_unsendable`).
        self.invalid_messages: dict[str, int] = {"stock_event": 0, "summary": 0}

    # -- intervals ---------------------------------------------------------------------------
    def _new(self, start: float, at: float) -> _Open:
        return _Open(start=start, end=next_boundary(at, self.interval_s, self.tz), last_ts=start)

    @property
    def open_start(self) -> float:
        return self._open.start

    @property
    def open_end(self) -> float:
        return self._open.end

    def tick(self, now: float) -> list[wire.Summary]:
        """Close every interval that ended at or before `now` (zero intervals included)."""
        out: list[wire.Summary] = []
        if now < self._open.end:
            self._open.last_ts = max(self._open.last_ts, now)
            return out
        if now - self._open.end > MAX_GAP_INTERVALS * self.interval_s:
            log.warning(
                "clock jumped %.0f s ahead; closing the open interval at its last observed time",
                now - self._open.end,
            )
            if self._open.last_ts > self._open.start:
                out.extend(self._close(self._open, end=self._open.last_ts))
            self._open = self._new(now, now)
            self.dirty = True
            return out
        while now >= self._open.end:
            out.extend(self._close(self._open, end=self._open.end))
            self._open = self._new(self._open.end, self._open.end)
        self._open.last_ts = now
        self.dirty = True
        return out

    def flush(self, now: float) -> list[wire.Summary]:
        """Close the open interval at `now` (its real end) and start a new one there."""
        out = self.tick(now)
        end = max(now, self._open.last_ts)
        if end > self._open.start:
            out.extend(self._close(self._open, end=min(end, self._open.end)))
            self._open = self._new(end, end)
            self.dirty = True
        return out

    # -- events --------------------------------------------------------------------------------
    def add(self, event: object) -> list[wire.Summary | wire.StockEventMsg]:
        """Add one event. Stock events come straight back as messages; an event later than the
        open interval first closes the intervals before it."""
        if isinstance(event, StockEvent):
            try:
                return [self.stock_message(event)]
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                self._unsendable("stock_event", repr(event), exc)
                return []
        ts = getattr(event, "exited_ts", None) or getattr(event, "ts", None)
        if not isinstance(ts, float | int):
            self.unknown_events += 1
            return []
        out: list[wire.Summary | wire.StockEventMsg] = list(self.tick(float(ts)))
        # Late events (ts before the open interval) are counted in the open interval: a count is
        # never dropped for arriving late, at the price of landing one interval late.
        o = self._open
        if isinstance(event, CrossingEvent):
            pair = o.lines.setdefault(f"{event.camera_id}/{event.line_id}", [0, 0])
            pair[0 if event.direction == "in" else 1] += 1
        elif isinstance(event, ZoneOccupancy):
            names = set(self._zones_of.get(event.camera_id, [])) | set(event.counts)
            for zone in names:
                key = f"{event.camera_id}/{zone}"
                n = int(event.counts.get(zone, 0))
                prev = self._last_occ.get(key, 0)
                if n > prev:
                    o.entries[key] = o.entries.get(key, 0) + (n - prev)
                self._last_occ[key] = n
                o.occ_sum[key] = o.occ_sum.get(key, 0.0) + n
                o.occ_n[key] = o.occ_n.get(key, 0) + 1
                o.occ_max[key] = max(o.occ_max.get(key, 0), n)
        elif isinstance(event, ZoneVisit):
            o.dwell_s.setdefault(f"{event.camera_id}/{event.zone_id}", []).append(
                max(0.0, event.dwell_s)
            )
        elif isinstance(event, ZoneTransition):
            key = f"{event.camera_id}/{event.from_zone}/{event.to_zone}"
            o.transitions[key] = o.transitions.get(key, 0) + 1
        else:
            self.unknown_events += 1
            return out
        self.dirty = True
        return out

    def stock_message(self, ev: StockEvent) -> wire.StockEventMsg:
        fields: dict[str, Any] = {
            "store_id": self.cfg.store.id,
            "device_id": self.cfg.device.id,
            "seq": UNSEQUENCED,
            "created_at": _utc(ev.ts),
            "event_type": ev.event_type,
            "ts": _utc(ev.ts),
            "zone": ev.zone,
        }
        if isinstance(ev, ItemArrived | ItemRemoved | ItemMoved):
            fields.update(epc=ev.epc, gtin=ev.gtin, reader_id=ev.reader_id or None)
            if isinstance(ev, ItemMoved):
                fields["from_zone"] = ev.from_zone
        elif isinstance(ev, StockLow | StockRestored):
            fields.update(gtin=ev.gtin, count=ev.count, threshold=ev.threshold)
        elif isinstance(ev, StockOut):
            fields.update(gtin=ev.gtin, count=ev.count)
        return wire.StockEventMsg(**fields)

    def _unsendable(self, kind: str, what: str, exc: ValueError) -> None:
        """Count and log a message that cannot be built. The caller drops it: the interval or
        event it came from is already closed, and every message closed with it must still
        reach the outbox."""
        self.invalid_messages[kind] += 1
        log.error("dropping a %s the wire format refuses: %s: %s", kind, what, exc)

    # -- summaries -----------------------------------------------------------------------------
    def _close(self, o: _Open, end: float) -> list[wire.Summary]:
        """The summary of an interval being closed, or nothing if it cannot be built: the
        aggregator moves past the interval either way, so a bad value cannot stop it forever."""
        try:
            return [self._summary(o, end)]
        except ValueError as exc:
            self._unsendable("summary", f"interval {_utc(o.start)}..{_utc(end)}", exc)
            return []

    def _summary(self, o: _Open, end: float) -> wire.Summary:
        if end <= o.start:
            end = o.start + 0.001  # a degenerate interval still carries its counts
        lines = []
        for key in sorted(set(self._lines) | set(o.lines)):
            cam, line = key.split("/", 1)
            n_in, n_out = o.lines.get(key, [0, 0])
            lines.append(
                wire.LineCount.model_validate(
                    {"camera_id": cam, "line_id": line, "in": n_in, "out": n_out}
                )
            )
        zones = []
        zone_keys = set(self._zones) | set(o.occ_n) | set(o.dwell_s) | set(o.entries)
        for key in sorted(zone_keys):
            cam, zone = key.split("/", 1)
            dwell = o.dwell_s.get(key, [])
            stats: dict[str, Any] = {}
            if dwell:
                arr = np.asarray(dwell, dtype=float)
                counts, _ = np.histogram(
                    np.clip(arr, 0, DWELL_EDGES_S[-1]), bins=np.asarray(DWELL_EDGES_S)
                )
                stats = {
                    "dwell_mean_s": round(float(arr.mean()), 3),
                    "dwell_median_s": round(float(np.median(arr)), 3),
                    "dwell_p90_s": round(float(np.percentile(arr, 90)), 3),
                    "dwell_hist": wire.DwellHistogram(
                        edges_s=list(DWELL_EDGES_S), counts=[int(c) for c in counts]
                    ),
                }
            n = o.occ_n.get(key, 0)
            zones.append(
                wire.ZoneStats(
                    camera_id=cam,
                    zone_id=zone,
                    visits=o.entries.get(key, 0),
                    occupancy_mean=round(o.occ_sum.get(key, 0.0) / n, 4) if n else 0.0,
                    occupancy_max=o.occ_max.get(key, 0),
                    dwell_count=len(dwell),
                    **stats,
                )
            )
        transitions = []
        for key in sorted(o.transitions):
            cam, a, b = key.split("/", 2)
            transitions.append(
                wire.Transition(camera_id=cam, from_zone=a, to_zone=b, count=o.transitions[key])
            )
        return wire.Summary(
            store_id=self.cfg.store.id,
            device_id=self.cfg.device.id,
            seq=UNSEQUENCED,
            created_at=_utc(end),
            interval_start=_utc(o.start),
            interval_end=_utc(end),
            timezone=self.cfg.store.timezone,
            lines=lines,
            zones=zones,
            transitions=transitions,
        )

    def totals(self) -> _Open:
        """The open interval's counts (read-only view, for tests and the run summary)."""
        return self._open

    # -- checkpoint and recovery ---------------------------------------------------------------
    def checkpoint(self) -> str:
        """The open interval as JSON, to store in the same transaction as emitted summaries."""
        self.dirty = False
        return self._open.to_json()

    def recover(self, text: str | None) -> list[wire.Summary]:
        """Turn a crashed run's checkpoint into the summary it owed (ending at its last
        observed time). Store the result together with a fresh `checkpoint()`."""
        if not text:
            return []
        try:
            old = _Open.from_json(text)
        except (ValueError, TypeError, KeyError) as exc:
            log.error("ignoring unreadable aggregation checkpoint: %s", exc)
            return []
        end = min(max(old.last_ts, old.start), old.end)
        if end <= old.start and not (old.lines or old.dwell_s or old.transitions or old.occ_n):
            return []
        self.dirty = True
        return self._close(old, end=end)


def summary_totals(summaries: list[wire.Summary]) -> dict[str, Any]:
    """Sum lines and zones over summaries (the `run --until-sources-end` report)."""
    lines: dict[str, dict[str, int]] = {}
    zones: dict[str, dict[str, Any]] = {}
    for s in summaries:
        for ln in s.lines:
            d = lines.setdefault(f"{ln.camera_id}/{ln.line_id}", {"in": 0, "out": 0})
            d["in"] += ln.in_count
            d["out"] += ln.out_count
        for z in s.zones:
            zd = zones.setdefault(
                f"{z.camera_id}/{z.zone_id}", {"visits": 0, "dwell_count": 0, "occupancy_max": 0}
            )
            zd["visits"] += z.visits
            zd["dwell_count"] += z.dwell_count
            zd["occupancy_max"] = max(zd["occupancy_max"], z.occupancy_max)
    return {"lines": lines, "zones": zones}


__all__ = [
    "DWELL_EDGES_S",
    "MAX_GAP_INTERVALS",
    "UNSEQUENCED",
    "Aggregator",
    "interval_start",
    "next_boundary",
    "summary_totals",
]
