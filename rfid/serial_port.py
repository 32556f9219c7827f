"""Serial reader handling: open by path, poll without blocking for long, reconnect with backoff.

`ReaderSource` is the interface the edge daemon's RFID worker and the stock engine's caller see:

    reads = reader.poll(now)
    engine.set_reader_health(reader.reader_id, reader.state == "connected", now)
    engine.ingest(reads)

Anything that can produce `TagRead`s and say whether it is healthy fits: `SerialReader` here,
`rfid.network_port.LlrpReader` for LLRP network readers (Impinj, Zebra), both built from a
`ReaderConfig` by `rfid.readers.make_reader`. The stock engine only sees `TagRead`s and health
flags, so it does not know which kind of reader it is fed by.

No threads here: `poll` reads what is available (waiting at most `read_timeout_s`), writes the
inventory command when due, and returns the parsed reads. Every I/O error (pyserial's
`SerialException` subclasses `OSError`; an unplugged port raises either) closes the port and
schedules a reopen after 1, 2, 4 ... 30 s.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Literal, Protocol

import serial

from rfid.config import ReaderConfig
from rfid.events import TagRead
from rfid.protocols import PROTOCOLS, FrameParser, ProtocolSpec
from rfid.protocols.base import DEFAULT_FRAME_TIMEOUT_S
from rfid.read_rate import ReadRate

log = logging.getLogger(__name__)

ReaderState = Literal["connecting", "connected", "stale", "reconnecting", "failed"]
BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
FAILED_AFTER_ATTEMPTS = 5
RESPONSE_TIMEOUT_S = 0.5  # beyond the scan time (= poll interval) a polled reader is given


@dataclass(frozen=True)
class ReaderHealth:
    """What the daemon reports for one reader (maps onto the wire format's SourceHealth).

    `state`: connecting (not opened yet), connected, stale (open but a reader that always
    answers has been silent for `stale_after_s`), reconnecting (lost, retrying with backoff),
    failed (5 or more opens in a row failed; still retried every 30 s).
    """

    reader_id: str
    state: ReaderState
    last_frame_ts: float | None
    last_frame_age_s: float | None
    read_rate_hz: float
    errors: dict[str, int] = field(default_factory=dict)


class ReaderSource(Protocol):
    """A source of tag reads with a health state (serial or network reader)."""

    reader_id: str
    last_error: str | None

    @property
    def state(self) -> ReaderState: ...

    @property
    def is_open(self) -> bool:
        """A port or connection is open (or being opened): False while waiting to retry."""
        ...

    @property
    def parser(self) -> FrameParser: ...

    @property
    def heard_ts(self) -> float | None:
        """When the reader was last heard, if its frames keep coming while it works (it is
        polled or sends heartbeats); None if it speaks only when a tag is there."""
        ...

    def poll(self, now: float) -> list[TagRead]: ...

    def health(self, now: float) -> ReaderHealth: ...

    def close(self) -> None: ...


class SerialReader:
    """One serial reader (`ReaderConfig`) speaking one of `PROTOCOLS`."""

    def __init__(
        self,
        cfg: ReaderConfig,
        reader_id: str | None = None,
        *,
        read_timeout_s: float = 0.05,
        write_timeout_s: float = 0.5,
        frame_timeout_s: float = DEFAULT_FRAME_TIMEOUT_S,
    ):
        self.cfg = cfg
        self.reader_id = reader_id if reader_id is not None else cfg.id
        self.spec: ProtocolSpec = PROTOCOLS[cfg.protocol]
        self.parser: FrameParser = self.spec.make_parser(cfg, self.reader_id, frame_timeout_s)
        self.read_timeout_s = read_timeout_s
        self.write_timeout_s = write_timeout_s
        self.stale_after_s = cfg.presence.stale_after_s
        self._ser: serial.Serial | None = None
        self._state: ReaderState = "connecting"
        self._next_open_ts = float("-inf")
        self._backoff_s = BACKOFF_START_S
        self._failed_opens = 0
        self._connected_ts = 0.0
        self._next_poll_ts = 0.0
        self._next_rearm_ts = 0.0
        self._cycle = 0
        self._frames_at_command = 0
        self._command_deadline_ts = float("-inf")
        self._frames_at_open = 0
        self.io_errors: dict[str, int] = {}
        self.last_error: str | None = None
        self._rate = ReadRate()

    @property
    def state(self) -> ReaderState:
        return self._state

    @property
    def is_open(self) -> bool:
        return self._ser is not None

    @property
    def heard_ts(self) -> float | None:
        return self.parser.last_frame_ts if self.spec.idle_frames else None

    def poll(self, now: float) -> list[TagRead]:
        """Read what the port has (waiting up to `read_timeout_s`) and return the tag reads."""
        if self._ser is None and (now < self._next_open_ts or not self._open(now)):
            return []
        ser = self._ser
        assert ser is not None
        try:
            self._send_due(ser, now)
            waiting = ser.in_waiting
            data = ser.read(waiting or 1)
            more = ser.in_waiting
            if more:
                data += ser.read(more)
        except OSError as exc:
            self._lost(now, exc)
            return []
        reads = self.parser.feed(data, now)
        self._after_feed(now, len(reads))
        return reads

    def health(self, now: float) -> ReaderHealth:
        last = self.parser.last_frame_ts
        errors = dict(self.parser.rejects)
        errors.update(self.io_errors)
        return ReaderHealth(
            reader_id=self.reader_id,
            state=self._state,
            last_frame_ts=last,
            last_frame_age_s=None if last is None else max(0.0, now - last),
            read_rate_hz=self._rate.hz if self._ser is not None else 0.0,
            errors=errors,
        )

    def close(self) -> None:
        if self._ser is not None:
            with contextlib.suppress(OSError):
                self._ser.close()
            self._ser = None

    # --- internals -------------------------------------------------------------------------

    def _count(self, what: str) -> None:
        self.io_errors[what] = self.io_errors.get(what, 0) + 1

    def _open(self, now: float) -> bool:
        try:
            self._ser = serial.Serial(
                self.cfg.serial_path,
                self.cfg.effective_baud,
                timeout=self.read_timeout_s,
                write_timeout=self.write_timeout_s,
                exclusive=True,
            )
        except (OSError, ValueError) as exc:
            self._failed_opens += 1
            self._count("open_failed")
            self.last_error = str(exc)
            if self._failed_opens == FAILED_AFTER_ATTEMPTS:
                log.error("reader %s: cannot open %s: %s", self.reader_id, self.cfg.port, exc)
            if self._failed_opens >= FAILED_AFTER_ATTEMPTS:
                self._state = "failed"
            elif self._state != "connecting":
                self._state = "reconnecting"
            self._schedule_reopen(now)
            return False
        log.info("reader %s: opened %s", self.reader_id, self.cfg.port)
        self._failed_opens = 0
        self._state = "connected"
        self._connected_ts = now
        self._next_poll_ts = now
        self._next_rearm_ts = now
        self._command_deadline_ts = float("-inf")
        self._frames_at_open = self.parser.frames_ok
        self.parser.reset()
        return True

    def _schedule_reopen(self, now: float) -> None:
        self._next_open_ts = now + self._backoff_s
        self._backoff_s = min(BACKOFF_MAX_S, self._backoff_s * 2)

    def _lost(self, now: float, exc: BaseException) -> None:
        log.warning("reader %s: port lost (%s); reconnecting", self.reader_id, exc)
        self._count("disconnects")
        self.last_error = str(exc)
        self.close()
        self.parser.reset()
        self._state = "reconnecting"
        self._schedule_reopen(now)

    def _send_due(self, ser: serial.Serial, now: float) -> None:
        spec = self.spec
        if spec.start_command is not None and now >= self._next_rearm_ts:
            ser.write(spec.start_command(self.cfg))
            rearm = spec.rearm_s or float("inf")
            self._next_rearm_ts = now + min(rearm, self.stale_after_s / 2)
        if spec.poll_command is not None and now >= self._next_poll_ts:
            # One command in flight: a reader still scanning ignores (or rejects) a new one,
            # so wait for its answer, or give up on it after the response timeout.
            answered = self.parser.frames_ok > self._frames_at_command
            if not answered and now < self._command_deadline_ts:
                return
            ser.write(spec.poll_command(self.cfg, self._cycle))
            self._cycle += 1
            self._frames_at_command = self.parser.frames_ok
            interval = self.cfg.poll_interval_s
            self._command_deadline_ts = now + interval + RESPONSE_TIMEOUT_S
            # Skip missed slots instead of bursting commands after a long pause.
            self._next_poll_ts = max(self._next_poll_ts + interval, now + interval / 2)

    def _after_feed(self, now: float, n_reads: int) -> None:
        if self.parser.frames_ok > self._frames_at_open or now - self._connected_ts > BACKOFF_MAX_S:
            # A real frame, or a port that has stayed open (an RDM6300 with no card in front
            # of it is silent): the link works, so the next loss starts the backoff at 1 s.
            self._backoff_s = BACKOFF_START_S
        self._rate.add(n_reads, now)
        if not self.spec.idle_frames:
            return
        last = max(self.parser.last_frame_ts or self._connected_ts, self._connected_ts)
        silent_s = now - last
        if silent_s > 3 * self.stale_after_s:
            # An open port that never answers (hung adapter): reopen it.
            self._lost(now, OSError(f"no frame for {silent_s:.0f} s"))
            self._count("silent_reopen")
        elif silent_s > self.stale_after_s:
            self._state = "stale"
        else:
            self._state = "connected"


__all__ = ["ReaderHealth", "ReaderSource", "ReaderState", "SerialReader"]
