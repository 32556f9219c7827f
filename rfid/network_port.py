"""LLRP network readers: one TCP connection per reader, driven by `poll(now)`, no threads.

`LlrpReader` is a `ReaderSource` like `SerialReader`: each `poll(now)` waits at most once, for
`read_timeout_s`, on its socket, so the caller's loop keeps its rhythm. A connection goes
through four phases:

1. connect: a non-blocking TCP connect to host:port, abandoned after `connect_timeout_s`;
2. greeting: the reader speaks first, a READER_EVENT_NOTIFICATION whose ConnectionAttemptEvent
   says success; any other status (e.g. another client holds the reader) fails the attempt;
3. configure, one request at a time, each answered by a success LLRPStatus within
   `connect_timeout_s`: SET_READER_CONFIG (a KEEPALIVE every stale_after_s / 2), DELETE_ROSPEC
   0 (leftovers; its failure is ignored), ADD_ROSPEC (continuous inventory on the configured
   antennas, one report per tag with antenna, peak RSSI, first-seen time and seen count),
   ENABLE_ROSPEC, START_ROSPEC;
4. run: RO_ACCESS_REPORTs become `TagRead`s stamped with `now` (readers' clocks are often not
   set, and a report per tag arrives within milliseconds), KEEPALIVE is answered with
   KEEPALIVE_ACK, and a ConnectionCloseEvent or a TCP close ends the connection.

States as for serial readers: `connecting` (not connected yet), `connected` (running, and a
message within `stale_after_s`: keepalives arrive twice in that time even with no tag in the
field), `stale` (silent for longer; reconnected after 3x), `reconnecting`, `failed` (5 or more
failed attempts in a row; still retried every 30 s). Any failure closes the socket and retries
after 1, 2, 4 ... 30 s; reaching the run phase resets the backoff. A stream that stops making
sense (`LlrpParser.desynced`) is closed as well: a new connection resyncs for certain.

The host name goes through getaddrinfo, which blocks as long as the resolver takes: configure
readers by IP address (or /etc/hosts) to keep every poll short.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
from collections.abc import Callable, Sequence
from typing import Literal

from rfid.config import ReaderConfig
from rfid.events import TagRead
from rfid.protocols import llrp
from rfid.read_rate import ReadRate
from rfid.serial_port import (
    BACKOFF_MAX_S,
    BACKOFF_START_S,
    FAILED_AFTER_ATTEMPTS,
    ReaderHealth,
    ReaderState,
)

log = logging.getLogger(__name__)

Phase = Literal["idle", "connecting", "greeting", "configuring", "running"]
RECV_BYTES = 65536
MAX_READ_BYTES_PER_POLL = 1 << 20
MAX_UNSENT_BYTES = 1 << 16
_IN_PROGRESS = {0, errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK}


class LlrpReader:
    """One LLRP reader (`ReaderConfig` with protocol llrp, host and TCP port)."""

    def __init__(
        self,
        cfg: ReaderConfig,
        reader_id: str | None = None,
        *,
        read_timeout_s: float = 0.05,
        antenna_ids: Sequence[int] | None = None,
        rospec_id: int = 1,
        report_every_n_tags: int = 1,
    ):
        if not cfg.is_network:
            raise ValueError(f"reader {cfg.id}: protocol {cfg.protocol} is not a network reader")
        self.cfg = cfg
        self.reader_id = reader_id if reader_id is not None else cfg.id
        self.host = cfg.host or ""
        self.port = cfg.tcp_port
        self.parser = llrp.LlrpParser(self.reader_id)
        self.read_timeout_s = read_timeout_s
        self.connect_timeout_s = cfg.connect_timeout_s
        self.stale_after_s = cfg.presence.stale_after_s
        self.keepalive_ms = max(100, round(self.stale_after_s * 500))
        # Listen mode passes [0] (every antenna); the daemon inventories the mapped ones only.
        self.antenna_ids = list(antenna_ids) if antenna_ids is not None else sorted(cfg.antennas)
        self.rospec_id = rospec_id
        self.report_every_n_tags = report_every_n_tags
        self.io_errors: dict[str, int] = {}
        self.last_error: str | None = None
        self.keepalives = 0
        self._sock: socket.socket | None = None
        self._poller: select.poll | None = None
        self._phase: Phase = "idle"
        self._state: ReaderState = "connecting"
        self._peer_closed = False
        self._out = bytearray()
        self._next_open_ts = float("-inf")
        self._backoff_s = BACKOFF_START_S
        self._failed_attempts = 0
        self._deadline = float("inf")
        self._msg_id = 0
        self._steps: list[tuple[int, int, Callable[[int], bytes], bool]] = []
        self._awaiting: tuple[int, int, int, bool] | None = None  # request, response, id, must
        self._connected_ts = 0.0
        self._rate = ReadRate()

    @property
    def state(self) -> ReaderState:
        return self._state

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    @property
    def heard_ts(self) -> float | None:
        # LLRP readers send keepalives while they run: silence is never normal.
        return self.parser.last_frame_ts

    @property
    def failed_attempts(self) -> int:
        """Failed connection attempts since the last one that reached the run phase."""
        return self._failed_attempts

    def poll(self, now: float) -> list[TagRead]:
        """Advance the connection (waiting up to `read_timeout_s`) and return the tag reads."""
        if self._sock is None and (now < self._next_open_ts or not self._connect(now)):
            return []
        try:
            if self._phase == "connecting":
                self._tcp_connected(now)  # the greeting is read by the next poll
                return []
            data = self._exchange()
        except OSError as exc:
            what = {"connecting": "connect_failed", "running": "disconnects"}
            self._drop(
                now, f"{self.host}:{self.port}: {exc}", what.get(self._phase, "greeting_failed")
            )
            return []
        reads = self.parser.feed(data, now)
        if self.parser.desynced:
            self._drop(now, "the reader's byte stream is out of sync", "desync_reconnect")
        else:
            self._handle_control(now)
        if self._sock is not None and self._peer_closed:
            self._drop(now, "the reader closed the connection", "disconnects")
        if self._sock is not None:
            self._check_timers(now)
        self._rate.add(len(reads), now)
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
            read_rate_hz=self._rate.hz if self._phase == "running" else 0.0,
            errors=errors,
        )

    def close(self) -> None:
        """Stop the inventory and say goodbye (best effort, without waiting), then close."""
        if self._sock is not None and self._phase == "running":
            self._out += llrp.encode_stop_rospec(self._new_id(), self.rospec_id)
            self._out += llrp.encode_close_connection(self._new_id())
            with contextlib.suppress(OSError):
                self._flush()
        self._close_socket()
        self._phase = "idle"

    # --- internals -------------------------------------------------------------------------

    def _count(self, what: str) -> None:
        self.io_errors[what] = self.io_errors.get(what, 0) + 1

    def _new_id(self) -> int:
        self._msg_id = self._msg_id + 1 if self._msg_id < 0xFFFFFFFF else 1
        return self._msg_id

    def _connect(self, now: float) -> bool:
        sock: socket.socket | None = None
        try:
            family, kind, proto, _, addr = socket.getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM
            )[0]
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            # Requests and acks are small and each waits for an answer: send them at once.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex(addr)
            if err not in _IN_PROGRESS:
                raise OSError(err, os.strerror(err))
        except OSError as exc:
            if sock is not None:
                sock.close()
            self._attempt_failed(now, f"{self.host}:{self.port}: {exc}", "connect_failed")
            return False
        self._sock = sock
        self._poller = select.poll()
        self._poller.register(sock, select.POLLOUT)
        self._phase = "connecting"
        self._deadline = now + self.connect_timeout_s
        self._peer_closed = False
        self._out.clear()
        self.parser.reset()
        return True

    def _tcp_connected(self, now: float) -> None:
        sock, poller = self._sock, self._poller
        assert sock is not None and poller is not None
        if poller.poll(self.read_timeout_s * 1000):
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
            poller.modify(sock, select.POLLIN)
            self._phase = "greeting"
            self._deadline = now + self.connect_timeout_s
            log.info("reader %s: TCP connected to %s:%s", self.reader_id, self.host, self.port)
        elif now > self._deadline:
            raise TimeoutError(f"no TCP connection within {self.connect_timeout_s:g} s")

    def _exchange(self) -> bytes:
        """Send what is pending, then read what the reader sent (waiting up to the timeout)."""
        sock, poller = self._sock, self._poller
        assert sock is not None and poller is not None
        if self._out:
            self._flush()
        if not poller.poll(self.read_timeout_s * 1000):
            return b""
        chunks: list[bytes] = []
        total = 0
        while total < MAX_READ_BYTES_PER_POLL:
            try:
                chunk = sock.recv(RECV_BYTES)
            except BlockingIOError:
                break
            if not chunk:
                # Closed by the reader: parse what came before the close, then drop.
                self._peer_closed = True
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)

    def _flush(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            sent = sock.send(self._out)
        except BlockingIOError:
            sent = 0
        del self._out[:sent]
        if len(self._out) > MAX_UNSENT_BYTES:
            raise OSError("the reader does not take our messages (send buffer full)")

    def _send(self, message: bytes) -> None:
        self._out += message
        self._flush()

    def _handle_control(self, now: float) -> None:
        for msg in self.parser.take_control():
            if self._sock is None:
                return
            try:
                self._on_message(msg, now)
            except llrp.LlrpError as exc:
                self._count("bad_message")
                log.warning("reader %s: unreadable %s: %s", self.reader_id, msg.name, exc)
            except OSError as exc:
                self._drop(now, f"{self.host}:{self.port}: {exc}", "disconnects")

    def _on_message(self, msg: llrp.LlrpMessage, now: float) -> None:
        kind = msg.msg_type
        if kind == llrp.KEEPALIVE:
            self.keepalives += 1
            self._send(llrp.encode_keepalive_ack(msg.msg_id))
            return
        if kind == llrp.READER_EVENT_NOTIFICATION:
            attempt = llrp.connection_attempt_status(msg)
            if attempt is not None and self._phase == "greeting":
                if attempt != llrp.CONNECTION_SUCCESS:
                    why = llrp.CONNECTION_STATUS_NAMES.get(attempt, f"status {attempt}")
                    self._drop(now, f"the reader refused the connection: {why}", "refused")
                    return
                self._configure(now)
            elif llrp.connection_closed(msg):
                self._drop(now, "the reader is closing the connection", "disconnects")
            return
        awaiting = self._awaiting
        if kind == llrp.ERROR_MESSAGE:
            self._count("reader_errors")
            status = llrp.decode_status(msg)
            text = f"reader error {status.code}: {status.description}" if status else "no status"
            self.last_error = text
            log.warning("reader %s: ERROR_MESSAGE (%s)", self.reader_id, text)
        if awaiting is None or msg.msg_id != awaiting[2]:
            return  # an answer nobody waits for (e.g. to STOP_ROSPEC), or other reader news
        if kind not in (awaiting[1], llrp.ERROR_MESSAGE):
            return
        status = llrp.decode_status(msg)
        if (status is None or not status.ok) and awaiting[3]:
            request = llrp.MESSAGE_NAMES[awaiting[0]]
            detail = "no LLRPStatus" if status is None else f"{status.code} {status.description}"
            self._drop(now, f"{request} rejected: {detail.strip()}", "config_rejected")
            return
        self._next_step(now)

    def _configure(self, now: float) -> None:
        rid, antennas, n_tags = self.rospec_id, self.antenna_ids, self.report_every_n_tags
        keepalive_ms = self.keepalive_ms
        self._steps = [
            (
                llrp.SET_READER_CONFIG,
                llrp.SET_READER_CONFIG_RESPONSE,
                lambda i: llrp.encode_set_reader_config(i, keepalive_ms),
                True,
            ),
            (
                llrp.DELETE_ROSPEC,
                llrp.DELETE_ROSPEC_RESPONSE,
                lambda i: llrp.encode_delete_rospec(i, 0),
                False,  # "nothing to delete" is an error on some readers
            ),
            (
                llrp.ADD_ROSPEC,
                llrp.ADD_ROSPEC_RESPONSE,
                lambda i: llrp.encode_add_rospec(i, rid, antennas, n_tags),
                True,
            ),
            (
                llrp.ENABLE_ROSPEC,
                llrp.ENABLE_ROSPEC_RESPONSE,
                lambda i: llrp.encode_enable_rospec(i, rid),
                True,
            ),
            (
                llrp.START_ROSPEC,
                llrp.START_ROSPEC_RESPONSE,
                lambda i: llrp.encode_start_rospec(i, rid),
                True,
            ),
        ]
        self._phase = "configuring"
        self._next_step(now)

    def _next_step(self, now: float) -> None:
        if self._steps:
            request, response, encode, must = self._steps.pop(0)
            msg_id = self._new_id()
            self._awaiting = (request, response, msg_id, must)
            self._deadline = now + self.connect_timeout_s
            self._send(encode(msg_id))
            return
        self._awaiting = None
        self._deadline = float("inf")
        self._phase = "running"
        self._state = "connected"
        self._connected_ts = now
        self._failed_attempts = 0
        self._backoff_s = BACKOFF_START_S
        self.last_error = None
        log.info("reader %s: inventory running on %s:%s", self.reader_id, self.host, self.port)

    def _check_timers(self, now: float) -> None:
        if self._phase != "running":
            if now > self._deadline:
                if self._phase == "greeting":
                    what = "greeting (READER_EVENT_NOTIFICATION)"
                elif self._awaiting is not None:
                    what = f"answer to {llrp.MESSAGE_NAMES[self._awaiting[0]]}"
                else:
                    what = "answer"
                self._drop(
                    now, f"no {what} within {self.connect_timeout_s:g} s", "response_timeout"
                )
            return
        last = max(self.parser.last_frame_ts or self._connected_ts, self._connected_ts)
        silent_s = now - last
        if silent_s > 3 * self.stale_after_s:
            self._drop(now, f"no message for {silent_s:.0f} s", "silent_reconnect")
        elif silent_s > self.stale_after_s:
            self._state = "stale"
        else:
            self._state = "connected"

    def _close_socket(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self._poller = None

    def _drop(self, now: float, why: str, what: str) -> None:
        """Close the connection: a loss while running, else a failed attempt; retry later."""
        was_running = self._phase == "running"
        self._close_socket()
        self.parser.reset()
        self._phase = "idle"
        self._awaiting = None
        self._steps = []
        self._out.clear()
        if was_running:
            log.warning("reader %s: %s; reconnecting", self.reader_id, why)
            self.last_error = why
            self._count(what)
            self._state = "reconnecting"
            self._schedule_reopen(now)
        else:
            self._attempt_failed(now, why, what)

    def _attempt_failed(self, now: float, why: str, what: str) -> None:
        self._failed_attempts += 1
        self._count(what)
        self.last_error = why
        if self._failed_attempts == FAILED_AFTER_ATTEMPTS:
            log.error("reader %s: cannot connect: %s", self.reader_id, why)
        if self._failed_attempts >= FAILED_AFTER_ATTEMPTS:
            self._state = "failed"
        elif self._state != "connecting":
            self._state = "reconnecting"
        self._schedule_reopen(now)

    def _schedule_reopen(self, now: float) -> None:
        self._next_open_ts = now + self._backoff_s
        self._backoff_s = min(BACKOFF_MAX_S, self._backoff_s * 2)


__all__ = ["LlrpReader"]
