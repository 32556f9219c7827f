"""CRC-16 variants used by UHF readers, computed in C through `binascii.crc_hqx`.

`crc_hqx` is the non-reflected CRC-16/CCITT (polynomial 0x1021) with a caller-given preset.
* CRC-16/GENIBUS (Gen2 tag CRC over PC+EPC) is that CRC with preset 0xFFFF, output inverted.
* CRC-16/MCRF4XX (Chafon frames) is the *reflected* form (0x8408 = 0x1021 bit-reversed): running
  the non-reflected CRC over bit-reversed bytes and bit-reversing the 16-bit result gives it.
  `bytes.translate` reverses the bits of every byte in C, so no per-byte Python loop remains;
  this matters because the parsers check a CRC for every frame (>= 200,000 frames/s target).
"""

from __future__ import annotations

import binascii

# Bit-reversal of every byte value, as a translate table.
_REV8 = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _rev16(value: int) -> int:
    return (_REV8[value & 0xFF] << 8) | _REV8[value >> 8]


def crc16_mcrf4xx(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/MCRF4XX: reflected poly 0x8408, preset 0xFFFF, no final XOR (check 0x6F91)."""
    return _rev16(binascii.crc_hqx(bytes(data).translate(_REV8), 0xFFFF))


def mcrf4xx_residue_ok(frame: bytes | bytearray | memoryview) -> bool:
    """True when `frame` ends with its own CRC-16/MCRF4XX, LSB first.

    Running the CRC over data plus its LSB-first CRC gives 0, so the check needs no slicing.
    """
    return binascii.crc_hqx(bytes(frame).translate(_REV8), 0xFFFF) == 0


def crc16_genibus(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/GENIBUS (EPC Gen2): poly 0x1021, preset 0xFFFF, output inverted (check 0xD64E)."""
    return binascii.crc_hqx(bytes(data), 0xFFFF) ^ 0xFFFF


__all__ = ["crc16_genibus", "crc16_mcrf4xx", "mcrf4xx_residue_ok"]
