"""Parsers against every frame of the reference, the framing rules, and arbitrary bytes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfid.config import SINGLE_ANTENNA_PROTOCOLS, AntennaConfig, ReaderConfig
from rfid.events import TagRead
from rfid.protocols import PROTOCOLS, chafon, m100, rdm6300
from rfid.protocols.base import FrameParser


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def feed_all(parser: FrameParser, data: bytes, now: float = 100.0) -> list[TagRead]:
    return parser.feed(data, now)


def feed_split(parser: FrameParser, data: bytes, sizes: list[int], now: float = 100.0) -> list:
    out: list[TagRead] = []
    i = 0
    k = 0
    while i < len(data):
        n = max(1, sizes[k % len(sizes)]) if sizes else 1
        out += parser.feed(data[i : i + n], now)
        i += n
        k += 1
    return out


def antennas_for(protocol: str) -> dict[int, AntennaConfig]:
    """Two zones for the reader that reports antennas, antenna 1 only for the others."""
    if protocol in SINGLE_ANTENNA_PROTOCOLS:
        return {1: AntennaConfig(zone="a")}
    return {1: AntennaConfig(zone="a"), 2: AntennaConfig(zone="b")}


def reader_cfg(protocol: str, address: int = 0) -> ReaderConfig:
    return ReaderConfig(
        id="r1",
        port="/dev/null",
        protocol=protocol,  # type: ignore[arg-type]
        address=address,
        antennas=antennas_for(protocol),
    )


def make(protocol: str, address: int = 0) -> FrameParser:
    return PROTOCOLS[protocol].make_parser(reader_cfg(protocol, address), "r1", 0.2)


# --- RDM6300 (reference 1.1) ----------------------------------------------------------------

RDM_CARDS = [
    ("02 36 37 30 30 33 42 35 31 43 36 43 42 03", "67003B51C6", 3887558),
    ("02 36 37 30 30 33 42 41 38 36 43 39 38 03", "67003BA86C", 3909740),
    ("02 36 37 30 30 33 42 41 38 36 37 39 33 03", "67003BA867", 3909735),
]


@pytest.mark.parametrize(("frame", "epc", "number"), RDM_CARDS)
def test_rdm6300_reference_frames(frame: str, epc: str, number: int) -> None:
    p = make("rdm6300")
    reads = feed_all(p, h(frame))
    assert [r.epc for r in reads] == [epc]
    assert rdm6300.card_number(epc) == number
    assert rdm6300.build_frame(epc) == h(frame)
    assert p.rejects == {}


def test_rdm6300_rejects_bad_xor() -> None:
    p = make("rdm6300")
    bad = b"\x02" + b"68003B51C6CB" + b"\x03"  # XOR is CC, the frame says CB
    assert feed_all(p, bad) == []
    assert p.rejects == {"bad_checksum": 1}


def test_rdm6300_non_hex_and_missing_etx() -> None:
    p = make("rdm6300")
    good = rdm6300.build_frame("67003B51C6")
    stream = b"\x02" + b"67003B51C6ZZ" + b"\x03" + b"\x02" + b"67003B51C6CB" + b"X" + good
    reads = feed_all(p, stream)
    assert [r.epc for r in reads] == ["67003B51C6"]
    assert p.rejects == {"bad_hex": 1, "bad_end": 1}


# --- Chafon (reference 1.2) -----------------------------------------------------------------


def test_chafon_commands_match_reference() -> None:
    assert chafon.encode_inventory18(0) == h("04 00 01 DB 4B")
    assert chafon.encode_inventory18(0xFF) == h("04 FF 01 1B B4")
    assert chafon.encode_inventory288() == h("0D FF 01 0F 00 01 00 00 00 00 80 14 C0 3A")
    assert chafon.build_frame(0, chafon.CMD_READER_INFO) == h("04 00 21 D9 6A")


def test_chafon18_reference_response() -> None:
    p = make("chafon18")
    frame = h("13 00 01 03 01 0C 00 00 00 00 00 00 00 00 00 00 03 13 3F 39")
    reads = feed_all(p, frame)
    assert [(r.epc, r.antenna, r.rssi_raw) for r in reads] == [
        ("000000000000000000000313", 1, None)
    ]
    assert chafon.build_inventory_response([(h("000000000000000000000313"), None)], status=3) == (
        frame
    )


def test_chafon288_reference_responses() -> None:
    p = make("chafon288")
    one = h("15 00 01 03 01 01 0C 30 39 60 63 03 C7 43 80 00 1A 05 59 40 F9 3E")
    none = h("07 00 01 01 01 00 1E 4B")
    push = h("11 00 EE 00 20 00 70 8C 2B 38 0B 2D 00 00 00 00 E0 56")
    heartbeat = h("56 00 00 00 00 00")
    reads = feed_all(p, one + none + heartbeat + push)
    assert [(r.epc, r.antenna, r.rssi_raw) for r in reads] == [
        ("3039606303C74380001A0559", 1, 0x40),
        ("2000708C2B380B2D00000000", 1, None),
    ]
    assert p.frames_ok == 3 and p.rejects == {} and p.discarded_bytes == 0
    assert isinstance(p, chafon.ChafonParser) and p.heartbeats == 1


def test_chafon288_antenna_bitmask_and_several_tags() -> None:
    p = make("chafon288")
    tags = [(bytes([i]) * 12, 50 + i) for i in range(3)]
    reads = feed_all(p, chafon.build_inventory_response(tags, antenna=4, status=1))
    assert [(r.antenna, r.rssi_raw) for r in reads] == [(4, 50), (4, 51), (4, 52)]


def test_chafon_wrong_address_and_bad_payload() -> None:
    p = make("chafon18", address=0)
    other = chafon.build_inventory_response([(b"\x01" * 12, None)], address=5)
    inconsistent = chafon.build_frame(0, 0x01, h("01 02 0C") + b"\x01" * 12)  # says 2 tags
    good = chafon.build_inventory_response([(b"\x02" * 12, None)])
    reads = feed_all(p, other + inconsistent + good)
    assert [r.epc for r in reads] == ["02" * 12]
    assert p.rejects == {"wrong_address": 1, "bad_payload": 1}
    assert make("chafon18", address=0xFF).feed(other, 1.0)[0].epc == "01" * 12  # broadcast


def test_chafon_bad_crc_resyncs_by_one_byte() -> None:
    p = make("chafon288")
    good = chafon.build_inventory_response([(b"\x7e\x03\x0d" * 4, 60)], antenna=2)
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    cut = good[:9]  # a cut-off frame directly followed by a good one
    reads = feed_all(p, bytes(bad) + cut + good)
    assert [r.epc for r in reads] == ["7E030D" * 4]
    assert p.rejects.get("bad_checksum", 0) >= 2


# --- M100 (reference 1.3) -------------------------------------------------------------------


def test_m100_commands_match_reference() -> None:
    assert m100.encode_single_poll() == h("BB 00 22 00 00 22 7E")
    assert m100.encode_multi_poll(10000) == h("BB 00 27 00 03 22 27 10 83 7E")
    assert m100.encode_stop() == h("BB 00 28 00 00 28 7E")
    assert m100.build_stop_ok() == h("BB 01 28 00 01 00 2A 7E")
    assert m100.build_frame(0, 0x07, b"\x03") == h("BB 00 07 00 01 03 0B 7E")
    assert m100.build_frame(0, 0xB6, h("0A 28")) == h("BB 00 B6 00 02 0A 28 EA 7E")
    assert m100.build_error() == h("BB 01 FF 00 01 15 16 7E")


M100_NOTIFICATIONS = [
    (
        "BB 02 22 00 11 C9 34 00 30 75 1F EB 70 5C 59 04 E3 D5 0D 70 3A 76 EF 7E",
        "30751FEB705C5904E3D50D70",
        -55,
    ),
    (
        "BB 02 22 00 11 C4 30 00 E2 00 00 1D 73 15 01 65 21 40 8F C6 B8 3E C2 7E",
        "E200001D7315016521408FC6",
        -60,
    ),
    (
        "BB 02 22 00 11 C4 30 00 30 74 25 7B F7 19 4E 40 00 00 1A 85 AA F9 4D 7E",
        "3074257BF7194E4000001A85",
        -60,
    ),
]


@pytest.mark.parametrize(("frame", "epc", "rssi"), M100_NOTIFICATIONS)
def test_m100_reference_notifications(frame: str, epc: str, rssi: int) -> None:
    p = make("m100")
    reads = feed_all(p, h(frame))
    assert [(r.epc, r.rssi_dbm) for r in reads] == [(epc, rssi)]
    pc = h(frame)[6] << 8 | h(frame)[7]
    assert m100.build_notification(h(epc), rssi, pc) == h(frame)


def test_m100_reference_resync_example() -> None:
    p = make("m100")
    assert feed_all(p, h("BB 01 22 00 00 11 BB 00 22 00 00 22 7E")) == []
    assert p.frames_ok == 1  # the poll command found from byte 1 on
    assert sum(p.rejects.values()) == 1


def test_m100_responses_tag_crc_and_checksum() -> None:
    p = make("m100")
    good = m100.build_notification(h("3074257BF7194E4000001A85"), -60)
    bad_tag_crc = bytearray(good)
    bad_tag_crc[-4] ^= 0x01  # tag CRC byte: frame checksum must be fixed up to isolate it
    bad_tag_crc[-2] = sum(bad_tag_crc[1:-2]) & 0xFF
    bad_sum = bytearray(good)
    bad_sum[-2] ^= 0xFF
    stream = m100.build_error() + bytes(bad_tag_crc) + bytes(bad_sum) + m100.build_stop_ok() + good
    reads = feed_all(p, stream)
    assert [r.epc for r in reads] == ["3074257BF7194E4000001A85"]
    assert p.rejects == {"bad_tag_crc": 1, "bad_checksum": 1}
    assert isinstance(p, m100.M100Parser) and p.no_tag_responses == 1


def test_end_and_start_byte_values_inside_payloads() -> None:
    epc = h("7E BB 7E 03 0D 02 BB 00 7E 7E 03 BB")
    m = make("m100")
    assert [r.epc for r in m.feed(m100.build_notification(epc, -40) * 2, 1.0)] == [
        epc.hex().upper()
    ] * 2
    c = make("chafon288")
    frame = chafon.build_inventory_response([(epc, 0x7E)], antenna=1)
    assert [r.epc for r in c.feed(frame + frame, 1.0)] == [epc.hex().upper()] * 2
    assert m.rejects == {} and c.rejects == {}


def test_m100_length_cap() -> None:
    p = make("m100")
    assert feed_all(p, h("BB 02 22 7F FF") + m100.build_stop_ok()) == []
    assert p.rejects == {"bad_length": 1} and p.frames_ok == 1


# --- framing rules common to all ------------------------------------------------------------


def sample_stream(protocol: str) -> tuple[bytes, list[str]]:
    """Good frames with garbage, truncated frames and bad checksums between them."""
    rng = random.Random(7)
    out = bytearray(b"\x00\x01garbage")
    epcs: list[str] = []
    for k in range(12):
        epc = bytes(rng.randrange(256) for _ in range(5 if protocol == "rdm6300" else 12))
        if protocol == "rdm6300":
            frame = rdm6300.build_frame(epc.hex())
        elif protocol == "m100":
            frame = m100.build_notification(epc, -50 - k)
        elif protocol == "chafon18":
            frame = chafon.build_inventory_response([(epc, None)])
        else:
            frame = chafon.build_inventory_response([(epc, 40 + k)], antenna=1 + k % 2)
        epcs.append(epc.hex().upper())
        if k % 4 == 1:
            out += frame[: len(frame) // 2]  # cut off
        if k % 4 == 2:
            broken = bytearray(frame)
            broken[len(broken) // 2] ^= 0x55
            out += broken  # bad checksum
        if k % 4 == 3:
            out += b"\x03\x7e\x0d\x01"  # end-byte values as noise
        out += frame
    return bytes(out), epcs


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
@pytest.mark.parametrize("chunk", [None, 1, 3, 7])
def test_garbage_cuts_and_bad_checksums_between_good_frames(
    protocol: str, chunk: int | None
) -> None:
    stream, epcs = sample_stream(protocol)
    p = make(protocol)
    reads = feed_all(p, stream) if chunk is None else feed_split(p, stream, [chunk])
    assert [r.epc for r in reads] == epcs
    assert sum(p.rejects.values()) >= 6  # 3 cut-off + 3 corrupted frames, at least
    assert p.buffered == 0


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_half_frame_dropped_after_silence(protocol: str) -> None:
    stream, epcs = sample_stream(protocol)
    last_frame_start = len(stream) - 30
    p = make(protocol)
    first = p.feed(stream[:last_frame_start], 10.0)
    # 0.5 s of silence: the half frame is stale; whole frames behind it would still come out.
    rest = p.feed(b"", 10.5)
    assert p.rejects.get("stale_partial") == 1
    assert p.buffered == 0
    assert [r.epc for r in first + rest] == epcs[: len(first + rest)]


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_a_late_caller_is_not_silence(protocol: str) -> None:
    # The daemon polled late, but the rest of the frame was waiting: nothing is dropped.
    stream, epcs = sample_stream(protocol)
    tail = stream[-60:]
    p = make(protocol)
    reads = p.feed(stream[:-60], 10.0) + p.feed(tail[:7], 11.0) + p.feed(tail[7:], 12.0)
    assert [r.epc for r in reads] == epcs
    assert "stale_partial" not in p.rejects


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=600), sizes=st.lists(st.integers(1, 64), max_size=20))
def test_no_byte_sequence_crashes_and_splitting_does_not_matter(
    protocol: str, data: bytes, sizes: list[int]
) -> None:
    whole = make(protocol)
    split = make(protocol)
    a = whole.feed(data, 1.0)
    b = feed_split(split, data, sizes, now=1.0)
    assert a == b
    for r in a:
        int(r.epc, 16)
    whole.feed(b"", 5.0)  # stale flush of anything left
    assert whole.buffered == 0


@pytest.mark.parametrize("protocol", ["m100", "rdm6300"])
@settings(max_examples=100, deadline=None)
@given(
    epcs=st.lists(st.binary(min_size=12, max_size=12), min_size=1, max_size=5),
    noise=st.lists(st.binary(max_size=20), min_size=6, max_size=6),
)
def test_good_frames_survive_noise_without_start_bytes(
    protocol: str, epcs: list[bytes], noise: list[bytes]
) -> None:
    start = 0xBB if protocol == "m100" else 0x02
    stream = bytearray()
    expected = []
    for k, epc in enumerate(epcs):
        stream += bytes(b for b in noise[k] if b != start)
        if protocol == "m100":
            stream += m100.build_notification(epc, -60)
            expected.append(epc.hex().upper())
        else:
            stream += rdm6300.build_frame(epc[:5].hex())
            expected.append(epc[:5].hex().upper())
    p = make(protocol)
    assert [r.epc for r in p.feed(bytes(stream), 1.0)] == expected


@pytest.mark.parametrize("protocol", sorted(SINGLE_ANTENNA_PROTOCOLS))
def test_config_rejects_antenna_maps_a_protocol_cannot_report(protocol: str) -> None:
    with pytest.raises(ValueError, match="does not report antenna numbers"):
        ReaderConfig(
            id="r1",
            port="/dev/null",
            protocol=protocol,  # type: ignore[arg-type]
            antennas={1: AntennaConfig(zone="a"), 2: AntennaConfig(zone="b")},
        )
