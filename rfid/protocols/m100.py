"""Magic RF M100 family (QM100, YRM100, JRD-4035, R200): `BB Type Cmd PL(2) params CS 7E`.

Type 00 command, 01 response, 02 notification. PL is big-endian; the frame is PL + 7 bytes.
The checksum is the low byte of the sum of Type..last parameter. A tag notification (Cmd 22)
carries RSSI (int8 dBm), PC (2), EPC ((PC >> 11) * 2 bytes) and the tag's own CRC-16/GENIBUS
over PC+EPC, checked as a second integrity test.

The reader runs a multi-poll (27) started after a stop (28); `encode_start()` gives both. The
serial layer re-sends it every few seconds: the stop's OK response doubles as a heartbeat,
because a multi-poll with no tag in the field may be silent.
"""

from __future__ import annotations

from rfid.crc import crc16_genibus
from rfid.events import TagRead
from rfid.protocols.base import FrameParser, epc_length_ok

HEADER = 0xBB
END = 0x7E
TYPE_COMMAND, TYPE_RESPONSE, TYPE_NOTIFICATION = 0x00, 0x01, 0x02
CMD_SINGLE_POLL = 0x22
CMD_MULTI_POLL = 0x27
CMD_STOP = 0x28
CMD_ERROR = 0xFF
ERR_NO_TAG = 0x15
MAX_PARAM_LEN = 255


class M100Parser(FrameParser):
    name = "m100"

    def __init__(self, reader_id: str = "", frame_timeout_s: float = 0.2):
        super().__init__(reader_id, frame_timeout_s)
        self.no_tag_responses = 0

    def _scan(self, now: float, out: list[TagRead]) -> None:
        buf = self._buf
        n = len(buf)
        pos = 0
        while True:
            i = buf.find(HEADER, pos)
            if i < 0:
                self.discarded_bytes += n - pos
                pos = n
                break
            self.discarded_bytes += i - pos
            pos = i
            if n - i < 5:
                break
            if buf[i + 1] > TYPE_NOTIFICATION:
                self.discarded_bytes += 1  # a BB that is not a header
                pos = i + 1
                continue
            pl = (buf[i + 3] << 8) | buf[i + 4]
            if pl > MAX_PARAM_LEN:
                self._reject("bad_length")
                pos = i + 1
                continue
            end = i + pl + 7
            if end > n:
                later = self._later_frame(i, n)
                if later < 0:
                    break
                self._reject("truncated")  # a whole frame starts inside it: it was cut off
                self.discarded_bytes += later - i
                pos = later
                continue
            if buf[end - 1] != END:
                self._reject("bad_end")
                pos = i + 1
                continue
            if sum(buf[i + 1 : end - 2]) & 0xFF != buf[end - 2]:
                self._reject("bad_checksum")
                pos = i + 1
                continue
            self._dispatch(buf[i + 1 : end - 2], now, out)
            pos = end
        if pos:
            del buf[:pos]

    def _later_frame(self, start: int, n: int) -> int:
        """Start of the first complete, valid frame after `start`, or -1 (see chafon.py)."""
        buf = self._buf
        q = buf.find(HEADER, start + 1)
        while 0 <= q <= n - 7:
            if buf[q + 1] <= TYPE_NOTIFICATION:
                end = q + ((buf[q + 3] << 8) | buf[q + 4]) + 7
                if (
                    end <= n
                    and buf[end - 1] == END
                    and (sum(buf[q + 1 : end - 2]) & 0xFF == buf[end - 2])
                ):
                    return q
            q = buf.find(HEADER, q + 1)
        return -1

    def _dispatch(self, body: bytearray, now: float, out: list[TagRead]) -> None:
        typ, cmd = body[0], body[1]
        params = body[4:]
        if typ == TYPE_NOTIFICATION and cmd == CMD_SINGLE_POLL:
            if len(params) < 5:
                self._reject("bad_payload")
                return
            epc_len = (params[1] >> 3) * 2  # (PC >> 11) * 2, PC big-endian
            if not epc_length_ok(epc_len):  # 5 bits of words: only 0 is out of range
                self._reject("bad_epc_length")
                return
            if len(params) != epc_len + 5:
                self._reject("bad_payload")
                return
            crc_at = 3 + epc_len
            if crc16_genibus(params[1:crc_at]) != (params[crc_at] << 8) | params[crc_at + 1]:
                self._reject("bad_tag_crc")
                return
            self._accept(now)
            rssi = params[0] - 256 if params[0] > 127 else params[0]
            out.append(TagRead(params[3:crc_at].hex().upper(), now, self.reader_id, 1, rssi))
            return
        if typ == TYPE_RESPONSE and cmd == CMD_ERROR and params[:1] == bytes([ERR_NO_TAG]):
            self.no_tag_responses += 1
        self._accept(now)


def build_frame(typ: int, cmd: int, params: bytes = b"") -> bytes:
    body = bytes([typ, cmd, len(params) >> 8, len(params) & 0xFF]) + params
    return bytes([HEADER]) + body + bytes([sum(body) & 0xFF, END])


def encode_single_poll() -> bytes:
    return build_frame(TYPE_COMMAND, CMD_SINGLE_POLL)


def encode_multi_poll(count: int = 10000) -> bytes:
    """Multi-poll `count` rounds (reserved byte 22, count big-endian)."""
    if not 0 < count <= 0xFFFF:
        raise ValueError("count must be 1-65535")
    return build_frame(TYPE_COMMAND, CMD_MULTI_POLL, bytes([0x22, count >> 8, count & 0xFF]))


def encode_stop() -> bytes:
    return build_frame(TYPE_COMMAND, CMD_STOP)


def encode_start(count: int = 0xFFFF) -> bytes:
    """Stop any running multi-poll, then start a new one (the manual: stop before commands)."""
    return encode_stop() + encode_multi_poll(count)


def build_notification(epc: bytes, rssi_dbm: int, pc: int | None = None) -> bytes:
    """A tag notification with a correct Gen2 CRC (PC defaults to the EPC length)."""
    if pc is None:
        pc = (len(epc) // 2) << 11
    pc_epc = bytes([pc >> 8, pc & 0xFF]) + epc
    crc = crc16_genibus(pc_epc)
    params = bytes([rssi_dbm & 0xFF]) + pc_epc + bytes([crc >> 8, crc & 0xFF])
    return build_frame(TYPE_NOTIFICATION, CMD_SINGLE_POLL, params)


def build_stop_ok() -> bytes:
    return build_frame(TYPE_RESPONSE, CMD_STOP, b"\x00")


def build_error(code: int = ERR_NO_TAG) -> bytes:
    return build_frame(TYPE_RESPONSE, CMD_ERROR, bytes([code]))


__all__ = [
    "M100Parser",
    "build_error",
    "build_frame",
    "build_notification",
    "build_stop_ok",
    "encode_multi_poll",
    "encode_single_poll",
    "encode_start",
    "encode_stop",
]
