"""CRC check values and every Chafon frame of the reference (residue 0 over the whole frame)."""

from __future__ import annotations

import pytest

from rfid.crc import crc16_genibus, crc16_mcrf4xx, mcrf4xx_residue_ok

CHAFON_FRAMES = [
    "04 00 01 DB 4B",
    "04 FF 01 1B B4",
    "0D FF 01 0F 00 01 00 00 00 00 80 14 C0 3A",
    "04 00 21 D9 6A",
    "13 00 01 03 01 0C 00 00 00 00 00 00 00 00 00 00 03 13 3F 39",
    "15 00 01 03 01 01 0C 30 39 60 63 03 C7 43 80 00 1A 05 59 40 F9 3E",
    "07 00 01 01 01 00 1E 4B",
    "11 00 EE 00 20 00 70 8C 2B 38 0B 2D 00 00 00 00 E0 56",
]


def test_check_values() -> None:
    assert crc16_mcrf4xx(b"123456789") == 0x6F91
    assert crc16_genibus(b"123456789") == 0xD64E


@pytest.mark.parametrize("frame_hex", CHAFON_FRAMES)
def test_reference_chafon_frames(frame_hex: str) -> None:
    frame = bytes.fromhex(frame_hex)
    assert mcrf4xx_residue_ok(frame)
    crc = crc16_mcrf4xx(frame[:-2])
    assert frame[-2:] == bytes([crc & 0xFF, crc >> 8])  # sent LSB first
    corrupted = bytearray(frame)
    corrupted[1] ^= 0x01
    assert not mcrf4xx_residue_ok(corrupted)


@pytest.mark.parametrize(
    ("pc_epc_hex", "crc_hex"),
    [
        ("3400 30751FEB705C5904E3D50D70", "3A76"),  # M100 manual notification
        ("3000 E200001D7315016521408FC6", "B83E"),  # field capture
    ],
)
def test_gen2_tag_crc(pc_epc_hex: str, crc_hex: str) -> None:
    assert crc16_genibus(bytes.fromhex(pc_epc_hex)) == int(crc_hex, 16)
