"""The MQTT client of central ingest: a subscriber that receives in bulk and acknowledges late.

Why not paho here (the edge agent uses paho): profiled on a 2-core VM, paho's per-message path
(a read per header byte, a properties object and a message object per PUBLISH, a callback per
message, a locked queue put, an ack queued and written one by one) took about 60 us of the
GIL per message on a quiet machine and 120 us on a busy one, more than decoding and storing
the summary together; it alone capped one ingest process near 5,000 messages/s. Ingest needs
a small, fixed part of MQTT: CONNECT, SUBSCRIBE, receive PUBLISH at QoS 0/1, PUBACK after the
commit, PINGREQ, DISCONNECT. This client reads whatever the socket holds (up to 256 KiB),
parses every complete packet in one loop, hands the messages over as one list, and sends the
PUBACKs of a committed batch in one write.

Protocol notes (MQTT 3.1.1 and 5.0):
- Subscriptions are at QoS 1, so the broker never sends QoS 2; a QoS 2 PUBLISH is a protocol
  error and ends the connection. Topic aliases are never used by the broker because CONNECT
  does not offer a Topic Alias Maximum.
- A PUBACK without a reason code means success in MQTT 5 too, so both versions send 4 bytes.
- A mid is only valid on the connection that delivered it: acks carry the connection number
  and acks for an older connection are dropped (the broker redelivers those messages after a
  reconnect, and ingest's dedupe absorbs them).
- The server may impose its own keepalive (MQTT 5 CONNACK property 0x13); it is honoured.

Threading: one network thread owns the socket (reads, writes, pings, reconnects), so a TLS
socket is never used by two threads at once. Other threads queue PUBACKs with `ack()`, which
wakes the network thread through a socket pair.
"""

from __future__ import annotations

import contextlib
import logging
import random
import selectors
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from central.config import MqttConfig
from edge_agent.wire import MAX_PAYLOAD_BYTES

log = logging.getLogger("central.subscriber")

_READ_BYTES = 256 * 1024
_CONNECT_TIMEOUT_S = 10.0
_LINGER_S = 2.0
_CONNACK_MAX_BYTES = 64 * 1024
# A connection that ends sooner (session taken over by another instance with our client id,
# a broker that accepts and then drops us) does not reset the reconnect backoff.
_STABLE_S = 10.0
# Offered to an MQTT 5 broker, which then drops bigger messages instead of sending them
# (they would be rejected by the decoder anyway): the largest payload plus room for the
# topic and properties. MQTT 3.1.1 has no such limit.
MAX_PACKET_BYTES = MAX_PAYLOAD_BYTES + 64 * 1024

# Fixed-header packet types.
_CONNACK, _PUBLISH, _PUBACK, _PUBREL = 2, 3, 4, 6
_SUBACK, _UNSUBACK, _PINGRESP, _DISCONNECT, _AUTH = 9, 11, 13, 14, 15

# MQTT 5 property identifiers and the width of their values (see _skip_properties).
_BYTE_PROPS = frozenset({0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A})
_U16_PROPS = frozenset({0x13, 0x21, 0x22, 0x23})
_U32_PROPS = frozenset({0x02, 0x11, 0x18, 0x27})
_VARINT_PROPS = frozenset({0x0B})
_STRING_PROPS = frozenset({0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F})
_PAIR_PROPS = frozenset({0x26})
_SERVER_KEEP_ALIVE = 0x13
_REASON_STRING = 0x1F

_CONNACK_V3 = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


