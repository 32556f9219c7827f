"""A simulated Chafon UHFReader288 shelf reader on the far end of a pseudo-terminal.

The agent's real serial reader opens the pty's slave end like a USB-serial port and sends real
inventory commands (`Len Adr 01 ... Ant ScanTime CRC`); this simulator answers each one on the
master end with a real inventory response frame built by `rfid.protocols.chafon`: the tags on
the commanded antenna that this cycle happened to read (65% per cycle, as deployments report),
each with a raw RSSI byte, or the "no tag" status. Items a shopper took are no longer on the
shelf, so they stop being read: that is all the stock engine gets to see.
"""

from __future__ import annotations

import contextlib
import os
import tty
from dataclasses import dataclass, field

import numpy as np

from rfid.crc import mcrf4xx_residue_ok
from rfid.epc import sgtin96_from_gtin
from rfid.protocols import chafon

READ_RATE = 0.65
COMMAND_MAX_BYTES = 64


@dataclass(slots=True)
class ShelfTag:
    epc_hex: str
    gtin: str
    antenna: int
    rssi_raw: int  # Chafon 288 reports an unsigned strength, larger is stronger
    on_shelf: bool = True


def make_tags(
    items: list[tuple[str, int]],
    antenna_of_zone: dict[str, int],
    zones: list[str],
    company_prefix_len: int,
    rng: np.random.Generator,
) -> list[ShelfTag]:
    """One SGTIN-96 tag per (gtin, serial), on the antenna of its shelf zone."""
    tags = []
    for (gtin, serial), zone in zip(items, zones, strict=True):
        epc = sgtin96_from_gtin(gtin, company_prefix_len, serial)
        tags.append(ShelfTag(epc, gtin, antenna_of_zone[zone], int(rng.integers(55, 75))))
    return tags


@dataclass(slots=True)
class SimStats:
    commands: int = 0
    bad_commands: int = 0
    responses: int = 0
    tag_reports: int = 0
    tag_opportunities: int = 0  # on-shelf tags under the commanded antenna, summed over cycles
    no_tag_responses: int = 0
    dropped_bytes: int = 0
    per_antenna_cycles: dict[int, int] = field(default_factory=dict)


class SimulatedChafon288:
    """Owns a pty pair; `port` is the path the agent opens. Call `service()` after each poll."""

    def __init__(
        self, tags: list[ShelfTag], seed: int, read_rate: float = READ_RATE, address: int = 0
    ) -> None:
        self.tags = tags
        self.read_rate = read_rate
        self.address = address
        self.rng = np.random.default_rng(seed)
        self.master_fd, self.slave_fd = os.openpty()
        # Both ends raw, or the line discipline would rewrite 0A/0D bytes inside frames.
        tty.setraw(self.master_fd)
        tty.setraw(self.slave_fd)
        os.set_blocking(self.master_fd, False)
        self.port = os.ttyname(self.slave_fd)
        self._rx = bytearray()
        self.stats = SimStats()

    def remove(self, epc_hex: str) -> None:
        self._set(epc_hex, on_shelf=False)

    def put(self, epc_hex: str) -> None:
        self._set(epc_hex, on_shelf=True)

    def _set(self, epc_hex: str, *, on_shelf: bool) -> None:
        for tag in self.tags:
            if tag.epc_hex == epc_hex:
                tag.on_shelf = on_shelf

    def _read_master(self) -> None:
        while True:
            try:
                chunk = os.read(self.master_fd, 4096)
            except BlockingIOError:
                return
            except OSError:
                return  # slave closed: the agent closed the port
            if not chunk:
                return
            self._rx += chunk

    def _next_command(self) -> bytes | None:
        """Pop one whole command frame (length-prefixed, CRC-checked) off the receive buffer."""
        rx = self._rx
        while rx:
            length = rx[0]
            if length < 4 or length > COMMAND_MAX_BYTES:
                del rx[0]
                self.stats.bad_commands += 1
                continue
            if len(rx) < length + 1:
                return None
            frame = bytes(rx[: length + 1])
            if not mcrf4xx_residue_ok(frame):
                del rx[0]
                self.stats.bad_commands += 1
                continue
            del rx[: length + 1]
            return frame
        return None

    def _inventory(self, antenna: int) -> bytes:
        present = [t for t in self.tags if t.on_shelf and t.antenna == antenna]
        self.stats.tag_opportunities += len(present)
        seen = [t for t in present if self.rng.uniform() < self.read_rate]
        self.stats.per_antenna_cycles[antenna] = self.stats.per_antenna_cycles.get(antenna, 0) + 1
        if not seen:
            self.stats.no_tag_responses += 1
            return chafon.build_no_tag_response(self.address)
        # A few dB of fading per read; the byte stays in 0..255.
        tags: list[tuple[bytes, int | None]] = [
            (
                bytes.fromhex(t.epc_hex),
                int(np.clip(t.rssi_raw + self.rng.normal(0, 2.0), 0, 255)),
            )
            for t in seen
        ]
        self.stats.tag_reports += len(tags)
        return chafon.build_inventory_response(tags, address=self.address, antenna=antenna)

    def service(self) -> None:
        """Answer every complete command the agent has written since the last call."""
        self._read_master()
        out = bytearray()
        while (frame := self._next_command()) is not None:
            self.stats.commands += 1
            cmd, data = frame[2], frame[3:-2]
            if cmd != chafon.CMD_INVENTORY:
                continue  # the demo reader only inventories; other commands go unanswered
            # 288 inventory: Q, session, mask mem, mask adr(2), mask len, target, ant, scan time.
            antenna = data[7] - 0x80 + 1 if len(data) >= 9 else 1
            out += self._inventory(antenna)
            self.stats.responses += 1
        if out:
            try:
                os.write(self.master_fd, bytes(out))
            except BlockingIOError:
                self.stats.dropped_bytes += len(out)  # the agent stopped reading: like a full UART

    def close(self) -> None:
        for fd in (self.master_fd, self.slave_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


__all__ = ["READ_RATE", "ShelfTag", "SimStats", "SimulatedChafon288", "make_tags"]
