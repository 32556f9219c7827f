"""A simulated shelf reader: the radio is the one thing that cannot exist in a test.

Shelves are zones in a row, each watched by one antenna of one reader. Every inventory cycle
each item is read by its own shelf's antenna with probability `read_rate` (65 %, typical of real
deployments) at about -55 dBm, and by each adjacent shelf's antenna with `cross_rate` at a
weaker -68 dBm (cross-reads). Items can be taken, moved or added at known times, and the reader
can go offline; the ground truth is kept so tests can judge every event the engine emits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from rfid.config import AntennaConfig, PresenceConfig, ReaderConfig
from rfid.epc import sgtin96_from_gtin
from rfid.events import TagRead

READER_ID = "shelf-reader"
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
                reads.append(TagRead(epc, now, READER_ID, ant + 1, float(rssi)))
        rng.shuffle(reads)
        return reads

    def truth(self) -> dict[str, str]:
        return {epc: f"shelf-{shelf + 1}" for epc, shelf in self.items.items()}
