"""GS1 EPC decoding and encoding (Tag Data Standard): SGTIN-96, SSCC-96, GIAI-96, GRAI-96.

`decode_epc(hex)` turns the EPC bank bytes (after the PC word) into an `EpcInfo`. A header that is
not one of the four schemes above (factory EPCs `E2...`, SGLN, GID, the long variants) decodes
honestly to scheme "unknown" with the raw EPC kept. Malformed hex, and GS1 headers whose fields
break the partition table (partition 7, more digits than the partition allows, wrong length),
raise `EpcError` with a message a technician can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Scheme = Literal["sgtin-96", "sscc-96", "giai-96", "grai-96", "unknown"]

_HEADERS: dict[int, Scheme] = {0x30: "sgtin-96", 0x31: "sscc-96", 0x34: "giai-96", 0x33: "grai-96"}
# Headers that are GS1 but not decoded here; named so the "unknown" result says what it is.
_OTHER_HEADERS = {
    0x32: "sgln-96",
    0x35: "gid-96",
    0x36: "sgtin-198",
    0x37: "grai-170",
    0x38: "giai-202",
    0x2C: "gdti-96",
    0x2D: "gsrn-96",
}

# Partition tables: partition -> (company bits, company digits, ref bits, ref digits).
_SGTIN = {0: (40, 12, 4, 1), 1: (37, 11, 7, 2), 2: (34, 10, 10, 3), 3: (30, 9, 14, 4),
          4: (27, 8, 17, 5), 5: (24, 7, 20, 6), 6: (20, 6, 24, 7)}  # fmt: skip
_SSCC = {0: (40, 12, 18, 5), 1: (37, 11, 21, 6), 2: (34, 10, 24, 7), 3: (30, 9, 28, 8),
         4: (27, 8, 31, 9), 5: (24, 7, 34, 10), 6: (20, 6, 38, 11)}  # fmt: skip
_GRAI = {0: (40, 12, 4, 0), 1: (37, 11, 7, 1), 2: (34, 10, 10, 2), 3: (30, 9, 14, 3),
         4: (27, 8, 17, 4), 5: (24, 7, 20, 5), 6: (20, 6, 24, 6)}  # fmt: skip
_GIAI = {0: (40, 12, 42, 13), 1: (37, 11, 45, 14), 2: (34, 10, 48, 15), 3: (30, 9, 52, 16),
         4: (27, 8, 55, 17), 5: (24, 7, 58, 18), 6: (20, 6, 62, 19)}  # fmt: skip

SERIAL_BITS_SGTIN = 38
SERIAL_BITS_GRAI = 38
_HEX = frozenset("0123456789ABCDEF")


class EpcError(ValueError):
    """An EPC that is not valid hex, or a GS1 EPC whose fields break the coding rules."""


def gtin_check_digit(digits: str) -> int:
    """GS1 mod-10 check digit: weights 3,1,3,... from the rightmost digit."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


