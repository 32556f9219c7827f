"""EPCglobal LLRP 1.0.1 (network readers on TCP 5084): framing, decoding, client encoders.

A message is a 10-byte header then a body. Header (big-endian): 3 reserved bits (0), a 3-bit
version (1 = LLRP 1.0.1, 2 = 1.1), a 10-bit message type, a u32 length of the whole message
(header included) and a u32 message ID; a response carries the ID of its request. A body is a
few fixed fields (for some types) followed by parameters:
* TLV: 6 reserved bits, 10-bit type (128-1023), u16 length of the whole parameter, value;
* TV: top bit set, 7-bit type (1-127), then a value whose length is fixed by the type. There is
  no length field, so an unknown TV type makes the rest of its container unreadable.

Tag data arrives in RO_ACCESS_REPORT (61) as TagReportData (TLV 240): the EPC as EPC-96 (TV 13,
12 bytes) or EPCData (TLV 241: u16 bit count, bits padded to whole bytes), then the fields the
ROReportSpec switched on, among them AntennaID (TV 1, u16), PeakRSSI (TV 6, s8 dBm),
FirstSeenTimestampUTC (TV 2, u64 microseconds) and TagSeenCount (TV 8, u16).

Framing over the byte stream (no start byte, no checksum): a candidate header needs reserved
bits 0, a known message type, version 1 or 2 and a length in [10, `max_message_bytes`]; a
complete candidate is accepted only if its parameters nest exactly to its end. A candidate that
fails loses only its first byte and the search restarts there, as for the serial protocols, so
a message behind a cut-off one is still found; an incomplete candidate with a whole valid
message inside is abandoned as `truncated`. `garbage_run` counts the bytes dropped since the
last good message: past `MAX_GARBAGE_BYTES` the stream is `desynced` and the connection layer
reconnects, which resyncs for certain where a search through corrupt data may not.

A TCP stream does not lose bytes, so unlike a serial line silence never cuts a message here.
Rejections (`rejects`): bad_version, bad_length, bad_payload (parameters do not nest, unknown
TV type), truncated, no_epc (a TagReportData without an EPC, skipped on its own),
bad_epc_length (an EPCData outside 2..62 bytes, skipped on its own: the system cannot carry
it), control_overflow (messages not taken by the connection layer).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rfid.events import TagRead
from rfid.protocols.base import FrameParser, epc_length_ok

VERSION = 1  # LLRP 1.0.1
HEADER_LEN = 10
DEFAULT_PORT = 5084
MAX_MESSAGE_BYTES = 1 << 20  # a report of ~25,000 tags; a longer length field is noise
MAX_GARBAGE_BYTES = 4096
MAX_CONTROL_BACKLOG = 1024

# Message types.
GET_READER_CAPABILITIES = 1
SET_READER_CONFIG = 3
CLOSE_CONNECTION_RESPONSE = 4
GET_READER_CAPABILITIES_RESPONSE = 11
SET_READER_CONFIG_RESPONSE = 13
CLOSE_CONNECTION = 14
ADD_ROSPEC = 20
DELETE_ROSPEC = 21
START_ROSPEC = 22
STOP_ROSPEC = 23
ENABLE_ROSPEC = 24
ADD_ROSPEC_RESPONSE = 30
DELETE_ROSPEC_RESPONSE = 31
START_ROSPEC_RESPONSE = 32
STOP_ROSPEC_RESPONSE = 33
ENABLE_ROSPEC_RESPONSE = 34
RO_ACCESS_REPORT = 61
KEEPALIVE = 62
READER_EVENT_NOTIFICATION = 63
KEEPALIVE_ACK = 72
ERROR_MESSAGE = 100
CUSTOM_MESSAGE = 1023

MESSAGE_NAMES: dict[int, str] = {
    1: "GET_READER_CAPABILITIES",
    2: "GET_READER_CONFIG",
    3: "SET_READER_CONFIG",
    4: "CLOSE_CONNECTION_RESPONSE",
    11: "GET_READER_CAPABILITIES_RESPONSE",
    12: "GET_READER_CONFIG_RESPONSE",
    13: "SET_READER_CONFIG_RESPONSE",
    14: "CLOSE_CONNECTION",
    20: "ADD_ROSPEC",
    21: "DELETE_ROSPEC",
    22: "START_ROSPEC",
    23: "STOP_ROSPEC",
    24: "ENABLE_ROSPEC",
    25: "DISABLE_ROSPEC",
    26: "GET_ROSPECS",
    30: "ADD_ROSPEC_RESPONSE",
    31: "DELETE_ROSPEC_RESPONSE",
    32: "START_ROSPEC_RESPONSE",
    33: "STOP_ROSPEC_RESPONSE",
    34: "ENABLE_ROSPEC_RESPONSE",
    35: "DISABLE_ROSPEC_RESPONSE",
    36: "GET_ROSPECS_RESPONSE",
    40: "ADD_ACCESSSPEC",
    41: "DELETE_ACCESSSPEC",
    42: "ENABLE_ACCESSSPEC",
    43: "DISABLE_ACCESSSPEC",
    44: "GET_ACCESSSPECS",
    45: "CLIENT_REQUEST_OP",
    46: "GET_SUPPORTED_VERSION",
    47: "SET_PROTOCOL_VERSION",
    50: "ADD_ACCESSSPEC_RESPONSE",
    51: "DELETE_ACCESSSPEC_RESPONSE",
    52: "ENABLE_ACCESSSPEC_RESPONSE",
    53: "DISABLE_ACCESSSPEC_RESPONSE",
    54: "GET_ACCESSSPECS_RESPONSE",
    55: "CLIENT_REQUEST_OP_RESPONSE",
    56: "GET_SUPPORTED_VERSION_RESPONSE",
    57: "SET_PROTOCOL_VERSION_RESPONSE",
    60: "GET_REPORT",
    61: "RO_ACCESS_REPORT",
    62: "KEEPALIVE",
    63: "READER_EVENT_NOTIFICATION",
    64: "ENABLE_EVENTS_AND_REPORTS",
    72: "KEEPALIVE_ACK",
    100: "ERROR_MESSAGE",
    1023: "CUSTOM_MESSAGE",
}

# Bytes of fixed fields before a message's parameters (None: opaque vendor data).
_FIELD_BYTES: dict[int, int | None] = dict.fromkeys(MESSAGE_NAMES, 0)
_FIELD_BYTES.update({1: 1, 2: 7, 3: 1, 21: 4, 22: 4, 23: 4, 24: 4, 25: 4})
_FIELD_BYTES.update({41: 4, 42: 4, 43: 4, 47: 1, 56: 2, 1023: None})
_KNOWN = [t in _FIELD_BYTES for t in range(1024)]

# TLV parameter types.
P_UTC_TIMESTAMP = 128
P_UPTIME = 129
P_ROSPEC = 177
P_RO_BOUNDARY_SPEC = 178
P_ROSPEC_START_TRIGGER = 179
P_ROSPEC_STOP_TRIGGER = 182
P_AISPEC = 183
P_AISPEC_STOP_TRIGGER = 184
P_INVENTORY_PARAMETER_SPEC = 186
P_KEEPALIVE_SPEC = 220
P_RO_REPORT_SPEC = 237
P_TAG_REPORT_CONTENT_SELECTOR = 238
P_TAG_REPORT_DATA = 240
P_EPC_DATA = 241
P_READER_EVENT_NOTIFICATION_DATA = 246
P_CONNECTION_ATTEMPT_EVENT = 256
P_CONNECTION_CLOSE_EVENT = 257
P_LLRP_STATUS = 287

# TV parameter types and their value lengths.
TV_ANTENNA_ID = 1
TV_FIRST_SEEN_UTC = 2
TV_LAST_SEEN_UTC = 4
TV_PEAK_RSSI = 6
TV_TAG_SEEN_COUNT = 8
TV_EPC_96 = 13
_TV_LEN = bytearray(128)
for _t, _n in {
    1: 2,  # AntennaID
    2: 8,  # FirstSeenTimestampUTC
    3: 8,  # FirstSeenTimestampUptime
    4: 8,  # LastSeenTimestampUTC
    5: 8,  # LastSeenTimestampUptime
    6: 1,  # PeakRSSI
    7: 2,  # ChannelIndex
    8: 2,  # TagSeenCount
    9: 4,  # ROSpecID
    10: 2,  # InventoryParameterSpecID
    11: 2,  # C1G2-CRC
    12: 2,  # C1G2-PC
    13: 12,  # EPC-96
    14: 2,  # SpecIndex
    15: 2,  # ClientRequestOpSpecResult
    16: 4,  # AccessSpecID
    17: 2,  # OpSpecID
    18: 4,  # C1G2SingulationDetails
    19: 2,  # C1G2-XPC-W1
    20: 2,  # C1G2-XPC-W2
}.items():
    _TV_LEN[_t] = _n
TV_LEN = bytes(_TV_LEN)

# ConnectionAttemptEvent statuses.
CONNECTION_SUCCESS = 0
CONNECTION_STATUS_NAMES = {
    0: "success",
    1: "a reader-initiated connection already exists",
    2: "a client-initiated connection already exists (another client is connected)",
    3: "failed for a reason other than an existing connection",
    4: "another connection was attempted",
}
STATUS_SUCCESS = 0

# TagReportContentSelector bits (MSB first: ROSpecID, SpecIndex, InventoryParameterSpecID,
# AntennaID, ChannelIndex, PeakRSSI, FirstSeen, LastSeen, TagSeenCount, AccessSpecID).
SELECT_ANTENNA_ID = 1 << 12
SELECT_PEAK_RSSI = 1 << 10
SELECT_FIRST_SEEN = 1 << 9
SELECT_LAST_SEEN = 1 << 8
SELECT_TAG_SEEN_COUNT = 1 << 7

_HEADER = struct.Struct(">HII")


class LlrpError(ValueError):
    """A body whose parameters do not nest (raised by the decoders, counted by the parser)."""


@dataclass(frozen=True, slots=True)
class LlrpMessage:
    """One framed message; `body` is everything after the header."""

    msg_type: int
    msg_id: int
    body: bytes
    version: int = VERSION

    @property
    def name(self) -> str:
        return MESSAGE_NAMES.get(self.msg_type, f"type {self.msg_type}")


@dataclass(frozen=True, slots=True)
class LlrpStatus:
    """The LLRPStatus of a response or ERROR_MESSAGE: code 0 is success."""

    code: int
    description: str = ""

    @property
    def ok(self) -> bool:
        return self.code == STATUS_SUCCESS


@dataclass(frozen=True, slots=True)
class TagReport:
    """One TagReportData: the EPC (upper-case hex) and whichever fields the reader sent."""

    epc: str
    antenna: int | None = None
    rssi_dbm: int | None = None
    first_seen_us: int | None = None
    last_seen_us: int | None = None
    seen_count: int | None = None


def iter_params(
    data: bytes | bytearray, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, int, int]]:
    """(type, value start, value end) of each parameter in data[start:end]; LlrpError if they
    do not nest exactly."""
    i = start
    stop = len(data) if end is None else end
    tv_len = TV_LEN
    while i < stop:
        b = data[i]
        if b & 0x80:
            t = b & 0x7F
            n = tv_len[t]
            if not n or i + 1 + n > stop:
                raise LlrpError(f"TV parameter {t} at byte {i} is unknown or cut off")
            yield t, i + 1, i + 1 + n
            i += 1 + n
            continue
        if stop - i < 4:
            raise LlrpError(f"TLV header at byte {i} is cut off")
        t = ((b & 0x03) << 8) | data[i + 1]
        n = (data[i + 2] << 8) | data[i + 3]
        if b & 0xFC or t < 128 or n < 4 or i + n > stop:
            raise LlrpError(f"TLV parameter at byte {i} (type {t}, length {n}) does not fit")
        yield t, i + 4, i + n
        i += n


def _check_params(data: bytes | bytearray, start: int, end: int) -> bool:
    try:
        for _ in iter_params(data, start, end):
            pass
    except LlrpError:
        return False
    return True


def _tag_fields(
    buf: bytes | bytearray, i: int, end: int
) -> tuple[str, int | None, int | None, int | None, int | None, int | None] | None:
    """The fields of one TagReportData's value; None without an EPC; LlrpError if malformed."""
    epc: str | None = None
    antenna = rssi = first = last = count = None
    tv_len = TV_LEN
    while i < end:
        b = buf[i]
        if b & 0x80:
            t = b & 0x7F
            n = tv_len[t]
            s = i + 1
            i = s + n
            if not n or i > end:
                raise LlrpError(f"TV parameter {t} in a TagReportData is unknown or cut off")
            if t == TV_EPC_96:
                epc = buf[s:i].hex().upper()
            elif t == TV_ANTENNA_ID:
                antenna = (buf[s] << 8) | buf[s + 1]
            elif t == TV_PEAK_RSSI:
                v = buf[s]
                rssi = v - 256 if v > 127 else v
            elif t == TV_FIRST_SEEN_UTC:
                first = int.from_bytes(buf[s:i], "big")
            elif t == TV_LAST_SEEN_UTC:
                last = int.from_bytes(buf[s:i], "big")
            elif t == TV_TAG_SEEN_COUNT:
                count = (buf[s] << 8) | buf[s + 1]
            continue
        if end - i < 4:
            raise LlrpError("TLV header in a TagReportData is cut off")
        t = ((b & 0x03) << 8) | buf[i + 1]
        n = (buf[i + 2] << 8) | buf[i + 3]
        if b & 0xFC or t < 128 or n < 4 or i + n > end:
            raise LlrpError("TLV parameter in a TagReportData does not fit")
        if t == P_EPC_DATA:
            if n < 6:
                raise LlrpError("EPCData without its bit count")
            bits = (buf[i + 4] << 8) | buf[i + 5]
            nbytes = (bits + 7) >> 3
            if 6 + nbytes > n:
                raise LlrpError(f"EPCData of {bits} bits does not fit in {n} bytes")
            if nbytes:
                epc = buf[i + 6 : i + 6 + nbytes].hex().upper()
        i += n
    if epc is None:
        return None
    return epc, antenna, rssi, first, last, count


