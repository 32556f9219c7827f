"""A simulated shelf reader: the radio is the one thing that cannot exist in a test.

Shelves are zones in a row, each watched by one antenna of one reader. Every inventory cycle
each item is read by its own shelf's antenna with probability `read_rate` (65 %, typical of real
deployments) at about -55 dBm, and by each adjacent shelf's antenna with `cross_rate` at a
weaker -68 dBm (cross-reads). Items can be taken, moved or added at known times, and the reader
can go offline; the ground truth is kept so tests can judge every event the engine emits.

With `mixed=True` the shelves report strength in different units, as on a device with a Chafon
288 beside an M100: the last shelf is watched by an M100 (dBm), the others by the Chafon 288's
antennas, which report a raw byte (here dBm + 120, a mapping the engine does not know). The
random draws are the same as without it, so a seed gives the same reads in either mode.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from dataclasses import dataclass, field

from rfid.config import AntennaConfig, PresenceConfig, ReaderConfig
from rfid.epc import sgtin96_from_gtin
from rfid.events import ItemMoved, ItemRemoved, StockEvent, TagRead
from rfid.stock import StockEngine, gtin_of

READER_ID = "shelf-reader"
M100_ID = "shelf-m100"  # the last shelf's reader with `mixed=True`
RAW_MINUS_DBM = 120  # the simulated Chafon 288 byte for a dBm value
GTINS = ("80614141123458", "08719139005740", "00008000011378")
COMPANY_PREFIX_LEN = {"80614141123458": 7, "08719139005740": 7, "00008000011378": 7}


def shelf_reader_config(n_shelves: int = 4, presence: PresenceConfig | None = None) -> ReaderConfig:
    return ReaderConfig(
        id=READER_ID,
        port="/dev/null",
        protocol="chafon288",
        antennas={i + 1: AntennaConfig(zone=f"shelf-{i + 1}") for i in range(n_shelves)},
        presence=presence or PresenceConfig(),
    )


def shelf_reader_configs(
    n_shelves: int = 4, presence: PresenceConfig | None = None, mixed: bool = False
) -> list[ReaderConfig]:
    """The readers of a `ShelfSim` with the same `n_shelves` and `mixed`."""
    if not mixed:
        return [shelf_reader_config(n_shelves, presence)]
    m100 = ReaderConfig(
        id=M100_ID,
        port="/dev/null",
        protocol="m100",
        antennas={1: AntennaConfig(zone=f"shelf-{n_shelves}")},
        presence=presence or PresenceConfig(),
    )
    return [shelf_reader_config(n_shelves - 1, presence), m100]


@dataclass
class ShelfSim:
    n_shelves: int = 4
    read_rate: float = 0.65
    cross_rate: float = 0.3
    home_rssi_dbm: float = -55.0
    cross_rssi_dbm: float = -68.0
    rssi_sigma_db: float = 3.0
    seed: int = 1
    items: dict[str, int] = field(default_factory=dict)  # epc -> shelf index (0-based)
    initial: dict[str, int] = field(default_factory=dict)  # epc -> shelf it was stocked on
    online: bool = True
    mixed: bool = False
    _serial: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def add_item(self, gtin: str, shelf: int) -> str:
        self._serial += 1
        epc = sgtin96_from_gtin(gtin, COMPANY_PREFIX_LEN[gtin], self._serial)
        self.items[epc] = shelf
        self.initial[epc] = shelf
        return epc

    def stock(self, per_shelf: int) -> None:
        for shelf in range(self.n_shelves):
            for k in range(per_shelf):
                self.add_item(GTINS[k % len(GTINS)], shelf)

    def cycle(self, now: float) -> list[TagRead]:
        """The reads of one inventory cycle over all antennas (none while offline)."""
        if not self.online:
            return []
        rng = self.rng
        reads: list[TagRead] = []
        for epc, shelf in self.items.items():
            for ant in (shelf - 1, shelf, shelf + 1):
                if not 0 <= ant < self.n_shelves:
                    continue
                home = ant == shelf
                if rng.random() >= (self.read_rate if home else self.cross_rate):
                    continue
                mean = self.home_rssi_dbm if home else self.cross_rssi_dbm
                rssi = round(rng.gauss(mean, self.rssi_sigma_db))
                if not self.mixed:
                    reads.append(TagRead(epc, now, READER_ID, ant + 1, float(rssi)))
                elif ant == self.n_shelves - 1:
                    reads.append(TagRead(epc, now, M100_ID, 1, float(rssi)))
                else:
                    raw = rssi + RAW_MINUS_DBM
                    reads.append(TagRead(epc, now, READER_ID, ant + 1, rssi_raw=raw))
        rng.shuffle(reads)
        return reads

    @property
    def reader_ids(self) -> list[str]:
        return [READER_ID, M100_ID] if self.mixed else [READER_ID]

    def truth(self) -> dict[str, str]:
        return {epc: f"shelf-{shelf + 1}" for epc, shelf in self.items.items()}


HOUR_T0 = 1_750_000_000.0
HOUR_S = 3600
LOW_THRESHOLD = 3


@dataclass
class HourRun:
    """One simulated hour (`hour_on_the_shelf`): the engine's events and the ground truth."""

    sim: ShelfSim
    engine: StockEngine
    expiry_s: float
    hold_s: float
    events: list[StockEvent] = field(default_factory=list)
    taken: dict[str, float] = field(default_factory=dict)  # epc -> when
    moved: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # epc -> from, to, when
    added: dict[str, float] = field(default_factory=dict)
    due_low: set[tuple[str, str]] = field(default_factory=set)  # (gtin, zone) low for long


