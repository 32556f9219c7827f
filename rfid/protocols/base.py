"""The framing machinery every serial protocol shares: one buffer per port, stale half frames.

A protocol subclasses `FrameParser` and implements `_scan`, which consumes complete frames from
the head of the buffer and stops at an incomplete candidate. The rules from the RFID reference:
* a candidate that fails its checksum loses only its first byte, then the search restarts there,
  because a cut-off frame can hide a good one;
* the end of a frame comes from its length field, never from searching for an end byte;
* lengths are capped, and a half-received frame is dropped after `frame_timeout_s` of silence,
  observed as an empty read (the same drop-one-byte rescan then recovers any whole frame
  behind it).

Counters: `rejects[reason]` counts candidates that looked like frames (plausible header) but
failed: bad_checksum, bad_length, bad_end, bad_hex, bad_payload, bad_tag_crc, wrong_address,
truncated (a whole valid frame starts inside it), stale_partial (cut by silence), overflow, and
bad_epc_length (one per EPC outside `MIN_EPC_BYTES`..`MAX_EPC_BYTES` that a valid frame carried;
the frame's other tags are kept).
`discarded_bytes` counts bytes skipped as noise; `frames_ok` counts frames that passed every
check, including ones that carry no tag (they prove the reader is alive).
"""

from __future__ import annotations

from rfid.events import TagRead

DEFAULT_FRAME_TIMEOUT_S = 0.2
MAX_BUFFER_BYTES = 8192
# The EPCs the rest of the system can carry (the wire format's 4..124 hex digits). A Gen2 PC
# word counts the EPC in 16-bit words, at most 31; a read outside this range is no item
# anyone can look up, and it used to fail later, in the daemon, where it cost other messages.
MIN_EPC_BYTES = 2
MAX_EPC_BYTES = 62


def epc_length_ok(n_bytes: int) -> bool:
    return MIN_EPC_BYTES <= n_bytes <= MAX_EPC_BYTES


class FrameParser:
    """Incremental parser: `feed(data, now)` returns the tag reads completed by `data`."""

    name = "base"

    def __init__(self, reader_id: str = "", frame_timeout_s: float = DEFAULT_FRAME_TIMEOUT_S):
        self.reader_id = reader_id
        self.frame_timeout_s = frame_timeout_s
        self._buf = bytearray()
        self._last_rx: float | None = None
        self.rejects: dict[str, int] = {}
        self.frames_ok = 0
        self.reads_total = 0
        self.discarded_bytes = 0
        self.last_frame_ts: float | None = None

    @property
    def buffered(self) -> int:
        """Bytes waiting for the rest of their frame."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget a half frame (after the port was closed); counters stay."""
        self._buf.clear()
        self._last_rx = None

    def feed(self, data: bytes | bytearray | memoryview, now: float) -> list[TagRead]:
        out: list[TagRead] = []
        buf = self._buf
        # Silence is only believed when a read came back empty: a caller that was itself
        # delayed finds the rest of the frame waiting in the OS buffer, which is not a gap.
        if (
            not data
            and buf
            and self._last_rx is not None
            and now - self._last_rx > self.frame_timeout_s
        ):
            self._flush_stale(now, out)
        if data:
            buf += data
            self._last_rx = now
            if len(buf) > MAX_BUFFER_BYTES:
                # Only reachable with a plausible header promising more than arrives under a
                # constant stream; keep the newest bytes.
                excess = len(buf) - MAX_BUFFER_BYTES
                del buf[:excess]
                self.discarded_bytes += excess
                self._reject("overflow")
        if buf:
            self._scan(now, out)
        self.reads_total += len(out)
        return out

    def _flush_stale(self, now: float, out: list[TagRead]) -> None:
        self._reject("stale_partial")
        buf = self._buf
        while buf:
            del buf[0]
            self.discarded_bytes += 1
            self._scan(now, out)

    def _reject(self, reason: str) -> None:
        self.rejects[reason] = self.rejects.get(reason, 0) + 1

    def _accept(self, now: float) -> None:
        self.frames_ok += 1
        self.last_frame_ts = now

    def _scan(self, now: float, out: list[TagRead]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


__all__ = [
    "DEFAULT_FRAME_TIMEOUT_S",
    "MAX_BUFFER_BYTES",
    "MAX_EPC_BYTES",
    "MIN_EPC_BYTES",
    "FrameParser",
    "epc_length_ok",
]
