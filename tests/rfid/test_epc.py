"""EPC decoding: every vector of the reference, the must-reject cases, and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rfid.epc import (
    EpcError,
    decode_epc,
    encode_giai96,
    encode_grai96,
    encode_sgtin96,
    encode_sscc96,
    gtin_check_digit,
    sgtin96_from_gtin,
)

# (EPC hex, scheme, filter, pure identity URI, GS1 key field, key) from reference section 3.
VECTORS = [
    ("3074257BF7194E4000001A85", "sgtin-96", 3, "urn:epc:id:sgtin:0614141.812345.6789",
     "gtin", "80614141123458"),
    ("3034257BF7194E4000001A85", "sgtin-96", 1, "urn:epc:id:sgtin:0614141.812345.6789",
     "gtin", "80614141123458"),
    ("3036142C8C008F8000053244", "sgtin-96", 1, "urn:epc:id:sgtin:8719139.000574.340548",
     "gtin", "08719139005740"),
    ("30C579D5D4ADB60000000000", "sgtin-96", 6, "urn:epc:id:sgtin:50712192365.88.0",
     "gtin", "85071219236581"),
    ("3034007D00011C400000000B", "sgtin-96", 1, "urn:epc:id:sgtin:0008000.001137.11",
     "gtin", "00008000011378"),
    ("301800004000004000000001", "sgtin-96", 0, "urn:epc:id:sgtin:000001.0000001.1",
     "gtin", "00000010000014"),
    ("3114257BF4499602D2000000", "sscc-96", 0, "urn:epc:id:sscc:0614141.1234567890",
     "sscc", "106141412345678908"),
    ("31583BF982DFDC1C35000000", "sscc-96", 2, "urn:epc:id:sscc:061414.12345678901",
     "sscc", "106141423456789018"),
    ("3434257BF400000000BC6038", "giai-96", 1, "urn:epc:id:giai:0614141.12345400",
     "giai", "061414112345400"),
    ("33B4257BF40C0E4000000190", "grai-96", 5, "urn:epc:id:grai:0614141.12345.400",
     "grai", "0614141123452400"),
    ("3300393243FF743FFFFFFFFF", "grai-96", 0, "urn:epc:id:grai:061414113245..274877906943",
     "grai", None),
    ("33140E511C56ED0000000001", "grai-96", 0, "urn:epc:id:grai:0234567.89012.1",
     "grai", "02345678901291"),
]  # fmt: skip


@pytest.mark.parametrize(("epc", "scheme", "filt", "uri", "key", "value"), VECTORS)
def test_reference_vectors(
    epc: str, scheme: str, filt: int, uri: str, key: str, value: str | None
) -> None:
    info = decode_epc(epc)
    assert info.scheme == scheme
    assert info.filter == filt
    assert info.uri == uri
    if value is not None:
        assert getattr(info, key) == value
    assert info.to_dict()["epc"] == epc
    assert decode_epc(epc.lower()) == info


def test_partition_and_prefix_fields() -> None:
    info = decode_epc("3034007D00011C400000000B")
    assert (info.partition, info.company_prefix, info.serial) == (5, "0008000", "11")
    assert info.tag_uri == "urn:epc:tag:sgtin-96:1.0008000.001137.11"
    assert decode_epc("301800004000004000000001").partition == 6


def test_check_digit_example() -> None:
    assert gtin_check_digit("8061414112345") == 8


@pytest.mark.parametrize(
    ("epc", "name"),
    [
        ("E200001D7315016521408FC6", None),  # factory EPC, not GS1
        ("3200000000000000000000000000", "sgln-96"),
        ("35000000000000000000000000", "gid-96"),
        ("ABCD", None),
    ],
)
def test_unknown_schemes_keep_the_raw_epc(epc: str, name: str | None) -> None:
    info = decode_epc(epc)
    assert info.scheme == "unknown"
    assert info.epc == epc
    assert info.header_name == name
    assert info.gtin is None and info.uri is None


def _sgtin_bits(partition: int, company: int, ref: int, serial: int = 1) -> str:
    cbits = {0: 40, 1: 37, 2: 34, 3: 30, 4: 27, 5: 24, 6: 20}.get(partition, 20)
    value = (0x30 << 88) | (1 << 85) | (partition << 82)
    value |= (company << (82 - cbits)) | (ref << 38) | serial
    return f"{value:024X}"


@pytest.mark.parametrize(
    ("epc", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("30742G", "not hex"),
        ("3074257BF7194E4000001A8", "odd"),
        ("30 74 XY", "not hex"),
        ("3074257BF7194E4000001A8500", "bits"),  # SGTIN header, 104 bits
        (_sgtin_bits(7, 0, 0), "partition 7"),
        (_sgtin_bits(6, 10**6, 0), "more than 6 digits"),  # company prefix overflows
        (_sgtin_bits(5, 614141, 10**6), "more than 6 digits"),  # item reference overflows
        ("3114257BF4499602D2000001", "reserved"),  # SSCC filler bits not zero
    ],
)
def test_rejects(epc: str, message: str) -> None:
    with pytest.raises(EpcError, match=message):
        decode_epc(epc)


def test_sgtin_from_gtin_matches_reference() -> None:
    assert sgtin96_from_gtin("80614141123458", 7, 6789, filter_value=3) == (
        "3074257BF7194E4000001A85"
    )
    with pytest.raises(EpcError, match="check digit"):
        sgtin96_from_gtin("80614141123459", 7, 1)


def test_encoders_reproduce_reference_vectors() -> None:
    assert encode_sscc96("0614141", "1234567890", 0) == "3114257BF4499602D2000000"
    assert encode_giai96("0614141", 12345400, 1) == "3434257BF400000000BC6038"
    assert encode_grai96("0614141", "12345", 400, 5) == "33B4257BF40C0E4000000190"
    assert encode_grai96("061414113245", "", 2**38 - 1, 0) == "3300393243FF743FFFFFFFFF"


company_prefixes = st.integers(6, 12).flatmap(
    lambda n: st.integers(0, 10**n - 1).map(lambda v: f"{v:0{n}d}")
)


@given(company_prefixes, st.data(), st.integers(0, 2**38 - 1), st.integers(0, 7))
def test_sgtin_round_trip(company: str, data: st.DataObject, serial: int, filt: int) -> None:
    ndig = 13 - len(company)
    ref = f"{data.draw(st.integers(0, 10**ndig - 1)):0{ndig}d}"
    info = decode_epc(encode_sgtin96(company, ref, serial, filt))
    assert (info.company_prefix, info.reference, info.serial, info.filter) == (
        company,
        ref,
        str(serial),
        filt,
    )
    assert info.gtin is not None and info.gtin[:13] == ref[0] + company + ref[1:]
    assert int(info.gtin[13]) == gtin_check_digit(info.gtin[:13])


@given(company_prefixes, st.data(), st.integers(0, 7))
def test_sscc_round_trip(company: str, data: st.DataObject, filt: int) -> None:
    ndig = 17 - len(company)
    ref = f"{data.draw(st.integers(0, 10**ndig - 1)):0{ndig}d}"
    info = decode_epc(encode_sscc96(company, ref, filt))
    assert (info.scheme, info.company_prefix, info.reference, info.filter) == (
        "sscc-96",
        company,
        ref,
        filt,
    )


@given(company_prefixes, st.data(), st.integers(0, 2**38 - 1), st.integers(0, 7))
def test_grai_round_trip(company: str, data: st.DataObject, serial: int, filt: int) -> None:
    ndig = 12 - len(company)
    ref = f"{data.draw(st.integers(0, 10**ndig - 1)):0{ndig}d}" if ndig else ""
    info = decode_epc(encode_grai96(company, ref, serial, filt))
    assert (info.scheme, info.company_prefix, info.reference, info.serial) == (
        "grai-96",
        company,
        ref,
        str(serial),
    )


@given(company_prefixes, st.data(), st.integers(0, 7))
def test_giai_round_trip(company: str, data: st.DataObject, filt: int) -> None:
    max_digits = {12: 13, 11: 14, 10: 15, 9: 16, 8: 17, 7: 18, 6: 19}[len(company)]
    bits = {12: 42, 11: 45, 10: 48, 9: 52, 8: 55, 7: 58, 6: 62}[len(company)]
    ref = data.draw(st.integers(0, min(10**max_digits - 1, 2**bits - 1)))
    info = decode_epc(encode_giai96(company, ref, filt))
    assert (info.scheme, info.company_prefix, info.reference) == ("giai-96", company, str(ref))


@given(st.binary(min_size=0, max_size=40))
def test_decode_never_crashes_on_any_bytes(raw: bytes) -> None:
    try:
        info = decode_epc(raw.hex())
    except EpcError:
        return
    assert info.epc == raw.hex().upper()
