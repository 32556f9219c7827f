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
_HISTORY_MASK = (1 << HISTORY_EPOCHS) - 1
MIN_HISTORY_EPOCHS = 16


class ZoneSignal:
    """Smoothed strength of one tag as seen by one zone."""

    __slots__ = ("last_seen", "reader_id", "value")

    def __init__(self, value: float, last_seen: float, reader_id: str):
        self.value = value
        self.last_seen = last_seen
        self.reader_id = reader_id


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

    def observe(self, ts: float, zone: str, strength: float, reader_id: str) -> None:
        """One read. Reads may arrive slightly out of order; the history only moves forward."""
        cfg = self.cfg
        self.last_seen = max(self.last_seen, ts)
        epoch = math.floor(ts / cfg.epoch_s)
        if epoch > self.last_epoch:
            shift = min(epoch - self.last_epoch, HISTORY_EPOCHS)
            self.hist = ((self.hist << shift) | 1) & _HISTORY_MASK
            self.last_epoch = epoch
            self.n_epochs += 1
        self.n_reads += 1
        sig = self.zones.get(zone)
        if sig is None:
            self.zones[zone] = ZoneSignal(strength, ts, reader_id)
        elif ts - sig.last_seen > cfg.rssi_window_s:
            sig.value = strength
            sig.last_seen = ts
            sig.reader_id = reader_id
        else:
            sig.value += cfg.rssi_alpha * (strength - sig.value)
            sig.last_seen = max(sig.last_seen, ts)
            sig.reader_id = reader_id

    def debounced(self) -> bool:
        """Enough reads in enough distinct epochs to believe the tag is really there."""
        return self.n_reads >= self.cfg.appear_min_reads and (
            self.n_epochs >= self.cfg.appear_min_epochs
        )

    def best_zone(self, now: float, recent_only: bool = True) -> str | None:
        """The zone with the strongest smoothed value among zones that read the tag recently
        (or, with `recent_only=False`, ever: used for the first zone of a new item)."""
        horizon = now - self.cfg.rssi_window_s if recent_only else -math.inf
        best: str | None = None
        best_value = -math.inf
        for name, sig in self.zones.items():
            if sig.last_seen >= horizon and sig.value > best_value:
                best, best_value = name, sig.value
        return best

    def zone_value(self, zone: str | None, now: float) -> float:
        sig = self.zones.get(zone) if zone is not None else None
        if sig is None or sig.last_seen < now - self.cfg.rssi_window_s:
            return -math.inf
        return sig.value

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


__all__ = ["HISTORY_EPOCHS", "MIN_HISTORY_EPOCHS", "TagState", "ZoneSignal"]