class ProtocolError(Exception):
    """The broker sent something this client cannot accept; the connection is dropped."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """Messages parsed from one read of the socket, in arrival order."""

    topics: list[str]
    payloads: list[bytes]
    mids: list[int]  # 0 for QoS 0
    received_ts: float
    connection: int


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        digit, value = value % 128, value // 128
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def packet(first_byte: int, body: bytes) -> bytes:
    """A control packet: its first byte, the remaining length, the body."""
    return bytes([first_byte]) + _varint(len(body)) + body


def _read_varint(buf: bytes | bytearray, pos: int) -> tuple[int, int]:
    """(value, position after it); raises IndexError when the buffer ends inside it."""
    value, shift = 0, 0
    while True:
        digit = buf[pos]
        pos += 1
        value |= (digit & 0x7F) << shift
        if digit < 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise ProtocolError("variable byte integer longer than 4 bytes")


def _properties(buf: bytes, pos: int) -> tuple[dict[int, object], int]:
    """MQTT 5 properties at `pos`: ({id: value}, position after them). Repeated ids (user
    properties) keep the last value: only single-valued ones are looked at."""
    # A truncated body must end the connection, not the network thread.
    try:
        return _properties_unchecked(buf, pos)
    except (IndexError, struct.error):
        raise ProtocolError("MQTT 5 properties cut short") from None


def _properties_unchecked(buf: bytes, pos: int) -> tuple[dict[int, object], int]:
    length, pos = _read_varint(buf, pos)
    end = pos + length
    out: dict[int, object] = {}
    while pos < end:
        pid, pos = _read_varint(buf, pos)
        if pid in _BYTE_PROPS:
            out[pid] = buf[pos]
            pos += 1
        elif pid in _U16_PROPS:
            out[pid] = struct.unpack_from("!H", buf, pos)[0]
            pos += 2
        elif pid in _U32_PROPS:
            out[pid] = struct.unpack_from("!I", buf, pos)[0]
            pos += 4
        elif pid in _VARINT_PROPS:
            out[pid], pos = _read_varint(buf, pos)
        elif pid in _STRING_PROPS:
            n = struct.unpack_from("!H", buf, pos)[0]
            out[pid] = bytes(buf[pos + 2 : pos + 2 + n]).decode("utf-8", "replace")
            pos += 2 + n
        elif pid in _PAIR_PROPS:
            for _ in range(2):
                n = struct.unpack_from("!H", buf, pos)[0]
                pos += 2 + n
        else:
            raise ProtocolError(f"unknown MQTT 5 property 0x{pid:02x}")
    if pos != end:
        raise ProtocolError("MQTT 5 properties overrun their length")
    return out, end


def connect_packet(cfg: MqttConfig, password: str | None) -> bytes:
    v5 = cfg.protocol == "5"
    # MQTT 5 keeps the session through `session_expiry_s`; 3.1.1 has only clean_session, and
    # an expiry of 0 (retire an instance) is its clean session.
    clean = False if v5 else cfg.session_expiry_s == 0
    flags = (0x02 if clean else 0) | (0x80 if cfg.username else 0)
    if cfg.username and password is not None:
        flags |= 0x40
    body = bytearray(_string("MQTT"))
    body.append(5 if v5 else 4)
    body.append(flags)
    body += struct.pack("!H", cfg.keepalive_s)
    if v5:
        props = b"\x11" + struct.pack("!I", cfg.session_expiry_s)
        props += b"\x21" + struct.pack("!H", cfg.receive_maximum)
        props += b"\x27" + struct.pack("!I", MAX_PACKET_BYTES)
        body += _varint(len(props)) + props
    body += _string(cfg.client_id)
    if cfg.username:
        body += _string(cfg.username)
        if password is not None:
            body += _string(password)
    return packet(0x10, bytes(body))


def subscribe_packet(mid: int, filters: Sequence[tuple[str, int]], v5: bool) -> bytes:
    body = bytearray(struct.pack("!H", mid))
    if v5:
        body.append(0)  # no properties
    for topic, qos in filters:
        body += _string(topic)
        body.append(qos)
    return packet(0x82, bytes(body))


def puback_packets(mids: Sequence[int]) -> bytes:
    return b"".join(b"\x40\x02" + m.to_bytes(2, "big") for m in mids)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic-filter matching ('+' one level, '#' the rest, '$' topics only literally)."""
    if topic.startswith("$") and not topic_filter.startswith("$"):
        return False
    f_parts, t_parts = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(f_parts):
        if part == "#":
            return True
        if i >= len(t_parts) or (part != "+" and part != t_parts[i]):
            return False
    return len(f_parts) == len(t_parts)


