"""LLRP 1.0.1 framing and decoding: frames written out field by field from the specification's
binary encoding, encoder/decoder round trips, framing under garbage and cut messages, and
arbitrary bytes."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfid.events import TagRead
from rfid.protocols import llrp
from rfid.protocols.llrp import LlrpMessage, LlrpParser, TagReport


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def feed_chunks(parser: LlrpParser, data: bytes, sizes: list[int], now: float = 5.0) -> list:
    out: list[TagRead] = []
    i = k = 0
    while i < len(data):
        n = max(1, sizes[k % len(sizes)]) if sizes else 1
        out += parser.feed(data[i : i + n], now)
        i += n
        k += 1
    return out


# An RO_ACCESS_REPORT written out by hand from the binary encoding (LLRP 1.0.1 section 16):
WORKED_REPORT = h(
    "04 3D"  # 3 reserved bits 0, version 1 (001), type 61 RO_ACCESS_REPORT: 000 001 0000111101
    "00 00 00 2C"  # message length 44 = 10 header + 34 TagReportData
    "00 00 00 2A"  # message ID 42
    "00 F0 00 22"  # TLV: 6 reserved bits, type 240 TagReportData, length 34 (4 + 30)
    "8D 30 74 25 7B F7 19 4E 40 00 00 1A 85"  # TV 13 EPC-96 (0x80 | 13), 12 EPC bytes
    "81 00 03"  # TV 1 AntennaID, u16 3
    "86 C6"  # TV 6 PeakRSSI, s8 -58 dBm
    "82 00 06 37 9D A0 5D 42 40"  # TV 2 FirstSeenTimestampUTC, u64 1750000000123456 us
    "88 00 02"  # TV 8 TagSeenCount, u16 2
)
WORKED_TAG = TagReport(
    epc="3074257BF7194E4000001A85",
    antenna=3,
    rssi_dbm=-58,
    first_seen_us=1_750_000_000_123_456,
    seen_count=2,
)


def test_worked_report_frame_from_the_spec() -> None:
    parser = LlrpParser("door")
    reads = parser.feed(WORKED_REPORT, 12.5)
    assert reads == [TagRead("3074257BF7194E4000001A85", 12.5, "door", 3, -58)]
    assert parser.frames_ok == 1 and parser.rejects == {} and parser.buffered == 0
    assert llrp.decode_tag_reports(WORKED_REPORT[10:]) == [WORKED_TAG]
    # The builder produces the same bytes in the same (specified) parameter order.
    assert llrp.build_ro_access_report(42, [WORKED_TAG]) == WORKED_REPORT


def test_worked_client_and_greeting_frames() -> None:
    set_config = h(
        "04 03"  # version 1, type 3 SET_READER_CONFIG
        "00 00 00 14"  # length 20
        "00 00 00 01"  # message ID 1
        "00"  # ResetToFactoryDefault 0, 7 reserved bits
        "00 DC 00 09"  # TLV 220 KeepaliveSpec, length 9
        "01"  # KeepaliveTriggerType 1 = Periodic
        "00 00 13 88"  # PeriodicTriggerValue 5000 ms
    )
    assert llrp.encode_set_reader_config(1, 5000) == set_config
    keepalive = h("04 3E 00 00 00 0A 00 00 00 05")  # type 62, length 10 (no body), ID 5
    ack = h("04 48 00 00 00 0A 00 00 00 05")  # type 72 KEEPALIVE_ACK echoing ID 5
    assert llrp.build_keepalive(5) == keepalive
    assert llrp.encode_keepalive_ack(5) == ack
    greeting = h(
        "04 3F 00 00 00 20 00 00 00 07"  # READER_EVENT_NOTIFICATION (63), length 32, ID 7
        "00 F6 00 16"  # TLV 246 ReaderEventNotificationData, length 22
        "00 80 00 0C 00 06 37 9D A0 5D 42 40"  # TLV 128 UTCTimestamp, u64 microseconds
        "01 00 00 06 00 00"  # TLV 256 ConnectionAttemptEvent, status 0 = Success
    )
    assert llrp.build_reader_event(7, 1_750_000_000_123_456, 0) == greeting
    parser = LlrpParser()
    assert parser.feed(greeting + keepalive, 1.0) == []
    event, ka = parser.take_control()
    assert (event.name, event.msg_id, ka.name, ka.msg_id) == (
        "READER_EVENT_NOTIFICATION",
        7,
        "KEEPALIVE",
        5,
    )
    assert llrp.connection_attempt_status(event) == 0 and not llrp.connection_closed(event)
    refused = LlrpParser()
    refused.feed(llrp.build_reader_event(8, 0, 2), 1.0)
    assert llrp.connection_attempt_status(refused.take_control()[0]) == 2


def test_add_rospec_layout() -> None:
    msg = llrp.encode_add_rospec(9, rospec_id=77, antennas=[1, 3], report_every_n_tags=1)
    parser = LlrpParser()
    parser.feed(msg, 1.0)
    (add,) = parser.take_control()
    assert (add.msg_type, add.msg_id) == (llrp.ADD_ROSPEC, 9)
    body = add.body
    ((t, s, e),) = list(llrp.iter_params(body))
    assert t == llrp.P_ROSPEC and e == len(body)
    assert struct.unpack_from(">IBB", body, s) == (77, 0, 0)  # ID, priority 0, Disabled
    inner = {t: (s2, e2) for t, s2, e2 in llrp.iter_params(body, s + 6, e)}
    assert set(inner) == {llrp.P_RO_BOUNDARY_SPEC, llrp.P_AISPEC, llrp.P_RO_REPORT_SPEC}
    s2, e2 = inner[llrp.P_RO_BOUNDARY_SPEC]
    triggers = [(t, body[a:b]) for t, a, b in llrp.iter_params(body, s2, e2)]
    assert triggers == [
        (llrp.P_ROSPEC_START_TRIGGER, b"\x00"),  # Null: started by START_ROSPEC
        (llrp.P_ROSPEC_STOP_TRIGGER, bytes(5)),  # Null, duration 0: runs until stopped
    ]
    s2, e2 = inner[llrp.P_AISPEC]
    assert struct.unpack_from(">HHH", body, s2) == (2, 1, 3)  # AntennaIDs [1, 3]
    ai = [(t, body[a:b]) for t, a, b in llrp.iter_params(body, s2 + 6, e2)]
    assert ai == [
        (llrp.P_AISPEC_STOP_TRIGGER, bytes(5)),
        (llrp.P_INVENTORY_PARAMETER_SPEC, h("0001 01")),  # ID 1, protocol 1 = C1G2
    ]
    s2, e2 = inner[llrp.P_RO_REPORT_SPEC]
    assert struct.unpack_from(">BH", body, s2) == (1, 1)  # upon N tags or end of AISpec, N=1
    ((t, a, b),) = list(llrp.iter_params(body, s2 + 3, e2))
    assert t == llrp.P_TAG_REPORT_CONTENT_SELECTOR
    bits = struct.unpack(">H", body[a:b])[0]
    # AntennaID (bit 12), PeakRSSI (10), FirstSeenTimestamp (9), TagSeenCount (7) from the MSB.
    assert bits == 0b0001_0110_1000_0000


@pytest.mark.parametrize(
    ("encoded", "msg_type", "body"),
    [
        (llrp.encode_get_reader_capabilities(3), llrp.GET_READER_CAPABILITIES, b"\x00"),
        (llrp.encode_delete_rospec(3), llrp.DELETE_ROSPEC, bytes(4)),
        (llrp.encode_enable_rospec(3, 5), llrp.ENABLE_ROSPEC, h("00000005")),
        (llrp.encode_start_rospec(3, 5), llrp.START_ROSPEC, h("00000005")),
        (llrp.encode_stop_rospec(3, 5), llrp.STOP_ROSPEC, h("00000005")),
        (llrp.encode_close_connection(3), llrp.CLOSE_CONNECTION, b""),
        (llrp.encode_keepalive_ack(3), llrp.KEEPALIVE_ACK, b""),
    ],
)
def test_client_messages_round_trip(encoded: bytes, msg_type: int, body: bytes) -> None:
    parser = LlrpParser()
    assert parser.feed(encoded, 1.0) == []
    assert parser.take_control() == [LlrpMessage(msg_type, 3, body)]


def test_responses_and_errors_carry_their_status() -> None:
    parser = LlrpParser()
    parser.feed(llrp.build_response(llrp.ADD_ROSPEC_RESPONSE, 4), 1.0)
    parser.feed(llrp.build_response(llrp.ERROR_MESSAGE, 5, 109, "unsupported message"), 1.0)
    ok, err = parser.take_control()
    assert llrp.decode_status(ok) == llrp.LlrpStatus(0, "") and llrp.decode_status(ok).ok
    assert llrp.decode_status(err) == llrp.LlrpStatus(109, "unsupported message")
    assert llrp.connection_attempt_status(ok) is None
    closing = LlrpParser()
    closing.feed(llrp.build_connection_close_event(6, 0), 1.0)
    assert llrp.connection_closed(closing.take_control()[0])


tag_reports = st.builds(
    TagReport,
    epc=st.binary(min_size=2, max_size=62).map(lambda b: b.hex().upper()),
    antenna=st.none() | st.integers(1, 0xFFFF),
    rssi_dbm=st.none() | st.integers(-128, 127),
    first_seen_us=st.none() | st.integers(0, 2**64 - 1),
    last_seen_us=st.none() | st.integers(0, 2**64 - 1),
    seen_count=st.none() | st.integers(0, 0xFFFF),
)


@settings(max_examples=150, deadline=None)
@given(tags=st.lists(tag_reports, max_size=8), epc96=st.booleans())
def test_reports_round_trip(tags: list[TagReport], epc96: bool) -> None:
    report = llrp.build_ro_access_report(1, tags, epc96=epc96)
    assert llrp.decode_tag_reports(report[10:]) == tags
    reads = LlrpParser("r").feed(report, 3.0)
    assert reads == [TagRead(t.epc, 3.0, "r", t.antenna or 0, t.rssi_dbm) for t in tags]


def sample_stream() -> tuple[bytes, list[str]]:
    epcs = [f"30{i:022X}" for i in range(6)]
    parts = [llrp.build_reader_event(1, 0)]
    for i, epc in enumerate(epcs):
        # EPC bytes that look like LLRP headers must not confuse the framing.
        parts.append(llrp.build_ro_access_report(10 + i, [TagReport(epc, 1 + i % 4, -50 - i)]))
        parts.append(llrp.build_keepalive(20 + i))
    return b"".join(parts), epcs


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 10, 64, 4096])
def test_stream_split_into_any_chunks(chunk: int) -> None:
    stream, epcs = sample_stream()
    parser = LlrpParser("r")
    reads = feed_chunks(parser, stream, [chunk])
    assert [r.epc for r in reads] == epcs
    assert [r.antenna for r in reads] == [1, 2, 3, 4, 1, 2]
    assert parser.rejects == {} and parser.discarded_bytes == 0 and parser.buffered == 0
    assert [m.msg_type for m in parser.take_control()] == [63] + [62] * 6


def test_garbage_and_truncated_messages_are_skipped_and_counted() -> None:
    a, b, c = (
        llrp.build_ro_access_report(i, [TagReport(f"E2{i:02X}0000", 1, -60)]) for i in range(3)
    )
    header_like = h("04 3D 00 00 01 00 00 00 00 09")  # a report header promising 256 bytes
    stream = b"\xff\x00junk" + a + a[:17] + b + header_like + b"xx" + c + b"\x07\x07"
    for sizes in ([len(stream)], [1], [5, 3, 11]):
        parser = LlrpParser("r")
        reads = feed_chunks(parser, stream, sizes)
        assert [r.epc for r in reads] == ["E2000000", "E2010000", "E2020000"]
        # The cut copy of `a` borrows its missing bytes from `b`, so it is complete but its
        # parameters do not nest (bad_payload); the fake header holds `c` whole inside
        # (truncated). Every chunking gives the same verdicts.
        assert parser.rejects == {"bad_payload": 1, "truncated": 1}
        assert parser.discarded_bytes == 6 + 17 + 12 and parser.buffered == 2


GOOD = llrp.build_ro_access_report(1, [TagReport("3000000000000000000000AA", 2, -40)])


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (bytes([GOOD[0] | 0x0C]) + GOOD[1:], "bad_version"),  # version 4
        (h("04 3E 00 00 00 09 00 00 00 01"), "bad_length"),  # 9 < the header's 10 bytes
        (h("04 3D 7F 00 00 00 00 00 00 01"), "bad_length"),  # beyond the 1 MiB cap
        (  # a TV type that does not exist (127) inside a TagReportData
            llrp.encode_message(61, 2, llrp.tlv(llrp.P_TAG_REPORT_DATA, h("FF 00"))),
            "bad_payload",
        ),
        (  # a TLV whose length (64) runs past the end of its message
            llrp.encode_message(llrp.SET_READER_CONFIG_RESPONSE, 4, h("01 1F 00 40")),
            "bad_payload",
        ),
        (  # a TagReportData with an antenna but no EPC: the message is fine, the tag skipped
            llrp.encode_message(61, 3, llrp.tlv(llrp.P_TAG_REPORT_DATA, h("81 0001"))),
            "no_epc",
        ),
    ],
)
def test_bad_headers_and_bodies_are_rejected_by_reason(bad: bytes, reason: str) -> None:
    parser = LlrpParser("r")
    reads = parser.feed(bad, 1.0) + parser.feed(GOOD, 1.0)
    assert [r.epc for r in reads] == ["3000000000000000000000AA"]
    assert parser.rejects.get(reason, 0) == 1
    assert parser.take_control() == [] and parser.buffered == 0


def test_endless_garbage_desyncs_and_reset_recovers() -> None:
    parser = LlrpParser("r")
    parser.feed(bytes(range(256)) * 20, 1.0)
    assert parser.desynced and parser.buffered < llrp.HEADER_LEN
    parser.reset()
    assert not parser.desynced and parser.buffered == 0
    assert len(parser.feed(WORKED_REPORT, 2.0)) == 1


def test_huge_report_arriving_in_pieces() -> None:
    tags = [TagReport(f"30{i:022X}", 1 + i % 4, -40 - i % 30) for i in range(3000)]
    report = llrp.build_ro_access_report(5, tags)
    assert len(report) > 65536
    parser = LlrpParser("r")
    reads = feed_chunks(parser, report + llrp.build_keepalive(6), [1460])
    assert [r.epc for r in reads] == [t.epc for t in tags]
    assert parser.rejects == {} and len(parser.take_control()) == 1


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=800), sizes=st.lists(st.integers(1, 64), max_size=20))
def test_no_byte_sequence_crashes_the_parser(data: bytes, sizes: list[int]) -> None:
    parser = LlrpParser("r")
    reads = feed_chunks(parser, data, sizes)
    assert parser.buffered <= len(data)
    assert parser.discarded_bytes + parser.buffered <= len(data)
    assert all(isinstance(r.epc, str) for r in reads)
    for msg in parser.take_control():
        # The helpers raise LlrpError, never anything else, on whatever passed the framing.
        for helper in (llrp.decode_status, llrp.connection_attempt_status, llrp.connection_closed):
            with contextlib.suppress(llrp.LlrpError):
                helper(msg)


@settings(max_examples=100, deadline=None)
@given(
    epcs=st.lists(st.binary(min_size=2, max_size=16), min_size=1, max_size=5),
    noise=st.lists(st.binary(max_size=30), min_size=6, max_size=6),
    sizes=st.lists(st.integers(1, 50), max_size=10),
)
def test_valid_messages_survive_noise_between_them(
    epcs: list[bytes], noise: list[bytes], sizes: list[int]
) -> None:
    stream = bytearray()
    for i, epc in enumerate(epcs):
        stream += noise[i] + llrp.build_ro_access_report(i, [TagReport(epc.hex().upper(), 1)])
    stream += noise[-1] + llrp.build_keepalive(99)  # lets the last report's tail be judged
    reads = feed_chunks(LlrpParser("r"), bytes(stream), sizes)
    assert [r.epc for r in reads] == [e.hex().upper() for e in epcs]


def test_encoders_refuse_out_of_range_values() -> None:
    with pytest.raises(ValueError):
        llrp.tv(llrp.TV_ANTENNA_ID, b"\x01")  # AntennaID is 2 bytes
    with pytest.raises(ValueError):
        llrp.tlv(12, b"")  # TLV types start at 128
    with pytest.raises(ValueError):
        llrp.encode_add_rospec(1, 1, antennas=[])
    with pytest.raises(ValueError):
        llrp.encode_set_reader_config(1, 0)