def decode_tag_reports(body: bytes | bytearray) -> list[TagReport]:
    """The tags of an RO_ACCESS_REPORT body (reports without an EPC are left out)."""
    out = []
    for t, s, e in iter_params(body):
        if t == P_TAG_REPORT_DATA:
            fields = _tag_fields(body, s, e)
            if fields is not None:
                out.append(TagReport(*fields))
    return out


def decode_status(msg: LlrpMessage) -> LlrpStatus | None:
    """The LLRPStatus among a response's parameters, or None."""
    body = msg.body
    start = _FIELD_BYTES.get(msg.msg_type) or 0
    for t, s, e in iter_params(body, start):
        if t == P_LLRP_STATUS:
            if e - s < 4:
                raise LlrpError("LLRPStatus without code and description length")
            code = (body[s] << 8) | body[s + 1]
            n = (body[s + 2] << 8) | body[s + 3]
            if s + 4 + n > e:
                raise LlrpError("LLRPStatus description does not fit")
            text = bytes(body[s + 4 : s + 4 + n]).decode("utf-8", "replace")
            return LlrpStatus(code, text)
    return None


def _event_params(msg: LlrpMessage) -> Iterator[tuple[int, int, int]]:
    if msg.msg_type != READER_EVENT_NOTIFICATION:
        return
    for t, s, e in iter_params(msg.body):
        if t == P_READER_EVENT_NOTIFICATION_DATA:
            yield from iter_params(msg.body, s, e)


