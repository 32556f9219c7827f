"""RDM6300 / RDM630 (125 kHz EM4100): ASCII frames, 9600 8N1, receive only.

Frame: STX 02, 10 ASCII hex chars (version byte + 4-byte card ID), 2 ASCII hex chars of
checksum (XOR of the 5 data bytes), ETX 03. 14 bytes, fixed. The reader repeats the frame while a
card is present and goes silent when it leaves, so silence is not a fault for this reader.
The tag's `epc` is the 5 data bytes as hex (e.g. 67003B51C6); `card_number` gives the decimal ID
printed on cards (the 4 ID bytes).
"""

from __future__ import annotations

from rfid.events import TagRead
from rfid.protocols.base import FrameParser

STX = 0x02
ETX = 0x03
FRAME_LEN = 14
_HEX_ASCII = b"0123456789ABCDEFabcdef"


class Rdm6300Parser(FrameParser):
    name = "rdm6300"

    def _scan(self, now: float, out: list[TagRead]) -> None:
        buf = self._buf
        n = len(buf)
        pos = 0
        while True:
            i = buf.find(STX, pos)
            if i < 0:
                self.discarded_bytes += n - pos
                pos = n
                break
            self.discarded_bytes += i - pos
            pos = i
            if n - i < FRAME_LEN:
                break
            if buf[i + 13] != ETX:
                self._reject("bad_end")
                pos = i + 1
                continue
            text = bytes(buf[i + 1 : i + 13])
            if text.translate(None, _HEX_ASCII):
                self._reject("bad_hex")
                pos = i + 1
                continue
            raw = bytes.fromhex(text.decode("ascii"))
            if raw[0] ^ raw[1] ^ raw[2] ^ raw[3] ^ raw[4] != raw[5]:
                self._reject("bad_checksum")
                pos = i + 1
                continue
            self._accept(now)
            out.append(TagRead(raw[:5].hex().upper(), now, self.reader_id, 1))
            pos = i + FRAME_LEN
        if pos:
            del buf[:pos]


def build_frame(card_hex: str) -> bytes:
    """The 14-byte frame for a 10-hex-digit card (version byte + 4-byte ID)."""
    raw = bytes.fromhex(card_hex)
    if len(raw) != 5:
        raise ValueError(f"card {card_hex!r} must be 5 bytes (10 hex digits)")
    check = raw[0] ^ raw[1] ^ raw[2] ^ raw[3] ^ raw[4]
    return bytes([STX]) + (raw.hex() + f"{check:02x}").upper().encode("ascii") + bytes([ETX])


def card_number(epc: str) -> int:
    """The decimal card number (the 4 ID bytes after the version byte)."""
    return int(epc[2:10], 16)


__all__ = ["FRAME_LEN", "Rdm6300Parser", "build_frame", "card_number"]
