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
    `n_epochs` counts the epochs in which the zone read the tag and `hist` marks the last 64 of
    them (bit 0 = `last_epoch`): presence evidence, which is comparable across readers of any
    unit.
    """

    __slots__ = (
        "dbm",
        "dbm_seen",
        "hist",
        "last_epoch",
        "last_seen",
        "n_epochs",
        "raw",
        "raw_seen",
        "reader_id",
    )

    def __init__(self, ts: float, epoch: int, reader_id: str):
        self.last_seen = ts
        self.reader_id = reader_id
        self.last_epoch = epoch
        self.n_epochs = 1
        self.hist = 1
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

    def epochs_read(self, first_epoch: int, last_epoch: int) -> int:
        """Epochs from `first_epoch` to `last_epoch` in which the zone read the tag (only the
        zone's last 64 epochs are known)."""
        hi = min(last_epoch, self.last_epoch)
        lo = max(first_epoch, self.last_epoch - HISTORY_EPOCHS + 1)
        if hi < lo:
            return 0
        # bit k of `hist` is epoch last_epoch - k
        k_lo = self.last_epoch - hi
        return (self.hist >> k_lo & ((1 << (hi - lo + 1)) - 1)).bit_count()

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
            sig.last_seen = max(sig.last_seen, ts)
            if epoch > sig.last_epoch:
                shift = epoch - sig.last_epoch
                sig.hist = (
                    ((sig.hist << shift) | 1) & _HISTORY_MASK if shift < HISTORY_EPOCHS else 1
                )
                sig.last_epoch = epoch
                sig.n_epochs += 1
            sig.reader_id = reader_id
        # EWMA per unit; a value not refreshed within the window restarts from the new read.
        if dbm is not None:
            sig.dbm, sig.dbm_seen = _ewma(
                sig.dbm, sig.dbm_seen, dbm, ts=ts, window_s=window_s, alpha=cfg.rssi_alpha
            )
        elif raw is not None:
            sig.raw, sig.raw_seen = _ewma(
                sig.raw, sig.raw_seen, raw, ts=ts, window_s=window_s, alpha=cfg.rssi_alpha
            )

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

    def one_unit(self) -> bool:
        """Every zone that read the tag reported strength in the same single unit."""
        units = {sig.units() for sig in self.zones.values()}
        return len(units) == 1 and len(next(iter(units))) == 1

    def rssi_leader(self, cur: str, at: float) -> tuple[str | None, float]:
        """The strongest zone among those reading the tag in a unit the current zone `cur`
        reports, with its lead over `cur` in that unit; (None, 0) if `cur` leads or no zone
        can be compared with it. Zones that read the tag in the last `rssi_window_s` count.

        If `cur` has lost the tag (no read in the window) it counts as -inf, as long as every
        zone still reading the tag reports that unit; if a zone of another unit (or without
        RSSI) is reading it too, the numbers cannot say which of them has it, and (None, 0)
        leaves the decision to `presence_leader`. (An item moved from a Chafon 288 shelf to an
        M100 shelf was otherwise given to the next Chafon antenna, which cross-read it.)"""
        horizon = at - self.cfg.rssi_window_s
        zones = self.zones
        cur_sig = zones[cur]
        # Unrolled over the two units: this runs for every read tag on every tick.
        if cur_sig.dbm_seen > -math.inf:
            if cur_sig.dbm_seen >= horizon:
                best, best_value = cur, cur_sig.dbm
                for name, sig in zones.items():
                    if sig.dbm_seen >= horizon and sig.dbm > best_value:
                        best, best_value = name, sig.dbm
                if best != cur:
                    return best, best_value - cur_sig.dbm
            elif cur_sig.last_seen < horizon:
                return self._lost_leader(cur, horizon, DBM)
            # else: still read by `cur`, without a dBm value: nothing to compare
        if cur_sig.raw_seen > -math.inf:
            if cur_sig.raw_seen >= horizon:
                best, best_value = cur, cur_sig.raw
                for name, sig in zones.items():
                    if sig.raw_seen >= horizon and sig.raw > best_value:
                        best, best_value = name, sig.raw
                if best != cur:
                    return best, best_value - cur_sig.raw
            elif cur_sig.last_seen < horizon:
                return self._lost_leader(cur, horizon, RAW)
        return None, 0.0

    def _lost_leader(self, cur: str, horizon: float, unit: str) -> tuple[str | None, float]:
        best: str | None = None
        best_value = -math.inf
        for name, sig in self.zones.items():
            if name == cur or sig.last_seen < horizon:
                continue
            seen, value = (sig.dbm_seen, sig.dbm) if unit == DBM else (sig.raw_seen, sig.raw)
            if seen < horizon:
                return None, 0.0  # read recently, but not in this unit
            if value > best_value:
                best, best_value = name, value
        return best, math.inf

    def presence_leader(self, cur: str, at: float, min_epoch_lead: int) -> str | None:
        """The zone the tag has moved to by presence evidence, or None.

        Only once the current zone `cur` has not read it for the tag's whole removal window
        (`expiry_s`): the evidence that would remove it. Then, among the zones reading it (in
        the last `rssi_window_s`; of several of one unit only the strongest), the one that read
        it in the most epochs since `cur` lost it, when it leads the next (or none) by
        `min_epoch_lead` epochs; failing that, once `cur` has been silent for
        `absence_timeout_s`, the leader anyway (the item must go somewhere, and it has not
        gone: it is being read)."""
        cfg = self.cfg
        zones = self.zones
        cur_last = zones[cur].last_seen
        silent_s = at - cur_last
        if silent_s < min(cfg.min_absence_s, cfg.absence_timeout_s) or silent_s < self.expiry_s():
            return None
        horizon = at - cfg.rssi_window_s
        cands: list[str] = []
        for unit in (DBM, RAW):
            best: str | None = None
            best_value = -math.inf
            for name, sig in zones.items():
                if name != cur and sig.value(unit, at, cfg.rssi_window_s) > best_value:
                    best, best_value = name, sig.value(unit, at, cfg.rssi_window_s)
            if best is not None and best not in cands:
                cands.append(best)
        for name, sig in zones.items():
            if (
                name != cur
                and sig.last_seen >= horizon
                and sig.dbm_seen < horizon
                and sig.raw_seen < horizon
            ):
                cands.append(name)  # reading it without RSSI
        if not cands:
            return None
        first_epoch = math.floor(cur_last / cfg.epoch_s) + 1
        last_epoch = math.floor(at / cfg.epoch_s)
        counts = {name: zones[name].epochs_read(first_epoch, last_epoch) for name in cands}
        cands.sort(key=lambda name: -counts[name])  # stable: dBm, raw, none on equal counts
        lead = counts[cands[0]] - (counts[cands[1]] if len(cands) > 1 else 0)
        if lead >= min_epoch_lead or silent_s >= cfg.absence_timeout_s:
            return cands[0]
        return None

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


def _ewma(
    value: float, seen_ts: float, new: float, *, ts: float, window_s: float, alpha: float
) -> tuple[float, float]:
    """One smoothed-RSSI step: (value, last refresh time) after a read of `new` at ts."""
    value = new if ts - seen_ts > window_s else value + alpha * (new - value)
    return value, max(seen_ts, ts)


__all__ = ["DBM", "HISTORY_EPOCHS", "MIN_HISTORY_EPOCHS", "RAW", "TagState", "ZoneSignal"]