@dataclass(frozen=True, slots=True)
class EpcInfo:
    """A decoded EPC. Fields that do not apply to the scheme are None.

    `uri` is the pure identity URI (urn:epc:id:...), `tag_uri` adds the filter value.
    `gtin` (GTIN-14), `sscc`, `giai` and `grai` are the GS1 keys with check digits.
    """

    epc: str
    scheme: Scheme
    uri: str | None = None
    tag_uri: str | None = None
    filter: int | None = None
    partition: int | None = None
    company_prefix: str | None = None
    reference: str | None = None
    serial: str | None = None
    gtin: str | None = None
    sscc: str | None = None
    giai: str | None = None
    grai: str | None = None
    header_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields that apply to this scheme, for JSON output."""
        keys = ["epc", "scheme"]
        if self.scheme == "unknown":
            keys += ["header_name"]
        else:
            keys += ["uri", "tag_uri", "filter", "partition", "company_prefix", "reference"]
            keys += ["serial"]
            keys += {"sgtin-96": ["gtin"], "sscc-96": ["sscc"], "giai-96": ["giai"]}.get(
                self.scheme, ["grai"]
            )
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


def normalise_hex(epc_hex: str) -> str:
    """Upper-case hex without spaces, dashes or a 0x prefix; `EpcError` when not hex."""
    text = epc_hex.strip()
    if text[:2].lower() == "0x":
        text = text[2:]
    text = text.replace(" ", "").replace("-", "").replace(":", "").upper()
    if not text:
        raise EpcError("empty EPC: expected hex digits such as 3074257BF7194E4000001A85")
    bad = sorted(set(text) - _HEX)
    if bad:
        raise EpcError(f"EPC {epc_hex!r} is not hex: unexpected {''.join(bad)!r}")
    if len(text) % 2:
        raise EpcError(f"EPC {epc_hex!r} has an odd number of hex digits ({len(text)})")
    return text


def _digits(value: int, ndigits: int, what: str, epc: str) -> str:
    if ndigits == 0:
        if value != 0:
            raise EpcError(f"EPC {epc}: {what} must be empty for this partition, got {value}")
        return ""
    if value >= 10**ndigits:
        raise EpcError(f"EPC {epc}: {what} {value} has more than {ndigits} digits")
    return f"{value:0{ndigits}d}"


def decode_epc(epc_hex: str) -> EpcInfo:
    """Decode an EPC given as hex (the EPC bank after the PC word)."""
    epc = normalise_hex(epc_hex)
    header = int(epc[:2], 16)
    scheme = _HEADERS.get(header)
    if scheme is None:
        return EpcInfo(epc=epc, scheme="unknown", header_name=_OTHER_HEADERS.get(header))
    if len(epc) != 24:
        raise EpcError(f"EPC {epc}: header {epc[:2]} is {scheme} but it has {len(epc) * 4} bits")
    value = int(epc, 16)
    filt = (value >> 85) & 0x7
    partition = (value >> 82) & 0x7
    if partition == 7:
        raise EpcError(f"EPC {epc}: partition 7 does not exist")
    body = value & ((1 << 82) - 1)
    if scheme == "sgtin-96":
        return _decode_sgtin(epc, filt, partition, body)
    if scheme == "sscc-96":
        return _decode_sscc(epc, filt, partition, body)
    if scheme == "grai-96":
        return _decode_grai(epc, filt, partition, body)
    return _decode_giai(epc, filt, partition, body)


def _split(body: int, total_bits: int, cbits: int, rbits: int) -> tuple[int, int, int]:
    """(company, reference, rest) from the bits after the partition."""
    company = body >> (total_bits - cbits)
    ref = (body >> (total_bits - cbits - rbits)) & ((1 << rbits) - 1)
    rest = body & ((1 << (total_bits - cbits - rbits)) - 1)
    return company, ref, rest


def _decode_sgtin(epc: str, filt: int, partition: int, body: int) -> EpcInfo:
    cbits, cdig, rbits, rdig = _SGTIN[partition]
    company_v, ref_v, serial_v = _split(body, 82, cbits, rbits)
    company = _digits(company_v, cdig, "company prefix", epc)
    ref = _digits(ref_v, rdig, "item reference", epc)
    gtin13 = ref[0] + company + ref[1:]
    serial = str(serial_v)
    return EpcInfo(
        epc=epc,
        scheme="sgtin-96",
        uri=f"urn:epc:id:sgtin:{company}.{ref}.{serial}",
        tag_uri=f"urn:epc:tag:sgtin-96:{filt}.{company}.{ref}.{serial}",
        filter=filt,
        partition=partition,
        company_prefix=company,
        reference=ref,
        serial=serial,
        gtin=gtin13 + str(gtin_check_digit(gtin13)),
    )


def _decode_sscc(epc: str, filt: int, partition: int, body: int) -> EpcInfo:
    cbits, cdig, rbits, rdig = _SSCC[partition]
    company_v, ref_v, rest = _split(body, 82, cbits, rbits)
    if rest:
        raise EpcError(f"EPC {epc}: the 24 reserved bits of an SSCC-96 must be zero")
    company = _digits(company_v, cdig, "company prefix", epc)
    ref = _digits(ref_v, rdig, "serial reference", epc)
    sscc17 = ref[0] + company + ref[1:]
    return EpcInfo(
        epc=epc,
        scheme="sscc-96",
        uri=f"urn:epc:id:sscc:{company}.{ref}",
        tag_uri=f"urn:epc:tag:sscc-96:{filt}.{company}.{ref}",
        filter=filt,
        partition=partition,
        company_prefix=company,
        reference=ref,
        sscc=sscc17 + str(gtin_check_digit(sscc17)),
    )


def _decode_grai(epc: str, filt: int, partition: int, body: int) -> EpcInfo:
    cbits, cdig, rbits, rdig = _GRAI[partition]
    company_v, ref_v, serial_v = _split(body, 82, cbits, rbits)
    company = _digits(company_v, cdig, "company prefix", epc)
    ref = _digits(ref_v, rdig, "asset type", epc)
    serial = str(serial_v)
    key12 = company + ref
    return EpcInfo(
        epc=epc,
        scheme="grai-96",
        uri=f"urn:epc:id:grai:{company}.{ref}.{serial}",
        tag_uri=f"urn:epc:tag:grai-96:{filt}.{company}.{ref}.{serial}",
        filter=filt,
        partition=partition,
        company_prefix=company,
        reference=ref,
        serial=serial,
        grai=key12 + str(gtin_check_digit(key12)) + serial,
    )


def _decode_giai(epc: str, filt: int, partition: int, body: int) -> EpcInfo:
    cbits, cdig, rbits, rdig = _GIAI[partition]
    company_v, ref_v, _ = _split(body, 82, cbits, rbits)
    company = _digits(company_v, cdig, "company prefix", epc)
    if len(str(ref_v)) > rdig:
        raise EpcError(f"EPC {epc}: asset reference {ref_v} has more than {rdig} digits")
    ref = str(ref_v)
    return EpcInfo(
        epc=epc,
        scheme="giai-96",
        uri=f"urn:epc:id:giai:{company}.{ref}",
        tag_uri=f"urn:epc:tag:giai-96:{filt}.{company}.{ref}",
        filter=filt,
        partition=partition,
        company_prefix=company,
        reference=ref,
        giai=company + ref,
    )


# --- encoding -----------------------------------------------------------------------------


def _check_digits(value: str, what: str) -> None:
    if not value.isdigit() and value != "":
        raise EpcError(f"{what} {value!r} must be decimal digits")


def _pack(header: int, filt: int, partition: int, fields: list[tuple[int, int]]) -> str:
    if not 0 <= filt <= 7:
        raise EpcError(f"filter value {filt} must be 0-7")
    value = (header << 88) | (filt << 85) | (partition << 82)
    shift = 82
    for v, bits in fields:
        shift -= bits
        if not 0 <= v < (1 << bits):
            raise EpcError(f"value {v} does not fit in {bits} bits")
        value |= v << shift
    return f"{value:024X}"


def _partition(table: dict[int, tuple[int, int, int, int]], company_prefix: str) -> int:
    _check_digits(company_prefix, "company prefix")
    for p, (_, cdig, _, _) in table.items():
        if cdig == len(company_prefix):
            return p
    raise EpcError(f"company prefix {company_prefix!r} must have 6 to 12 digits")


def encode_sgtin96(company_prefix: str, item_ref: str, serial: int, filter_value: int = 1) -> str:
    """SGTIN-96 hex; `item_ref` includes the indicator digit (13 - prefix length digits)."""
    p = _partition(_SGTIN, company_prefix)
    cbits, cdig, rbits, rdig = _SGTIN[p]
    _check_digits(item_ref, "item reference")
    if len(item_ref) != rdig:
        raise EpcError(f"item reference must have {rdig} digits with a {cdig}-digit prefix")
    fields = [(int(company_prefix), cbits), (int(item_ref), rbits), (serial, SERIAL_BITS_SGTIN)]
    return _pack(0x30, filter_value, p, fields)


def sgtin96_from_gtin(
    gtin: str, company_prefix_len: int, serial: int, filter_value: int = 1
) -> str:
    """SGTIN-96 hex for one item of a GTIN-14 (the prefix length is not in the GTIN itself)."""
    if len(gtin) != 14 or not gtin.isdigit():
        raise EpcError(f"GTIN {gtin!r} must be 14 digits")
    if gtin_check_digit(gtin[:13]) != int(gtin[13]):
        raise EpcError(f"GTIN {gtin} has a wrong check digit")
    company = gtin[1 : 1 + company_prefix_len]
    item_ref = gtin[0] + gtin[1 + company_prefix_len : 13]
    return encode_sgtin96(company, item_ref, serial, filter_value)


def encode_sscc96(company_prefix: str, serial_ref: str, filter_value: int = 0) -> str:
    """SSCC-96 hex; `serial_ref` includes the extension digit (17 - prefix length digits)."""
    p = _partition(_SSCC, company_prefix)
    cbits, cdig, rbits, rdig = _SSCC[p]
    _check_digits(serial_ref, "serial reference")
    if len(serial_ref) != rdig:
        raise EpcError(f"serial reference must have {rdig} digits with a {cdig}-digit prefix")
    fields = [(int(company_prefix), cbits), (int(serial_ref), rbits), (0, 24)]
    return _pack(0x31, filter_value, p, fields)


def encode_grai96(company_prefix: str, asset_type: str, serial: int, filter_value: int = 0) -> str:
    """GRAI-96 hex; `asset_type` has 12 - prefix length digits (may be empty)."""
    p = _partition(_GRAI, company_prefix)
    cbits, cdig, rbits, rdig = _GRAI[p]
    _check_digits(asset_type, "asset type")
    if len(asset_type) != rdig:
        raise EpcError(f"asset type must have {rdig} digits with a {cdig}-digit prefix")
    fields = [
        (int(company_prefix), cbits),
        (int(asset_type or "0"), rbits),
        (serial, SERIAL_BITS_GRAI),
    ]
    return _pack(0x33, filter_value, p, fields)


def encode_giai96(company_prefix: str, asset_ref: int, filter_value: int = 0) -> str:
    """GIAI-96 hex for a numeric individual asset reference."""
    p = _partition(_GIAI, company_prefix)
    cbits, _, rbits, rdig = _GIAI[p]
    if asset_ref < 0 or len(str(asset_ref)) > rdig:
        raise EpcError(f"asset reference {asset_ref} must have at most {rdig} digits")
    return _pack(0x34, filter_value, p, [(int(company_prefix), cbits), (asset_ref, rbits)])


__all__ = [
    "EpcError",
    "EpcInfo",
    "Scheme",
    "decode_epc",
    "encode_giai96",
    "encode_grai96",
    "encode_sgtin96",
    "encode_sscc96",
    "gtin_check_digit",
    "normalise_hex",
    "sgtin96_from_gtin",
]
