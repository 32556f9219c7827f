"""Chafon UHFReader18 / UHFReader288 family (CF-RU5xxx, HW-VX63xx), CRC-16/MCRF4XX frames.

Frame: Len (bytes that follow), Adr, Cmd/reCmd, data..., CRC LSB, CRC MSB. There is no start
byte, so a candidate is any position whose Len is plausible and whose reCmd is a documented
command; it is only accepted when the CRC over the whole frame leaves residue 0.

Responses handled: inventory (reCmd 01; 18: `Num {EPCLen EPC}`; 288: `Ant Num {EPCLen EPC RSSI}`
with Ant a bitmask 1/2/4/8 and RSSI a raw unsigned byte, larger is stronger), active-mode pushes
(reCmd EE, the EPC follows the status byte) and the network heartbeat `56 00 00 00 00 00`.
Any other valid frame counts as a sign of life (`frames_ok`) and is otherwise ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

from rfid.crc import crc16_mcrf4xx, mcrf4xx_residue_ok
from rfid.events import TagRead
from rfid.protocols.base import DEFAULT_FRAME_TIMEOUT_S, FrameParser, epc_length_ok

CMD_INVENTORY = 0x01
CMD_READER_INFO = 0x21
RECMD_ACTIVE = 0xEE
BROADCAST = 0xFF
HEARTBEAT = bytes.fromhex("560000000000")
MIN_RESPONSE_LEN = 5  # Adr, reCmd, Status, CRC(2)
# EPC C1G2 commands 01-1F, reader commands 21-3F (UHFReader18 manual), active-mode push EE.
_KNOWN_RECMD = bytes(1 if (0x01 <= c <= 0x3F or c == RECMD_ACTIVE) else 0 for c in range(256))
_TAG_STATUSES = (0x01, 0x02, 0x03, 0x04)  # done, scan time out, more frames, buffer full
STATUS_NO_TAG = 0xFB
_ANT_BITS = {1: 1, 2: 2, 4: 3, 8: 4}


class ChafonParser(FrameParser):
    """Parses UHFReader18 (`with_rssi=False`) or UHFReader288 (`with_rssi=True`) responses.

    `address` None accepts any reader address (configured FF = broadcast); otherwise valid
    frames from another address are counted as `wrong_address` and dropped.
    """

    name = "chafon"

    def __init__(
        self,
        reader_id: str = "",
        frame_timeout_s: float = DEFAULT_FRAME_TIMEOUT_S,
        *,
        with_rssi: bool = False,
        address: int | None = None,
    ):
        super().__init__(reader_id, frame_timeout_s)
        self.with_rssi = with_rssi
        self.address = None if address == BROADCAST else address
        self.heartbeats = 0

    def _scan(self, now: float, out: list[TagRead]) -> None:
        buf = self._buf
        n = len(buf)
        pos = 0
        known = _KNOWN_RECMD
        while n - pos >= 3:
            ln = buf[pos]
            if ln == 0x56 and buf[pos + 1] == 0 and buf[pos + 2] == 0:
                head = buf[pos : pos + 6]
                if head == HEARTBEAT:
                    self.heartbeats += 1
                    self.last_frame_ts = now
                    pos += 6
                    continue
                if len(head) < 6 and HEARTBEAT.startswith(head):
                    break  # wait for the rest of a possible heartbeat
            if ln < MIN_RESPONSE_LEN or not known[buf[pos + 2]]:
                self.discarded_bytes += 1
                pos += 1
                continue
            end = pos + ln + 1
            if end > n:
                later = self._later_frame(pos, n)
                if later < 0:
                    break
                self._reject("truncated")  # a whole frame starts inside it: it was cut off
                self.discarded_bytes += later - pos
                pos = later
                continue
            frame = buf[pos:end]
            if not mcrf4xx_residue_ok(frame):
                self._reject("bad_checksum")
                pos += 1
                continue
            if self.address is not None and frame[1] != self.address:
                self._reject("wrong_address")
                pos = end
                continue
            self._dispatch(frame, now, out)
            pos = end
        if pos:
            del buf[:pos]

    def _later_frame(self, start: int, n: int) -> int:
        """Start of the first complete, CRC-valid frame after `start`, or -1.

        Without a start byte, a noise byte can look like the Len of a long frame and would hold
        the good frames behind it until the silence timeout; a valid frame inside proves it
        was not one.
        """
        buf = self._buf
        known = _KNOWN_RECMD
        for q in range(start + 1, n - MIN_RESPONSE_LEN + 1):
            ln = buf[q]
            if ln < MIN_RESPONSE_LEN or not known[buf[q + 2]]:
                continue
            end = q + ln + 1
            if end <= n and mcrf4xx_residue_ok(buf[q:end]):
                return q
        return -1

    def _dispatch(self, frame: bytearray, now: float, out: list[TagRead]) -> None:
        recmd = frame[2]
        status = frame[3]
        if recmd == RECMD_ACTIVE:
            epc = frame[4:-2]
            if not epc:
                self._reject("bad_payload")
                return
            if not epc_length_ok(len(epc)):
                self._reject("bad_epc_length")
                return
            self._accept(now)
            out.append(TagRead(epc.hex().upper(), now, self.reader_id, 1))
            return
        if recmd != CMD_INVENTORY or status not in _TAG_STATUSES:
            self._accept(now)  # no tag, other commands' answers: alive, nothing to read
            return
        records = self._inventory(frame[4:-2], now)
        if records is None:
            self._reject("bad_payload")
            return
        reads, bad_epc_lengths = records
        # Counted only once the whole frame added up: a layout failure is one bad_payload.
        for _ in range(bad_epc_lengths):
            self._reject("bad_epc_length")
        self._accept(now)
        out.extend(reads)

    def _inventory(self, data: bytearray, now: float) -> tuple[list[TagRead], int] | None:
        """Tag records of an inventory response and how many were left out for an EPC length
        the system cannot carry, or None when the records do not add up."""
        end = len(data)
        antenna = 1
        if self.with_rssi:
            if end < 2:
                return None
            antenna_opt = _ANT_BITS.get(data[0])
            if antenna_opt is None:
                return None
            antenna = antenna_opt
            i = 1
        else:
            if end < 1:
                return None
            i = 0
        num = data[i]
        i += 1
        reads: list[TagRead] = []
        extra = 1 if self.with_rssi else 0
        rid = self.reader_id
        bad_epc_lengths = 0
        for _ in range(num):
            if i >= end:
                return None
            ln = data[i]
            stop = i + 1 + ln
            if ln == 0 or stop + extra > end:
                return None
            if epc_length_ok(ln):
                rssi = data[stop] if extra else None
                epc = data[i + 1 : stop].hex().upper()
                reads.append(TagRead(epc, now, rid, antenna, None, rssi))
            else:
                bad_epc_lengths += 1
            i = stop + extra
        if i != end:
            return None
        return reads, bad_epc_lengths


def build_frame(address: int, cmd: int, data: bytes = b"") -> bytes:
    """A command or response frame: Len, Adr, Cmd, data, CRC-16/MCRF4XX LSB first."""
    body = bytes([len(data) + 4, address, cmd]) + data
    if len(body) + 2 > 256:
        raise ValueError("Chafon frames hold at most 255 bytes after Len")
    crc = crc16_mcrf4xx(body)
    return body + bytes([crc & 0xFF, crc >> 8])


def encode_inventory18(address: int = 0) -> bytes:
    """UHFReader18 inventory: no parameters."""
    return build_frame(address, CMD_INVENTORY)


def encode_inventory288(
    address: int = BROADCAST,
    antenna: int = 1,
    scan_time_100ms: int = 0x14,
    q_value: int = 0x0F,
    session: int = 0,
) -> bytes:
    """UHFReader288 inventory: Q, session, EPC mask (empty), target A, antenna 1-4, scan time."""
    if not 1 <= antenna <= 4:
        raise ValueError(f"antenna {antenna} must be 1-4")
    data = bytes([q_value, session, 0x01, 0, 0, 0, 0, 0x80 + antenna - 1, scan_time_100ms])
    return build_frame(address, CMD_INVENTORY, data)


def build_inventory_response(
    tags: Sequence[tuple[bytes, int | None]],
    *,
    address: int = 0,
    antenna: int | None = None,
    status: int = 0x01,
) -> bytes:
    """An inventory response: 18 layout when `antenna` is None, else 288 with RSSI per tag."""
    body = bytearray()
    if antenna is not None:
        body.append(1 << (antenna - 1))
    body.append(len(tags))
    for epc, rssi in tags:
        body.append(len(epc))
        body += epc
        if antenna is not None:
            body.append(rssi or 0)
    return build_frame(address, CMD_INVENTORY, bytes([status]) + bytes(body))


def build_no_tag_response(address: int = 0) -> bytes:
    return build_frame(address, CMD_INVENTORY, bytes([STATUS_NO_TAG]))


def build_active_push(epc: bytes, address: int = 0) -> bytes:
    """An active-mode push (reCmd EE, status 00, EPC)."""
    return build_frame(address, RECMD_ACTIVE, b"\x00" + epc)


__all__ = [
    "BROADCAST",
    "HEARTBEAT",
    "ChafonParser",
    "build_active_push",
    "build_frame",
    "build_inventory_response",
    "build_no_tag_response",
    "encode_inventory18",
    "encode_inventory288",
]