def split_packets(
    buf: bytearray, v5: bool
) -> tuple[list[str], list[bytes], list[int], list[tuple[int, bytes]]]:
    """Remove every complete packet from the front of `buf`: PUBLISHes as (topics, payloads,
    mids: 0 for QoS 0) and the other packets as (first byte, body). An incomplete packet stays
    in `buf` for the next read. Raises ProtocolError on what a QoS 1 subscriber cannot get."""
    topics: list[str] = []
    payloads: list[bytes] = []
    mids: list[int] = []
    controls: list[tuple[int, bytes]] = []
    pos, n = 0, len(buf)
    while pos + 1 < n:
        first = buf[pos]
        # The remaining length, inlined: this loop runs once per message.
        length, shift, i, complete = 0, 0, pos + 1, False
        while i < n:
            digit = buf[i]
            i += 1
            length |= (digit & 0x7F) << shift
            if digit < 0x80:
                complete = True
                break
            shift += 7
            if shift > 21:
                raise ProtocolError("remaining length longer than 4 bytes")
        if not complete:
            break
        end = i + length
        if end > n:
            break
        if first >> 4 == _PUBLISH:
            qos = (first >> 1) & 3
            if length < 2:
                raise ProtocolError("PUBLISH header longer than the packet")
            tlen = (buf[i] << 8) | buf[i + 1]
            j = i + 2 + tlen
            if j + (2 if qos else 0) + (1 if v5 else 0) > end:
                raise ProtocolError("PUBLISH header longer than the packet")
            topics.append(buf[i + 2 : j].decode("utf-8", "replace"))
            if qos == 1:
                mids.append((buf[j] << 8) | buf[j + 1])
                j += 2
            elif qos == 0:
                mids.append(0)
            else:
                raise ProtocolError("QoS 2 PUBLISH on a QoS 1 subscription")
            if v5:
                try:
                    plen, j = _read_varint(buf, j)
                except IndexError:
                    raise ProtocolError("PUBLISH properties cut short") from None
                j += plen
            if j > end:
                raise ProtocolError("PUBLISH header longer than the packet")
            payloads.append(bytes(buf[j:end]))
        else:
            controls.append((first, bytes(buf[i:end])))
        pos = end
    if pos:
        del buf[:pos]
    return topics, payloads, mids, controls