def connection_attempt_status(msg: LlrpMessage) -> int | None:
    """The ConnectionAttemptEvent status of a READER_EVENT_NOTIFICATION (0 = success)."""
    for t, s, e in _event_params(msg):
        if t == P_CONNECTION_ATTEMPT_EVENT:
            if e - s < 2:
                raise LlrpError("ConnectionAttemptEvent without a status")
            return (msg.body[s] << 8) | msg.body[s + 1]
    return None


def connection_closed(msg: LlrpMessage) -> bool:
    """True for a READER_EVENT_NOTIFICATION announcing that the reader closes the link."""
    return any(t == P_CONNECTION_CLOSE_EVENT for t, _, _ in _event_params(msg))


class LlrpParser(FrameParser):
    """Incremental LLRP framing: `feed(data, now)` returns the tag reads of RO_ACCESS_REPORTs;
    every other message is appended to `control` for the connection layer (`take_control`)."""

    name = "llrp"

    def __init__(self, reader_id: str = "", max_message_bytes: int = MAX_MESSAGE_BYTES):
        super().__init__(reader_id, frame_timeout_s=float("inf"))
        self.max_message_bytes = max_message_bytes
        self.control: list[LlrpMessage] = []
        self.garbage_run = 0
        # The search inside a candidate waiting for its end: where new bytes start, and the
        # plausible headers in it that wait for their own end (offsets from the candidate).
        self._later_from = 1
        self._later_waiting: list[tuple[int, int]] = []

    @property
    def desynced(self) -> bool:
        """Too many bytes without a valid message: reconnect rather than keep searching."""
        return self.garbage_run > MAX_GARBAGE_BYTES

    def take_control(self) -> list[LlrpMessage]:
        out, self.control = self.control, []
        return out

    def reset(self) -> None:
        super().reset()
        self.control.clear()
        self.garbage_run = 0
        self._forget_later()

    def feed(self, data: bytes | bytearray | memoryview, now: float) -> list[TagRead]:
        out: list[TagRead] = []
        if data:
            self._buf += data
            self._last_rx = now
        if len(self._buf) >= HEADER_LEN:
            self._scan(now, out)
        self.reads_total += len(out)
        return out

    def _drop(self, n: int) -> None:
        self.discarded_bytes += n
        self.garbage_run += n

    def _header_ok(self, pos: int) -> int:
        """Length of a plausible message at pos, or 0 (the reason is counted)."""
        w0, length, _ = _HEADER.unpack_from(self._buf, pos)
        if w0 >> 13 or not _KNOWN[w0 & 0x3FF] or not w0 >> 10:
            return 0  # noise: not even a header shape (version 0 is mostly zero bytes)
        if (w0 >> 10) & 7 > 2:
            self._reject("bad_version")
            return 0
        if not HEADER_LEN <= length <= self.max_message_bytes:
            self._reject("bad_length")
            return 0
        return int(length)

    def _scan(self, now: float, out: list[TagRead]) -> None:
        buf = self._buf
        n = len(buf)
        pos = 0
        while n - pos >= HEADER_LEN:
            length = self._header_ok(pos)
            if not length:
                self._drop(1)
                pos += 1
                self._forget_later()
                continue
            end = pos + length
            if end > n:
                later = self._later_message(pos, n)
                if later < 0:
                    break  # wait for the rest; the _later_ state refers to this candidate
                self._reject("truncated")  # a whole message starts inside it: it was cut off
                self._drop(later - pos)
                pos = later
                self._forget_later()
                continue
            self._forget_later()
            if not self._accept_message(pos, end, now, out):
                self._reject("bad_payload")
                self._drop(1)
                pos += 1
                continue
            pos = end
            self.garbage_run = 0
        if pos:
            del buf[:pos]

    def _later_message(self, start: int, n: int) -> int:
        """Start of the first complete, valid message inside the candidate at `start`, or -1.

        Each call searches only the bytes that arrived since the last one, plus the positions
        that held a plausible header still waiting for its end, so a long message arriving in
        pieces costs linear time."""
        buf = self._buf
        still_waiting: list[tuple[int, int]] = []
        found = -1
        for rel, length in self._later_waiting:
            q = start + rel
            if found < 0 and q + length <= n:
                msg_type = _HEADER.unpack_from(buf, q)[0] & 0x3FF
                if self._valid_body(msg_type, q + HEADER_LEN, q + length):
                    found = q
            elif q + length > n:
                still_waiting.append((rel, length))
        if found >= 0:
            return found
        for q in range(start + self._later_from, n - HEADER_LEN + 1):
            w0, length, _ = _HEADER.unpack_from(buf, q)
            if w0 >> 13 or not _KNOWN[w0 & 0x3FF] or not 1 <= (w0 >> 10) & 7 <= 2:
                continue
            if not HEADER_LEN <= length <= self.max_message_bytes:
                continue
            if q + length > n:
                still_waiting.append((q - start, length))
            elif self._valid_body(w0 & 0x3FF, q + HEADER_LEN, q + length):
                return q
        self._later_waiting = still_waiting
        self._later_from = max(1, n - HEADER_LEN + 1 - start)
        return -1

    def _forget_later(self) -> None:
        self._later_from = 1
        self._later_waiting = []

    def _valid_body(self, msg_type: int, start: int, end: int) -> bool:
        fixed = _FIELD_BYTES[msg_type]
        if fixed is None:
            return end - start >= 5
        if end - start < fixed:
            return False
        if msg_type == RO_ACCESS_REPORT:
            try:
                self._report_reads(start, end, 0.0, None)
            except LlrpError:
                return False
            return True
        return _check_params(self._buf, start + fixed, end)

    def _accept_message(self, pos: int, end: int, now: float, out: list[TagRead]) -> bool:
        buf = self._buf
        w0, _, msg_id = _HEADER.unpack_from(buf, pos)
        msg_type = w0 & 0x3FF
        start = pos + HEADER_LEN
        if msg_type == RO_ACCESS_REPORT:
            mark = len(out)
            try:
                self._report_reads(start, end, now, out)
            except LlrpError:
                del out[mark:]
                return False
            self._accept(now)
            return True
        if not self._valid_body(msg_type, start, end):
            return False
        self._accept(now)
        if len(self.control) >= MAX_CONTROL_BACKLOG:
            del self.control[0]
            self._reject("control_overflow")
        self.control.append(LlrpMessage(msg_type, msg_id, bytes(buf[start:end]), (w0 >> 10) & 7))
        return True

    def _report_reads(self, i: int, end: int, now: float, out: list[TagRead] | None) -> None:
        """Tag reads of an RO_ACCESS_REPORT body into `out` (None: only validate)."""
        buf = self._buf
        rid = self.reader_id
        missing = bad_length = 0
        while i < end:
            b = buf[i]
            if b & 0x80 or end - i < 4:
                raise LlrpError("an RO_ACCESS_REPORT holds TLV parameters only")
            t = ((b & 0x03) << 8) | buf[i + 1]
            n = (buf[i + 2] << 8) | buf[i + 3]
            if b & 0xFC or t < 128 or n < 4 or i + n > end:
                raise LlrpError("parameter does not fit in the RO_ACCESS_REPORT")
            if t == P_TAG_REPORT_DATA:
                fields = _tag_fields(buf, i + 4, i + n)
                if fields is None:
                    missing += 1
                elif not epc_length_ok(len(fields[0]) // 2):
                    bad_length += 1
                elif out is not None:
                    out.append(TagRead(fields[0], now, rid, fields[1] or 0, fields[2]))
            i += n
        if out is not None:
            for _ in range(missing):
                self._reject("no_epc")
            for _ in range(bad_length):
                self._reject("bad_epc_length")


# --- encoders ---------------------------------------------------------------------------------


def encode_message(msg_type: int, msg_id: int, body: bytes = b"", version: int = VERSION) -> bytes:
    if not 0 <= msg_type < 1024 or not 0 <= msg_id < 1 << 32:
        raise ValueError("message type is 10 bits and message ID 32 bits")
    return _HEADER.pack((version << 10) | msg_type, HEADER_LEN + len(body), msg_id) + body


def tlv(param_type: int, value: bytes = b"") -> bytes:
    if not 128 <= param_type < 1024 or len(value) + 4 > 0xFFFF:
        raise ValueError(f"TLV type {param_type} must be 128-1023, value under 65532 bytes")
    return struct.pack(">HH", param_type, len(value) + 4) + value


def tv(param_type: int, value: bytes) -> bytes:
    if not 1 <= param_type < 128 or TV_LEN[param_type] != len(value):
        raise ValueError(f"TV type {param_type} takes {TV_LEN[param_type]} bytes")
    return bytes([0x80 | param_type]) + value


def _status(code: int, description: str) -> bytes:
    text = description.encode("utf-8")
    return tlv(P_LLRP_STATUS, struct.pack(">HH", code, len(text)) + text)


def encode_get_reader_capabilities(msg_id: int) -> bytes:
    """GET_READER_CAPABILITIES, all of them (RequestedData 0)."""
    return encode_message(GET_READER_CAPABILITIES, msg_id, b"\x00")


def encode_set_reader_config(msg_id: int, keepalive_ms: int) -> bytes:
    """SET_READER_CONFIG without a factory reset: a periodic KEEPALIVE every `keepalive_ms`, so
    that a silent link is noticed even with no tag in the field."""
    if not 0 < keepalive_ms < 1 << 32:
        raise ValueError("keepalive period must be 1 ms to 2^32-1 ms")
    keepalive = tlv(P_KEEPALIVE_SPEC, struct.pack(">BI", 1, keepalive_ms))
    return encode_message(SET_READER_CONFIG, msg_id, b"\x00" + keepalive)


def _rospec_id_message(msg_type: int, msg_id: int, rospec_id: int) -> bytes:
    return encode_message(msg_type, msg_id, struct.pack(">I", rospec_id))


def encode_delete_rospec(msg_id: int, rospec_id: int = 0) -> bytes:
    """DELETE_ROSPEC; ID 0 deletes every ROSpec (a leftover one would keep the antennas busy)."""
    return _rospec_id_message(DELETE_ROSPEC, msg_id, rospec_id)


def encode_enable_rospec(msg_id: int, rospec_id: int) -> bytes:
    return _rospec_id_message(ENABLE_ROSPEC, msg_id, rospec_id)


def encode_start_rospec(msg_id: int, rospec_id: int) -> bytes:
    return _rospec_id_message(START_ROSPEC, msg_id, rospec_id)


def encode_stop_rospec(msg_id: int, rospec_id: int) -> bytes:
    return _rospec_id_message(STOP_ROSPEC, msg_id, rospec_id)


def encode_add_rospec(
    msg_id: int,
    rospec_id: int,
    antennas: Sequence[int] = (0,),
    report_every_n_tags: int = 1,
    content: int = SELECT_ANTENNA_ID | SELECT_PEAK_RSSI | SELECT_FIRST_SEEN | SELECT_TAG_SEEN_COUNT,
) -> bytes:
    """ADD_ROSPEC for a continuous Gen2 inventory on `antennas` (0 = all).

    Start trigger Null (started by START_ROSPEC), stop triggers Null (runs until stopped), one
    InventoryParameterSpec (ID 1, EPCglobal Class 1 Gen 2), and an ROReportSpec that sends a
    report every `report_every_n_tags` tags (or at the end of the AISpec, which never comes)
    with the fields selected in `content`.
    """
    if not antennas or not 1 <= report_every_n_tags <= 0xFFFF:
        raise ValueError("give at least one antenna and N of 1-65535")
    boundary = tlv(
        P_RO_BOUNDARY_SPEC,
        tlv(P_ROSPEC_START_TRIGGER, b"\x00") + tlv(P_ROSPEC_STOP_TRIGGER, b"\x00" + bytes(4)),
    )
    ai_spec = tlv(
        P_AISPEC,
        struct.pack(f">H{len(antennas)}H", len(antennas), *antennas)
        + tlv(P_AISPEC_STOP_TRIGGER, b"\x00" + bytes(4))
        + tlv(P_INVENTORY_PARAMETER_SPEC, struct.pack(">HB", 1, 1)),
    )
    report = tlv(
        P_RO_REPORT_SPEC,
        struct.pack(">BH", 1, report_every_n_tags)
        + tlv(P_TAG_REPORT_CONTENT_SELECTOR, struct.pack(">H", content)),
    )
    rospec = tlv(P_ROSPEC, struct.pack(">IBB", rospec_id, 0, 0) + boundary + ai_spec + report)
    return encode_message(ADD_ROSPEC, msg_id, rospec)


def encode_keepalive_ack(msg_id: int) -> bytes:
    """KEEPALIVE_ACK, echoing the KEEPALIVE's message ID."""
    return encode_message(KEEPALIVE_ACK, msg_id)


def encode_close_connection(msg_id: int) -> bytes:
    return encode_message(CLOSE_CONNECTION, msg_id)


# --- reader-side builders (simulators, tests, benchmarks) ----------------------------------


def build_reader_event(msg_id: int, ts_us: int, connection_status: int | None = 0) -> bytes:
    """READER_EVENT_NOTIFICATION with a UTCTimestamp and, unless None, a ConnectionAttemptEvent."""
    data = tlv(P_UTC_TIMESTAMP, struct.pack(">Q", ts_us))
    if connection_status is not None:
        data += tlv(P_CONNECTION_ATTEMPT_EVENT, struct.pack(">H", connection_status))
    return encode_message(
        READER_EVENT_NOTIFICATION, msg_id, tlv(P_READER_EVENT_NOTIFICATION_DATA, data)
    )


def build_connection_close_event(msg_id: int, ts_us: int) -> bytes:
    data = tlv(P_UTC_TIMESTAMP, struct.pack(">Q", ts_us)) + tlv(P_CONNECTION_CLOSE_EVENT)
    return encode_message(
        READER_EVENT_NOTIFICATION, msg_id, tlv(P_READER_EVENT_NOTIFICATION_DATA, data)
    )


def build_response(
    msg_type: int, msg_id: int, code: int = STATUS_SUCCESS, description: str = ""
) -> bytes:
    """A response (or ERROR_MESSAGE) carrying only its LLRPStatus."""
    return encode_message(msg_type, msg_id, _status(code, description))


def build_keepalive(msg_id: int) -> bytes:
    return encode_message(KEEPALIVE, msg_id)


def tag_report_data(tag: TagReport, *, epc96: bool = True) -> bytes:
    """One TagReportData: EPC-96 when `epc96` and the EPC is 96 bits, else EPCData."""
    epc = bytes.fromhex(tag.epc)
    if epc96 and len(epc) == 12:
        data = tv(TV_EPC_96, epc)
    else:
        data = tlv(P_EPC_DATA, struct.pack(">H", len(epc) * 8) + epc)
    if tag.antenna is not None:
        data += tv(TV_ANTENNA_ID, struct.pack(">H", tag.antenna))
    if tag.rssi_dbm is not None:
        data += tv(TV_PEAK_RSSI, struct.pack(">b", tag.rssi_dbm))
    if tag.first_seen_us is not None:
        data += tv(TV_FIRST_SEEN_UTC, struct.pack(">Q", tag.first_seen_us))
    if tag.last_seen_us is not None:
        data += tv(TV_LAST_SEEN_UTC, struct.pack(">Q", tag.last_seen_us))
    if tag.seen_count is not None:
        data += tv(TV_TAG_SEEN_COUNT, struct.pack(">H", tag.seen_count))
    return tlv(P_TAG_REPORT_DATA, data)


def build_ro_access_report(msg_id: int, tags: Sequence[TagReport], *, epc96: bool = True) -> bytes:
    return encode_message(
        RO_ACCESS_REPORT, msg_id, b"".join(tag_report_data(t, epc96=epc96) for t in tags)
    )


__all__ = [
    "DEFAULT_PORT",
    "HEADER_LEN",
    "MAX_GARBAGE_BYTES",
    "MAX_MESSAGE_BYTES",
    "MESSAGE_NAMES",
    "LlrpError",
    "LlrpMessage",
    "LlrpParser",
    "LlrpStatus",
    "TagReport",
    "build_connection_close_event",
    "build_keepalive",
    "build_reader_event",
    "build_response",
    "build_ro_access_report",
    "connection_attempt_status",
    "connection_closed",
    "decode_status",
    "decode_tag_reports",
    "encode_add_rospec",
    "encode_close_connection",
    "encode_delete_rospec",
    "encode_enable_rospec",
    "encode_get_reader_capabilities",
    "encode_keepalive_ack",
    "encode_message",
    "encode_set_reader_config",
    "encode_start_rospec",
    "encode_stop_rospec",
    "iter_params",
    "tag_report_data",
    "tlv",
    "tv",
]
