"""Per-tag smoothed state: read history by epoch, smoothed RSSI per zone, removal window.

A `TagState` is updated on every read (cheap: the stock engine ingests >= 100,000 reads/s) and
judged once per tick. Its history is a 64-bit mask of the epochs in which it was read.

Removal window (SMURF-style, Jeffery et al. 2006): a tag read in a fraction p of its epochs is
missed for w epochs in a row with probability (1 - p)^w, so the window that keeps that chance
under `removal_delta` is w = ln(delta) / ln(1 - p). p is taken at its lower 2-sigma bound
(SMURF's own transition test uses 2 sigma), so a flaky tag gets a long window and a tag read in
every epoch a short one. The window is bounded by `min_absence_s` and `absence_timeout_s`, and
until 16 epochs of history exist the fixed `absence_timeout_s` applies. With `adaptive: false`
the window is always `absence_timeout_s`.
"""

from __future__ import annotations

import math

from rfid.config import PresenceConfig

HISTORY_EPOCHS = 64
DBM = "dbm"  # M100, LLRP PeakRSSI
RAW = "raw"  # Chafon 288: unsigned byte, larger is stronger, no known relation to dBm
_HISTORY_MASK = (1 << HISTORY_EPOCHS) - 1
MIN_HISTORY_EPOCHS = 16


class ZoneSignal:
    """What one zone knows of one tag: when it read it, and its smoothed strength per unit.

    Readers report strength in different units: M100 and LLRP in dBm, the Chafon 288 as a raw
    unsigned byte (larger is stronger, not dBm), Chafon 18 and RDM6300 not at all. A number is
    only comparable with one of the same unit, so each unit is smoothed on its own (`dbm`,
    `raw`, each with the time of its last read) and a zone read only without RSSI has neither.
    `since` is the start of the zone's current run of reads (no gap over `rssi_window_s`) and
    `n_epochs` counts the epochs in which the zone read the tag: presence evidence, which is
    comparable across readers of any unit.
    """

    __slots__ = (
        "dbm",
        "dbm_seen",
        "last_epoch",
        "last_seen",
        "n_epochs",
        "raw",
        "raw_seen",
        "reader_id",
        "since",
    )

    def __init__(self, ts: float, epoch: int, reader_id: str):
        self.last_seen = ts
        self.since = ts
        self.reader_id = reader_id
        self.last_epoch = epoch
        self.n_epochs = 1
        self.dbm = 0.0
        self.dbm_seen = -math.inf  # never: no dBm value
        self.raw = 0.0
        self.raw_seen = -math.inf

    def value(self, unit: str, now: float, window_s: float) -> float:
        """Smoothed strength in `unit` ("dbm" or "raw"); -inf if not read in it for
        `window_s`."""
        if unit == DBM:
            return self.dbm if self.dbm_seen >= now - window_s else -math.inf
        return self.raw if self.raw_seen >= now - window_s else -math.inf

    def units(self) -> tuple[str, ...]:
        """The strength units this zone has ever reported for the tag (dBm first)."""
        if self.dbm_seen > -math.inf:
            return (DBM, RAW) if self.raw_seen > -math.inf else (DBM,)
        return (RAW,) if self.raw_seen > -math.inf else ()