class MqttSubscriber:
    """Connects, subscribes, hands received messages to `on_delivery` on the network thread,
    and reconnects with exponential backoff until `stop()`.

    Back-pressure: while `accepting()` is false the socket is not read and the broker holds
    the rest (at most its in-flight window is unacknowledged); PINGREQs and PUBACKs still go
    out, so a long pause (a database outage) does not cost the connection. Call `resume()`
    when `accepting()` turns true. `on_delivery` should not block: while it does, nothing
    is sent, not even pings."""

    def __init__(
        self,
        cfg: MqttConfig,
        filters: Sequence[tuple[str, int]],
        on_delivery: Callable[[Delivery], None],
        *,
        on_connect: Callable[[int], None] | None = None,
        on_disconnect: Callable[[str], None] | None = None,
        accepting: Callable[[], bool] | None = None,
    ) -> None:
        self.cfg = cfg
        self.filters = list(filters)
        self._on_delivery = on_delivery
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._accepting = accepting
        self.v5 = cfg.protocol == "5"
        self.connection = 0  # successful connections so far; tags deliveries and acks
        self.protocol_errors = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._out_lock = threading.Lock()
        self._out = bytearray()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="central-mqtt", daemon=True)
        self._sock: socket.socket | None = None

    # --- API for other threads ----------------------------------------------------------------
    def start(self) -> MqttSubscriber:
        self._thread.start()
        return self

    def ack(self, mids: Sequence[int], connection: int) -> None:
        """Queue PUBACKs for `mids`, delivered on `connection` (stale ones are dropped)."""
        mids = [m for m in mids if m]
        if not mids or connection != self.connection:
            return
        data = puback_packets(mids)
        with self._out_lock:
            if connection != self.connection:
                return
            self._out += data
        self._wake()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (acks), DISCONNECT, and end the network thread."""
        self._stop.set()
        self._wake()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            # Still sending or lingering: it uses the wake pair until it ends (a daemon
            # thread, so it cannot keep the process alive).
            log.warning("the MQTT thread did not stop within %.1fs", timeout_s)
            return
        self._wake_r.close()
        self._wake_w.close()

    def resume(self) -> None:
        """The consumer accepts deliveries again (see `accepting`): read the socket."""
        self._wake()

    def _wake(self) -> None:
        # OSError: the pair is full (a wake is already pending) or closed (stopping).
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    # --- network thread -----------------------------------------------------------------------
    def _run(self) -> None:
        delay_s = self.cfg.reconnect_min_s
        while not self._stop.is_set():
            connected = False
            connected_at = 0.0
            try:
                sock = self._open()
                connected = True
                connected_at = time.monotonic()
                self._session(sock)
            except (OSError, ssl.SSLError, ProtocolError, ConnectionError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, ProtocolError):
                    self.protocol_errors += 1
                self.last_error = reason
                if not self._stop.is_set():
                    if connected:
                        log.warning("connection to the broker lost (%s); reconnecting", reason)
                    else:
                        log.error(
                            "cannot connect to %s:%s (%s); retrying in %.1fs",
                            self.cfg.host,
                            self.cfg.port,
                            reason,
                            delay_s,
                        )
            except Exception as exc:
                # A bug or a malformed packet nothing above anticipated must not end the
                # thread: ingest would silently stop receiving. Drop the connection, log it
                # with its traceback, reconnect.
                self.protocol_errors += 1
                self.last_error = f"unexpected {type(exc).__name__}: {exc}"
                log.exception("MQTT connection failed unexpectedly; reconnecting")
            finally:
                self._close()
                if connected and self._on_disconnect is not None:
                    self._on_disconnect(self.last_error or "disconnected")
            if self._stop.is_set():
                break
            if connected and time.monotonic() - connected_at >= _STABLE_S:
                # A broken connection is retried at once, with a little jitter so a fleet of
                # instances does not reconnect in lockstep.
                delay_s = self.cfg.reconnect_min_s
                self._stop.wait(random.uniform(0, min(1.0, self.cfg.reconnect_min_s)))
            else:
                self._stop.wait(delay_s * random.uniform(0.8, 1.0))
                delay_s = min(delay_s * 2, self.cfg.reconnect_max_s)

    def _open(self) -> socket.socket:
        cfg = self.cfg
        raw = socket.create_connection((cfg.host, cfg.port), timeout=_CONNECT_TIMEOUT_S)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock: socket.socket = raw
        if cfg.tls is not None:
            ctx = ssl.create_default_context(
                cafile=str(cfg.tls.ca_file) if cfg.tls.ca_file else None
            )
            if cfg.tls.cert_file is not None and cfg.tls.key_file is not None:
                ctx.load_cert_chain(str(cfg.tls.cert_file), str(cfg.tls.key_file))
            try:
                sock = ctx.wrap_socket(raw, server_hostname=cfg.host)
            except BaseException:
                raw.close()
                raise
        self._sock = sock
        sock.sendall(connect_packet(cfg, cfg.password()))
        self._keepalive_s = float(cfg.keepalive_s)
        buf = bytearray()
        while True:  # CONNACK is the first packet the broker may send
            packet = self._one_packet(sock, buf)
            if packet is not None:
                break
        first, body = packet
        if first >> 4 != _CONNACK:
            raise ProtocolError(f"expected CONNACK, got packet type {first >> 4}")
        self._check_connack(body)
        sock.settimeout(None)
        sock.setblocking(False)
        with self._out_lock:
            self._out.clear()  # acks of an older connection are meaningless now
            self.connection += 1
        self._buf = buf  # the broker may already have sent more after the CONNACK
        return sock

    def _one_packet(self, sock: socket.socket, buf: bytearray) -> tuple[int, bytes] | None:
        """Blocking read of one whole packet (used only before the session starts)."""
        while True:
            try:
                length, start = _read_varint(buf, 1)
                if length > _CONNACK_MAX_BYTES:
                    # A CONNACK is a few bytes and properties; do not buffer what a broken
                    # or hostile peer says is coming.
                    raise ProtocolError(f"first packet of {length} bytes is not a CONNACK")
                if len(buf) >= start + length:
                    first, body = buf[0], bytes(buf[start : start + length])
                    del buf[: start + length]
                    return first, body
            except IndexError:
                pass
            chunk = sock.recv(_READ_BYTES)
            if not chunk:
                raise ConnectionError("the broker closed the connection during CONNECT")
            buf += chunk

    def _check_connack(self, body: bytes) -> None:
        if len(body) < 2:
            raise ProtocolError("CONNACK too short")
        code = body[1]
        if self.v5:
            props, _ = _properties(body, 2) if len(body) > 2 else ({}, 2)
            if code >= 0x80:
                why = props.get(_REASON_STRING)
                raise ConnectionError(
                    f"broker refused the connection: reason 0x{code:02x}"
                    + (f" ({why})" if why else "")
                )
            server_keepalive = props.get(_SERVER_KEEP_ALIVE)
            if isinstance(server_keepalive, int):
                self._keepalive_s = float(server_keepalive)
        elif code != 0:
            why = _CONNACK_V3.get(code, f"return code {code}")
            raise ConnectionError(f"broker refused the connection: {why}")

    def _session(self, sock: socket.socket) -> None:
        v5 = self.v5
        sel = selectors.DefaultSelector()
        sel.register(sock, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        now = time.monotonic()
        self._last_sent = self._last_received = now
        self._ping_sent: float | None = None
        self._send(sock, subscribe_packet(1, self.filters, v5))
        if self._on_connect is not None:
            self._on_connect(self.connection)
        buf = self._buf
        recv = sock.recv
        keepalive_s = self._keepalive_s
        reading = True
        try:
            while True:
                paused = self._accepting is not None and not self._accepting()
                if paused == reading:  # (un)register the socket for reading
                    if paused:
                        sel.unregister(sock)
                    else:
                        sel.register(sock, selectors.EVENT_READ)
                    reading = not paused
                if buf and not paused:
                    self._parse(buf)
                # Bytes TLS already decrypted are invisible to select().
                pending = not paused and isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
                timeout = 0.0 if pending else self._timeout(keepalive_s)
                events = sel.select(timeout)
                if self._stop.is_set():
                    self._flush(sock)
                    self._send(sock, b"\xe0\x00")  # DISCONNECT, normal; session kept
                    self._linger(sock)
                    return
                for key, _ in events:
                    if key.fileobj is self._wake_r:
                        try:
                            while self._wake_r.recv(4096):
                                pass
                        except BlockingIOError:
                            pass
                self._flush(sock)
                if pending or any(key.fileobj is sock for key, _ in events):
                    try:
                        chunk = recv(_READ_BYTES)
                    except (BlockingIOError, ssl.SSLWantReadError):
                        chunk = None
                    if chunk is not None:
                        if not chunk:
                            raise ConnectionError("the broker closed the connection")
                        buf += chunk
                        self._last_received = time.monotonic()
                self._keepalive(sock, keepalive_s, paused)
        finally:
            sel.close()

    def _linger(self, sock: socket.socket) -> None:
        """Wait until the broker closes: closing first could reset the connection and drop
        the last PUBACKs still unread in the broker's socket buffer (seen: a reconnect right
        after a stop got 20-100 acknowledged messages again)."""
        deadline = time.monotonic() + _LINGER_S
        sock.setblocking(True)
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                if not sock.recv(_READ_BYTES):
                    return
            except (TimeoutError, OSError):
                return

    def _timeout(self, keepalive_s: float) -> float:
        if keepalive_s <= 0:
            return 1.0
        return max(0.05, min(1.0, self._last_sent + keepalive_s - time.monotonic()))

    def _keepalive(self, sock: socket.socket, keepalive_s: float, paused: bool = False) -> None:
        if keepalive_s <= 0:
            return
        now = time.monotonic()
        if paused:
            # Not reading, so a PINGRESP cannot be seen: keep pinging so the broker keeps
            # us, and judge the broker again once reading resumes.
            if now - self._last_sent >= keepalive_s:
                self._send(sock, b"\xc0\x00")  # PINGREQ
                self._ping_sent = None
            return
        # Bytes received after the PINGREQ count as an answer: after on_delivery blocked
        # (back-pressure), the PINGRESP may have been read but not parsed yet.
        if (
            self._ping_sent is not None
            and now - max(self._ping_sent, self._last_received) > keepalive_s
        ):
            raise ConnectionError(f"no PINGRESP within {keepalive_s:.0f}s")
        if now - self._last_sent >= keepalive_s and self._ping_sent is None:
            self._send(sock, b"\xc0\x00")  # PINGREQ
            self._ping_sent = now

    def _send(self, sock: socket.socket, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + max(10.0, self.cfg.keepalive_s)
        while view:
            try:
                n = sock.send(view)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                if time.monotonic() > deadline:
                    raise ConnectionError("the broker stopped reading") from None
                # The socket buffer is full; the broker drains it within milliseconds.
                time.sleep(0.001)
                continue
            view = view[n:]
        self._last_sent = time.monotonic()

    def _flush(self, sock: socket.socket) -> None:
        with self._out_lock:
            if not self._out:
                return
            data = bytes(self._out)
            self._out.clear()
        self._send(sock, data)

    def _parse(self, buf: bytearray) -> None:
        """Consume every complete packet in `buf`; PUBLISHes go out as one Delivery."""
        topics, payloads, mids, controls = split_packets(buf, self.v5)
        for first, body in controls:
            self._control(first, body)
        if topics:
            self._on_delivery(Delivery(topics, payloads, mids, time.time(), self.connection))

    def _control(self, first: int, body: bytes) -> None:
        kind = first >> 4
        if kind == _PINGRESP:
            self._ping_sent = None
        elif kind == _SUBACK:
            codes = body[2:]
            if self.v5:
                _, pos = _properties(body, 2)
                codes = body[pos:]
            for (topic, qos), code in zip(self.filters, codes, strict=False):
                if code >= 0x80:
                    log.error("the broker refused the subscription %s (0x%02x)", topic, code)
                    self.last_error = f"subscription {topic} refused (0x{code:02x})"
                elif code < qos:
                    # QoS 0 is never acknowledged, so a crash loses what was not yet stored.
                    log.error("the broker granted %s only QoS %d", topic, code)
                    self.last_error = f"subscription {topic} granted QoS {code} only"
        elif kind == _DISCONNECT:
            code = body[0] if body else 0
            raise ConnectionError(f"the broker disconnected us (reason 0x{code:02x})")
        elif kind in (_PUBACK, _PUBREL, _UNSUBACK, _AUTH, _CONNACK):
            raise ProtocolError(f"unexpected packet type {kind} from the broker")
        else:
            raise ProtocolError(f"unknown packet type {kind}")

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


__all__ = [
    "MAX_PACKET_BYTES",
    "Delivery",
    "MqttSubscriber",
    "ProtocolError",
    "connect_packet",
    "packet",
    "puback_packets",
    "split_packets",
    "subscribe_packet",
    "topic_matches",
]
