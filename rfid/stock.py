"""From tag reads to stock events: deterministic, time passed in, bounded memory.

    engine = StockEngine(readers, low_stock_thresholds={"80614141123458": 2})
    engine.set_reader_health("shelf-reader", True, now)
    engine.ingest(reads)
    events = engine.tick(now)

* An item arrives once it passes the debounce (reads in distinct epochs, `PresenceConfig`) and
  has been known for `zone_dwell_s`, so that its first zone is as settled as a moved one.
* Readers report strength in different units (M100, LLRP: dBm; Chafon 288: a raw byte, larger
  is stronger; Chafon 18, RDM6300: none), and only numbers of one unit are compared. Between
  zones of one unit, an item is assigned to the zone with the best smoothed RSSI and moves only
  when another zone leads by `zone_hysteresis_db` for `zone_dwell_s`, so cross-reads from a
  neighbouring shelf do not make it flap. Across units (and for readers without RSSI) it moves
  only on presence evidence: its zone has not read it for its whole removal window, and of the
  zones reading it, the one that read it in the most epochs since (by a clear lead, or at the
  latest after `absence_timeout_s`) takes it. Its first zone across units is likewise the one
  that read it in clearly more epochs (`presence.TagState.first_zone`). A tag read only by the
  neighbour has moved, not gone.
* It is removed only after going unread for its window (`presence.TagState.expiry_s`) while
  every reader of its zone is healthy and has been healthy for a full `absence_timeout_s`:
  a reader outage freezes its zones, and after a reconnect departures wait one full window.
  A reader that proves it is looking (`heard_ts`: its last frame, from a reader that always
  answers) must also have been heard after the window ended: a reader that hangs is still
  "connected" until it is found stale, and its items must not leave meanwhile.
* Per GTIN and zone, the count drives stock_low / stock_out after `low_stock_hold_s`, and
  stock_restored once the count is back to threshold + 2 (hysteresis: a low level stays low at
  threshold + 1). Out of stock, any count above the threshold restores at once, and a count of
  1..threshold is stock_low after the hold, so every stock-out ends with an event carrying a count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rfid.config import PresenceConfig, ReaderConfig
from rfid.epc import EpcError, decode_epc
from rfid.events import (
    ItemArrived,
    ItemMoved,
    ItemRemoved,
    StockEvent,
    StockLow,
    StockOut,
    StockRestored,
    TagRead,
)
from rfid.presence import TagState

DEFAULT_MAX_TAGS = 200_000
# First zone, or new zone by presence, across strength units: the leader must read the tag in
# this many more epochs than the next zone. With 65 % home reads per epoch and 30 % cross-reads, each epoch moves the lead
# +1 with p = 0.46 and -1 with q = 0.11, so the wrong zone gets there first with a chance of
# about (q / p)^6 = 1.5e-4, after some 17 epochs on average (standard deviation about 8).
PRESENCE_EPOCH_LEAD = 6
# ...and if no zone gets that lead (both readers read it about as often), the leader is taken
# after this many absence timeouts: late enough that a home zone with a bad start has caught
# up (a decision at one timeout, 30 s, went to the neighbour in a seeded test), soon enough
# that a real item is counted within minutes.
ARRIVAL_DECIDE_TIMEOUTS = 4
_GTIN_CACHE_MAX = 100_000


@dataclass(frozen=True, slots=True)
class _Antenna:
    zone: str
    offset_db: float
    cfg: PresenceConfig


class _Reader:
    __slots__ = ("healthy", "healthy_since", "heard_ts")

    def __init__(self) -> None:
        self.healthy = True
        self.healthy_since: float | None = None  # set at the first tick or health report
        # Its last frame, when the reader reports one that proves it is looking (None: it
        # only speaks when a tag is there, so silence proves nothing either way).
        self.heard_ts: float | None = None


class _Level:
    """Stock level state of one GTIN in one zone."""

    __slots__ = ("count", "pending", "pending_since", "state")

    def __init__(self) -> None:
        self.count = 0
        self.state = "ok"  # ok | low | out
        self.pending: str | None = None
        self.pending_since = 0.0


def gtin_of(epc: str) -> str | None:
    """The GTIN-14 of an SGTIN-96 EPC, else None (other schemes have no product)."""
    if not epc.startswith("30"):
        return None
    try:
        return decode_epc(epc).gtin
    except EpcError:
        return None


class StockEngine:
    def __init__(
        self,
        readers: Sequence[ReaderConfig],
        low_stock_thresholds: Mapping[str, int],
        *,
        max_tags: int = DEFAULT_MAX_TAGS,
    ):
        self.thresholds = dict(low_stock_thresholds)
        self.max_tags = max_tags
        self._antennas: dict[tuple[str, int], _Antenna] = {}
        self._readers: dict[str, _Reader] = {}
        self._zone_readers: dict[str, list[str]] = {}
        self._zone_cfg: dict[str, PresenceConfig] = {}
        for rc in readers:
            self._readers[rc.id] = _Reader()
            for num, ant in rc.antennas.items():
                self._antennas[(rc.id, num)] = _Antenna(ant.zone, ant.rssi_offset_db, rc.presence)
                zr = self._zone_readers.setdefault(ant.zone, [])
                if rc.id not in zr:
                    zr.append(rc.id)
                self._zone_cfg.setdefault(ant.zone, rc.presence)
        self._tags: dict[str, TagState] = {}
        self._dirty: dict[str, TagState] = {}
        # Present tags their zone has lost (no read for `rssi_window_s`): judged on every tick,
        # read or not, so that a move by presence is reported when the window ends rather than
        # at the next read after it. Only moved or departing items are in it, so it stays small.
        self._lost: dict[str, TagState] = {}
        self._levels: dict[tuple[str, str], _Level] = {}
        self._levels_due: dict[tuple[str, str], _Level] = {}
        self._gtins: dict[str, str | None] = {}
        self._sweep_s = min(cfg.epoch_s for cfg in self._zone_cfg.values()) / 4 if readers else 1
        self._next_sweep = -math.inf
        self.unmapped_reads = 0
        self.dropped_new_tags = 0

    # --- inputs ----------------------------------------------------------------------------

    def set_reader_health(
        self, reader_id: str, healthy: bool, now: float, heard_ts: float | None = None
    ) -> None:
        """`heard_ts`: the time of the reader's last frame, for a reader whose frames keep
        coming while it works (polled, or with heartbeats); None when it has no such frames."""
        r = self._readers.get(reader_id)
        if r is None:
            return
        if healthy and (not r.healthy or r.healthy_since is None):
            r.healthy_since = now
        r.healthy = healthy
        if heard_ts is not None and (r.heard_ts is None or heard_ts > r.heard_ts):
            r.heard_ts = heard_ts

    def ingest(self, reads: Iterable[TagRead]) -> None:
        antennas = self._antennas
        tags = self._tags
        dirty = self._dirty
        for read in reads:
            ant = antennas.get((read.reader_id, read.antenna))
            if ant is None:
                self.unmapped_reads += 1
                continue
            epc = read.epc
            tag = tags.get(epc)
            if tag is None:
                if len(tags) >= self.max_tags:
                    self.dropped_new_tags += 1
                    continue
                tag = tags[epc] = TagState(epc, self._gtin(epc), read.ts, ant.cfg)
            # Units stay apart (dBm vs the Chafon 288's raw byte): adding them up to one
            # number let a raw 64 beat any dBm value. The offset calibrates within a unit.
            dbm = read.rssi_dbm
            raw = read.rssi_raw
            tag.observe(
                read.ts,
                ant.zone,
                read.reader_id,
                None if dbm is None else dbm + ant.offset_db,
                None if raw is None else raw + ant.offset_db,
            )
            dirty[epc] = tag

    # --- outputs ---------------------------------------------------------------------------

    def tick(self, now: float) -> list[StockEvent]:
        events: list[StockEvent] = []
        for r in self._readers.values():
            if r.healthy_since is None:
                r.healthy_since = now
        dirty = self._dirty
        for tag in dirty.values():
            if tag.epc in self._tags:
                self._judge(tag, now, events)
        for epc, tag in list(self._lost.items()):
            if epc not in dirty:
                self._judge(tag, now, events)
        dirty.clear()
        if now >= self._next_sweep:
            self._sweep(now, events)
            self._next_sweep = now + self._sweep_s
        if self._levels_due:
            self._judge_levels(now, events)
        return events

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Items present per zone and GTIN (only SGTIN tags have a GTIN)."""
        out: dict[str, dict[str, int]] = {}
        for (gtin, zone), level in self._levels.items():
            if level.count:
                out.setdefault(zone, {})[gtin] = level.count
        return out

    def present_items(self) -> dict[str, str]:
        """EPC -> zone of every item currently present."""
        return {t.epc: t.zone for t in self._tags.values() if t.present and t.zone is not None}

    @property
    def tracked_tags(self) -> int:
        return len(self._tags)

    def _heard_after(self, zone: str, ts: float) -> bool:
        """Every reader of the zone that reports its frames was heard at or after `ts`."""
        for rid in self._zone_readers.get(zone, ()):
            heard = self._readers[rid].heard_ts
            if heard is not None and heard < ts:
                return False
        return True

    def zone_healthy(self, zone: str, now: float, full_window: bool = False) -> bool:
        """All readers of the zone healthy (and, with `full_window`, for a whole window)."""
        cfg = self._zone_cfg.get(zone)
        for rid in self._zone_readers.get(zone, ()):
            r = self._readers[rid]
            if not r.healthy or r.healthy_since is None:
                return False
            if full_window and cfg is not None and now - r.healthy_since < cfg.absence_timeout_s:
                return False
        return True

    # --- internals -------------------------------------------------------------------------

    def _gtin(self, epc: str) -> str | None:
        cache = self._gtins
        if epc in cache:
            return cache[epc]
        if len(cache) >= _GTIN_CACHE_MAX:
            cache.clear()
        gtin = cache[epc] = gtin_of(epc)
        return gtin

    def _judge(self, tag: TagState, now: float, events: list[StockEvent]) -> None:
        """Arrival or zone change of a tag that was read since the last tick (or that its zone
        has lost: see `_lost`)."""
        if not tag.present:
            # The first zone is only committed after a full dwell, like a move: with a 65 %
            # read rate the home antenna can miss a new tag while a neighbour cross-reads it.
            if not tag.debounced() or tag.last_seen - tag.first_seen < tag.cfg.zone_dwell_s:
                return
            zone = tag.first_zone(
                max(now, tag.last_seen),
                PRESENCE_EPOCH_LEAD,
                ARRIVAL_DECIDE_TIMEOUTS * tag.cfg.absence_timeout_s,
            )
            if zone is None:
                return
            tag.present = True
            tag.zone = zone
            self._count(tag.gtin, zone, +1)
            events.append(ItemArrived(tag.epc, tag.gtin, zone, tag.zones[zone].reader_id, now))
            return
        cur = tag.zone
        assert cur is not None
        if not self.zone_healthy(cur, now):
            tag.cand_zone = None  # frozen while its reader is down
            return
        at = tag.last_seen
        cfg = tag.cfg
        best, lead = tag.rssi_leader(cur, at)
        if best is not None and lead >= cfg.zone_hysteresis_db:
            if tag.cand_zone != best:
                tag.cand_zone = best
                tag.cand_since = at
            elif at - tag.cand_since >= cfg.zone_dwell_s:
                self._move(tag, cur, best, now, events)
                return
            if lead < math.inf or tag.one_unit():
                return
            # `cur` lost the tag: the presence rule below may settle it first (its evidence is
            # stronger), e.g. when another unit's zone reading it now and then keeps
            # interrupting this candidate's dwell.
        else:
            tag.cand_zone = None
        # Across units no number says which zone is closer, so only presence can: the zone
        # stopped reading the tag for as long as it would take to remove it, and another zone
        # reads it in clearly more epochs than any other since. Steady cross-reads never
        # satisfy this (the home zone keeps reading), so they cannot cause a move storm. As for
        # a removal, the zone's readers must have been healthy for a full window: silence from
        # an outage is not evidence.
        at = max(at, now)
        if tag.zones[cur].last_seen >= at - cfg.rssi_window_s:
            if self._lost:
                self._lost.pop(tag.epc, None)
            return
        best = tag.presence_leader(cur, at, PRESENCE_EPOCH_LEAD)
        if best is not None and self.zone_healthy(cur, now, full_window=True):
            self._move(tag, cur, best, now, events)
        else:
            self._lost[tag.epc] = tag

    def _move(
        self, tag: TagState, cur: str, best: str, now: float, events: list[StockEvent]
    ) -> None:
        tag.zone = best
        tag.cand_zone = None
        self._lost.pop(tag.epc, None)
        self._count(tag.gtin, cur, -1)
        self._count(tag.gtin, best, +1)
        events.append(ItemMoved(tag.epc, tag.gtin, cur, best, tag.zones[best].reader_id, now))

    def _sweep(self, now: float, events: list[StockEvent]) -> None:
        """Removals of present items, and forgetting never-confirmed tags."""
        gone: list[str] = []
        healthy_cache: dict[str, bool] = {}
        for epc, tag in self._tags.items():
            unseen_s = now - tag.last_seen
            if not tag.present:
                if unseen_s > tag.cfg.absence_timeout_s:
                    gone.append(epc)
                continue
            if unseen_s < tag.cfg.min_absence_s and unseen_s < tag.cfg.absence_timeout_s:
                continue  # fast path: nothing can expire this early
            zone = tag.zone
            assert zone is not None
            ok = healthy_cache.get(zone)
            if ok is None:
                ok = healthy_cache[zone] = self.zone_healthy(zone, now, full_window=True)
            expiry_s = tag.expiry_s()
            if (
                not ok
                or unseen_s < expiry_s
                or not self._heard_after(zone, tag.last_seen + expiry_s)
            ):
                continue
            gone.append(epc)
            self._count(tag.gtin, zone, -1)
            sig = tag.zones.get(zone)
            reader_id = sig.reader_id if sig is not None else ""
            events.append(ItemRemoved(epc, tag.gtin, zone, reader_id, now, tag.last_seen))
        for epc in gone:
            del self._tags[epc]
            self._dirty.pop(epc, None)
            self._lost.pop(epc, None)

    def _count(self, gtin: str | None, zone: str, delta: int) -> None:
        if gtin is None:
            return
        key = (gtin, zone)
        level = self._levels.get(key)
        if level is None:
            level = self._levels[key] = _Level()
        level.count += delta
        if gtin in self.thresholds:
            self._levels_due[key] = level

    def _judge_levels(self, now: float, events: list[StockEvent]) -> None:
        done: list[tuple[str, str]] = []
        for key, level in self._levels_due.items():
            gtin, zone = key
            threshold = self.thresholds[gtin]
            count = level.count
            if count == 0:
                target = "out"
            elif count <= threshold:
                target = "low"
            elif count >= threshold + 2 or level.state == "out":
                # The band (threshold + 1) only stops low/ok flapping. Kept as "out", a
                # restock to threshold + 1 sent nothing and central's stock-out (and its
                # lost-sales estimate) stayed open; the count is not low either (<= threshold).
                target = "ok"
            else:
                target = level.state  # inside the hysteresis band: keep low or ok
            if target == level.state:
                level.pending = None
                done.append(key)
                continue
            if target == "ok":
                level.state = "ok"
                level.pending = None
                events.append(StockRestored(gtin, zone, count, threshold, now))
                done.append(key)
                continue
            if level.pending != target:
                level.pending = target
                level.pending_since = now
            hold_s = self._zone_cfg[zone].low_stock_hold_s if zone in self._zone_cfg else 0.0
            if now - level.pending_since < hold_s:
                continue  # still due: judged again next tick
            level.state = target
            level.pending = None
            if target == "out":
                events.append(StockOut(gtin, zone, now))
            else:
                events.append(StockLow(gtin, zone, count, threshold, now))
            done.append(key)
        for key in done:
            del self._levels_due[key]


__all__ = ["StockEngine", "gtin_of"]
