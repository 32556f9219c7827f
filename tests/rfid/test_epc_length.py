"""Parsers emit only EPCs the wire format can carry: 2..62 bytes (4..124 hex digits).

A CRC-valid frame with a 1-byte EPC used to become TagRead('AB'); the daemon could not turn the
resulting stock event into a message. Such EPCs are now dropped at the parser and counted as
`bad_epc_length`; the other tags of the same report are kept.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edge_agent import wire
from rfid.events import TagRead
from rfid.protocols import chafon, llrp, m100, rdm6300
from rfid.protocols.base import MAX_EPC_BYTES, MIN_EPC_BYTES
from rfid.protocols.chafon import ChafonParser
from rfid.protocols.llrp import LlrpParser, TagReport
from rfid.protocols.m100 import M100Parser
from rfid.protocols.rdm6300 import Rdm6300Parser

GOOD = bytes.fromhex("3074257BF7194E4000001A85")
SHORTEST = b"\x30\x01"
LONGEST = bytes(range(MAX_EPC_BYTES))
OUT_OF_RANGE = [b"\xab", bytes(MAX_EPC_BYTES + 1)]


def carried_by_the_wire(epc: str) -> bool:
    try:
        wire.StockEventMsg(
            store_id="s",
            device_id="d",
            seq=1,
            created_at=datetime(2030, 1, 1, tzinfo=UTC),
            event_type="item_arrived",
            ts=datetime(2030, 1, 1, tzinfo=UTC),
            zone="z",
            epc=epc,
        )
    except ValueError:
        return False
    return True


def test_the_limits_are_the_wire_formats() -> None:
    assert carried_by_the_wire(SHORTEST.hex().upper())
    assert carried_by_the_wire(LONGEST.hex().upper())
    assert len(SHORTEST) == MIN_EPC_BYTES
    for epc in OUT_OF_RANGE:
        assert not carried_by_the_wire(epc.hex().upper())


@pytest.mark.parametrize("epc", OUT_OF_RANGE, ids=["1-byte", "63-byte"])
def test_chafon_active_push_with_an_out_of_range_epc_is_dropped(epc: bytes) -> None:
    parser = ChafonParser("r")
    assert parser.feed(chafon.build_active_push(epc), 1.0) == []
    assert parser.rejects == {"bad_epc_length": 1}
    assert parser.frames_ok == 0


def test_chafon_active_push_at_the_limits_is_read() -> None:
    parser = ChafonParser("r")
    frames = chafon.build_active_push(SHORTEST) + chafon.build_active_push(LONGEST)
    reads = parser.feed(frames, 1.0)
    assert [r.epc for r in reads] == [SHORTEST.hex().upper(), LONGEST.hex().upper()]
    assert parser.rejects == {}


@pytest.mark.parametrize("with_rssi", [False, True], ids=["chafon18", "chafon288"])
def test_chafon_inventory_drops_only_the_out_of_range_epcs(with_rssi: bool) -> None:
    parser = ChafonParser("r", with_rssi=with_rssi)
    tags = [(GOOD, 60), (b"\xab", 61), (SHORTEST, 62), (bytes(MAX_EPC_BYTES + 1), 63)]
    frame = chafon.build_inventory_response(tags, antenna=2 if with_rssi else None)
    reads = parser.feed(frame, 1.0)
    # The frame's CRC holds, so its other records are genuine reads.
    assert [r.epc for r in reads] == [GOOD.hex().upper(), SHORTEST.hex().upper()]
    assert parser.rejects == {"bad_epc_length": 2}
    assert parser.frames_ok == 1


def test_chafon_inventory_that_does_not_add_up_is_not_counted_as_a_bad_epc() -> None:
    parser = ChafonParser("r")
    # Num says 2 records, one is there (with a 1-byte EPC): the layout fails first.
    frame = chafon.build_frame(0, chafon.CMD_INVENTORY, bytes([0x01, 2, 1, 0xAB]))
    assert parser.feed(frame, 1.0) == []
    assert parser.rejects == {"bad_payload": 1}


def test_m100_pc_word_with_no_epc_words_is_a_bad_epc_length() -> None:
    # The PC word counts the EPC in 16-bit words (5 bits: at most 31 words = 62 bytes), so 0
    # is the only length an M100 frame can carry that the wire format cannot.
    parser = M100Parser("r")
    assert parser.feed(m100.build_notification(b"", -40, pc=0), 1.0) == []
    assert parser.rejects == {"bad_epc_length": 1}
    longest = bytes(range(62))
    reads = parser.feed(m100.build_notification(longest, -40), 1.0)
    assert [r.epc for r in reads] == [longest.hex().upper()]


def test_rdm6300_cards_are_always_in_range() -> None:
    reads = Rdm6300Parser("r").feed(rdm6300.build_frame("67003B51C6"), 1.0)
    assert [r.epc for r in reads] == ["67003B51C6"]
    assert carried_by_the_wire(reads[0].epc)


@pytest.mark.parametrize("epc", OUT_OF_RANGE, ids=["8-bit", "504-bit"])
def test_llrp_report_drops_only_the_out_of_range_epcs(epc: bytes) -> None:
    parser = LlrpParser("r")
    tags = [
        TagReport(GOOD.hex().upper(), 1, -50),
        TagReport(epc.hex().upper(), 2, -51),
        TagReport(SHORTEST.hex().upper(), 3, -52),
    ]
    reads = parser.feed(llrp.build_ro_access_report(7, tags), 1.0)
    assert reads == [
        TagRead(GOOD.hex().upper(), 1.0, "r", 1, -50),
        TagRead(SHORTEST.hex().upper(), 1.0, "r", 3, -52),
    ]
    assert parser.rejects == {"bad_epc_length": 1}
    assert parser.frames_ok == 1