class TagState:
    __slots__ = (
        "cand_since",
        "cand_zone",
        "cfg",
        "epc",
        "first_epoch",
        "first_seen",
        "gtin",
        "hist",
        "last_epoch",
        "last_seen",
        "n_epochs",
        "n_reads",
        "present",
        "zone",
        "zones",
    )

    def __init__(self, epc: str, gtin: str | None, ts: float, cfg: PresenceConfig):
        self.epc = epc
        self.gtin = gtin
        self.cfg = cfg
        self.first_seen = ts
        self.last_seen = ts
        self.first_epoch = math.floor(ts / cfg.epoch_s)
        self.last_epoch = self.first_epoch - 1
        self.hist = 0
        self.n_epochs = 0
        self.n_reads = 0
        self.present = False
        self.zone: str | None = None
        self.zones: dict[str, ZoneSignal] = {}
        self.cand_zone: str | None = None
        self.cand_since = 0.0

    def observe(
        self, ts: float, zone: str, reader_id: str, dbm: float | None, raw: float | None
    ) -> None:
        """One read, with its strength in dBm or raw units (offset applied), or neither.

        Reads may arrive slightly out of order; the history only moves forward."""
        cfg = self.cfg
        self.last_seen = max(self.last_seen, ts)
        epoch = math.floor(ts / cfg.epoch_s)
        if epoch > self.last_epoch:
            shift = min(epoch - self.last_epoch, HISTORY_EPOCHS)
            self.hist = ((self.hist << shift) | 1) & _HISTORY_MASK
            self.last_epoch = epoch
            self.n_epochs += 1
        self.n_reads += 1
        window_s = cfg.rssi_window_s
        sig = self.zones.get(zone)
        if sig is None:
            sig = self.zones[zone] = ZoneSignal(ts, epoch, reader_id)
        else:
            if ts > sig.last_seen:
                if ts - sig.last_seen > window_s:
                    sig.since = ts  # a gap: the zone's run of reads starts again
                sig.last_seen = ts
            if epoch > sig.last_epoch:
                sig.last_epoch = epoch
                sig.n_epochs += 1
            sig.reader_id = reader_id
        # EWMA per unit; a value not refreshed within the window restarts from the new read.
        if dbm is not None:
            seen = sig.dbm_seen
            if ts - seen > window_s:
                sig.dbm = dbm
            else:
                sig.dbm += cfg.rssi_alpha * (dbm - sig.dbm)
            if ts > seen:
                sig.dbm_seen = ts
        elif raw is not None:
            seen = sig.raw_seen
            if ts - seen > window_s:
                sig.raw = raw
            else:
                sig.raw += cfg.rssi_alpha * (raw - sig.raw)
            if ts > seen:
                sig.raw_seen = ts

    def debounced(self) -> bool:
        """Enough reads in enough distinct epochs to believe the tag is really there."""
        return self.n_reads >= self.cfg.appear_min_reads and (
            self.n_epochs >= self.cfg.appear_min_epochs
        )

    def first_zone(self, now: float, min_epoch_lead: int, decide_by_s: float) -> str | None:
        """The zone of a new item, or None while the zones' evidence is not yet clear.

        Within one unit the strongest smoothed value over all reads so far wins: a home antenna
        that missed the last few cycles keeps its stronger value, so a cross-read cannot win by
        default. Strengths of different units (or none) cannot be compared, so between the
        winners of each unit and the zones without RSSI the zone that read the tag in the most
        epochs wins, once it leads the next by `min_epoch_lead` epochs (a sequential test: a
        home antenna reads a tag in more epochs than a neighbour cross-reads it, and a lead
        of k epochs is reached by the wrong zone first with a chance that falls geometrically
        in k), or at the latest once the tag has been known for `decide_by_s` (a real item is
        never left uncounted; on equal epochs the dBm zone wins).
        """
        zones = self.zones
        cands: list[str] = []
        for unit in (DBM, RAW):
            best: str | None = None
            best_value = -math.inf
            for name, sig in zones.items():
                if unit == DBM:
                    seen, value = sig.dbm_seen, sig.dbm
                else:
                    seen, value = sig.raw_seen, sig.raw
                if seen > -math.inf and value > best_value:
                    best, best_value = name, value
            if best is not None and best not in cands:
                cands.append(best)
        cands += [name for name, sig in zones.items() if not sig.units()]
        if len(cands) <= 1:
            return cands[0] if cands else None
        # Stable: on equal epochs the order above decides (dBm, raw, then zones without RSSI).
        cands.sort(key=lambda name: -zones[name].n_epochs)
        lead = zones[cands[0]].n_epochs - zones[cands[1]].n_epochs
        if lead >= min_epoch_lead or now - self.first_seen >= decide_by_s:
            return cands[0]
        return None

    def rssi_leader(self, cur: str, at: float) -> tuple[str | None, float]:
        """The strongest zone among those reading the tag in a unit the current zone `cur`
        reports too, with its lead over `cur` in that unit; (None, 0) if `cur` leads or no
        zone can be compared with it. Zones that read the tag in the last `rssi_window_s`
        count; `cur` counts as -inf if it has not (it lost the tag)."""
        horizon = at - self.cfg.rssi_window_s
        zones = self.zones
        cur_sig = zones[cur]
        # Unrolled over the two units: this runs for every read tag on every tick.
        if cur_sig.dbm_seen > -math.inf:
            cur_value = cur_sig.dbm if cur_sig.dbm_seen >= horizon else -math.inf
            # Still read by `cur` but without a dBm value (e.g. an LLRP report without
            # PeakRSSI): nothing to compare.
            if cur_value > -math.inf or cur_sig.last_seen < horizon:
                best, best_value = cur, cur_value
                for name, sig in zones.items():
                    if sig.dbm_seen >= horizon and sig.dbm > best_value:
                        best, best_value = name, sig.dbm
                if best != cur:
                    return best, best_value - cur_value
        if cur_sig.raw_seen > -math.inf:
            cur_value = cur_sig.raw if cur_sig.raw_seen >= horizon else -math.inf
            if cur_value > -math.inf or cur_sig.last_seen < horizon:
                best, best_value = cur, cur_value
                for name, sig in zones.items():
                    if sig.raw_seen >= horizon and sig.raw > best_value:
                        best, best_value = name, sig.raw
                if best != cur:
                    return best, best_value - cur_value
        return None, 0.0

    def presence_leader(self, cur: str, at: float) -> str | None:
        """A zone that has kept reading the tag (no gap over `rssi_window_s`) for at least
        `zone_dwell_s` while the current zone `cur` has not read it for the tag's whole
        removal window (`expiry_s`): the evidence that would remove it, plus a new home. Of
        several, the one reading it longest."""
        cfg = self.cfg
        zones = self.zones
        silent_s = at - zones[cur].last_seen
        if silent_s < min(cfg.min_absence_s, cfg.absence_timeout_s) or silent_s < self.expiry_s():
            return None
        horizon = at - cfg.rssi_window_s
        best: str | None = None
        best_since = math.inf
        for name, sig in zones.items():
            if (
                name != cur
                and sig.last_seen >= horizon
                and at - sig.since >= cfg.zone_dwell_s
                and sig.since < best_since
            ):
                best, best_since = name, sig.since
        return best

    def read_rate(self) -> tuple[float, int]:
        """(fraction of epochs with a read, epochs observed) over the recent history."""
        span = min(HISTORY_EPOCHS, self.last_epoch - self.first_epoch + 1)
        if span <= 0:
            return 0.0, 0
        return self.hist.bit_count() / span, span

    def expiry_s(self) -> float:
        """How long this tag may go unread (reader healthy) before it counts as removed."""
        cfg = self.cfg
        timeout = cfg.absence_timeout_s
        if not cfg.adaptive:
            return timeout
        p, n = self.read_rate()
        if n < MIN_HISTORY_EPOCHS:
            return timeout
        p_low = p - 2.0 * math.sqrt(p * (1.0 - p) / n) - 1.0 / n  # continuity margin
        if p_low <= 0.0:
            return timeout
        if p_low >= 1.0:
            p_low = 1.0 - 1e-6
        # log1p: for a p_low of order 1e-17, 1.0 - p_low rounds to 1.0 and log() gives a zero
        # divisor (found by the hypothesis invariants test).
        window_epochs = math.ceil(math.log(cfg.removal_delta) / math.log1p(-p_low))
        lower = min(cfg.min_absence_s, timeout)
        return min(timeout, max(lower, window_epochs * cfg.epoch_s))


__all__ = ["DBM", "HISTORY_EPOCHS", "MIN_HISTORY_EPOCHS", "RAW", "TagState", "ZoneSignal"]