def hour_on_the_shelf(seed: int, adaptive: bool, mixed: bool = False) -> HourRun:
    """4 shelves of 12 items; a shopper takes an item every 150 s from t = 120 s, staff move one
    two shelves along at 600, 1500 and 2400 s and restock at 900 and 2000 s."""
    presence = PresenceConfig(adaptive=adaptive)
    sim = ShelfSim(seed=seed, mixed=mixed)
    sim.stock(per_shelf=12)
    engine = StockEngine(
        shelf_reader_configs(presence=presence, mixed=mixed), dict.fromkeys(GTINS, LOW_THRESHOLD)
    )
    run = HourRun(sim, engine, presence.absence_timeout_s, presence.low_stock_hold_s)
    rng = random.Random(seed * 101)
    low_since: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], int] = {}
    change_times = set(range(120, HOUR_S, 150)) | {600, 1500, 2400, 900, 2000}
    for t in range(HOUR_S):
        now = HOUR_T0 + t
        if t >= 120 and t % 150 == 0:
            e = rng.choice(sorted(set(sim.items) - set(run.moved)))
            del sim.items[e]
            run.taken[e] = now
        if t in (600, 1500, 2400):
            e = rng.choice(sorted(set(sim.items) - set(run.moved)))
            src = sim.items[e]
            dst = (src + 2) % sim.n_shelves
            sim.items[e] = dst
            run.moved[e] = (f"shelf-{src + 1}", f"shelf-{dst + 1}", now)
        if t in (900, 2000):
            run.added[sim.add_item(GTINS[0], t % sim.n_shelves)] = now
        if t == 0 or t in change_times:
            counts = _true_counts(sim)
        for key, n in counts.items():
            if n <= LOW_THRESHOLD:
                low_since.setdefault(key, now)
                # Slack: the removal window, then the hold, then a few ticks.
                if now - low_since[key] > run.expiry_s + run.hold_s + 5:
                    run.due_low.add(key)
            else:
                low_since.pop(key, None)
        reads = sim.cycle(now)
        for rid in sim.reader_ids:
            engine.set_reader_health(rid, True, now)
        engine.ingest(reads)
        run.events += engine.tick(now)
    return run


def _true_counts(sim: ShelfSim) -> dict[tuple[str, str], int]:
    counts = {(g, f"shelf-{z + 1}"): 0 for g in GTINS for z in range(sim.n_shelves)}
    for e, zone in sim.truth().items():
        counts[(gtin_of(e) or "", zone)] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    """Summary over seeds: python -m tests.rfid.shelf_sim [--mixed] [--fixed] --seeds 1 30"""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--seeds", type=int, nargs=2, default=(1, 10), metavar=("FIRST", "LAST"))
    ap.add_argument("--mixed", action="store_true", help="last shelf on an M100 (dBm)")
    ap.add_argument("--fixed", action="store_true", help="fixed 30 s window (adaptive off)")
    args = ap.parse_args(argv)
    removal_s: list[float] = []
    move_s: list[float] = []
    false_rm = missed = wrong_moves = extra_moves = real_moves = 0
    for seed in range(args.seeds[0], args.seeds[1] + 1):
        run = hour_on_the_shelf(seed, adaptive=not args.fixed, mixed=args.mixed)
        removed = {e.epc: e.ts for e in run.events if isinstance(e, ItemRemoved)}
        false_rm += len(set(removed) - set(run.taken))
        missed += len(set(run.taken) - set(removed))
        removal_s += [removed[e] - run.taken[e] for e in removed if e in run.taken]
        moves = [e for e in run.events if isinstance(e, ItemMoved)]
        real_moves += len(run.moved)
        extra_moves += max(0, len(moves) - len(run.moved))
        for m in moves:
            src, dst, at = run.moved.get(m.epc, ("", "", 0.0))
            if (m.from_zone, m.zone) != (src, dst):
                wrong_moves += 1
            else:
                move_s.append(m.ts - at)
    print(
        f"seeds {args.seeds[0]}-{args.seeds[1]} mixed={args.mixed} adaptive={not args.fixed}:"
        f" false removals {false_rm}, missed {missed}; removal latency min/median/max"
        f" {min(removal_s):.0f}/{statistics.median(removal_s):.0f}/{max(removal_s):.0f} s;"
        f" moves {len(move_s)} of {real_moves} real, {wrong_moves} wrong, {extra_moves} extra;"
        f" move latency min/median/max"
        f" {min(move_s):.0f}/{statistics.median(move_s):.0f}/{max(move_s):.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
