"""Central's MQTT subscriber: the packet codec, and the client against a real mosquitto
(MQTT 3.1.1 and 5, TLS with client certificates, passwords, keepalive, back-pressure)."""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from central.config import MqttConfig
from central.subscriber import (
    MAX_PACKET_BYTES,
    Delivery,
    MqttSubscriber,
    ProtocolError,
    connect_packet,
    puback_packets,
    split_packets,
    topic_matches,
)
from tests.central.waiting import wait_for
from tests.mosquitto import Mosquitto, free_port
from tests.pki import broker_tls_conf, client_tls, make_pki


# --- codec ------------------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    # The tests encode packets on their own, not with the client's code they check.
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish_packet(topic: str, payload: bytes, mid: int, v5: bool, props: bytes = b"") -> bytes:
    """A PUBLISH as a broker sends it (written from the spec, independently of the client)."""
    body = struct.pack("!H", len(topic.encode())) + topic.encode()
    if mid:
        body += struct.pack("!H", mid)
    if v5:
        body += _varint(len(props)) + props
    body += payload
    return bytes([0x30 | (0x02 if mid else 0)]) + _varint(len(body)) + body


messages = st.lists(
    st.tuples(
        st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40),
        st.binary(max_size=300),
        st.integers(0, 65535),
        # MQTT 5 properties a broker may attach: payload format, expiry, user property
        st.sampled_from([b"", b"\x01\x01", b"\x02\x00\x00\x0e\x10", b"\x26\x00\x01k\x00\x01v"]),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(msgs=messages, v5=st.booleans(), cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_split_packets_reassembles_publishes_cut_anywhere(
    msgs: list[tuple[str, bytes, int, bytes]], v5: bool, cuts: list[int]
) -> None:
    stream = b"".join(
        publish_packet(t, p, mid, v5, props if v5 else b"") for t, p, mid, props in msgs
    )
    stream += b"\xd0\x00"  # a PINGRESP at the end
    points = sorted({min(c, len(stream)) for c in cuts} | {len(stream)})
    buf = bytearray()
    got: list[tuple[str, bytes, int]] = []
    controls: list[tuple[int, bytes]] = []
    last = 0
    for point in points:  # the socket delivers the stream in arbitrary pieces
        buf += stream[last:point]
        last = point
        topics, payloads, mids, ctl = split_packets(buf, v5)
        got += zip(topics, payloads, mids, strict=True)
        controls += ctl
    assert got == [(t, p, mid) for t, p, mid, _ in msgs]
    assert controls == [(0xD0, b"")]
    assert buf == b""


def test_split_packets_rejects_what_a_qos1_subscriber_cannot_get() -> None:
    qos2 = bytearray(b"\x34\x07\x00\x01tx\x00\x01z")
    with pytest.raises(ProtocolError, match="QoS 2"):
        split_packets(qos2, v5=False)
    with pytest.raises(ProtocolError, match="4 bytes"):
        split_packets(bytearray(b"\x30\xff\xff\xff\xff\x01"), v5=False)
    # A topic length pointing past the packet's end is not read as a payload.
    with pytest.raises(ProtocolError, match="longer than the packet"):
        split_packets(bytearray(b"\x32\x04\x00\x09ab"), v5=False)


def test_connect_packet_fields() -> None:
    v5 = MqttConfig(client_id="c1", username="u", keepalive_s=30, session_expiry_s=3600,
                    receive_maximum=500)  # fmt: skip
    pkt = connect_packet(v5, "pw")
    assert pkt[0] == 0x10
    body = pkt[2:]
    assert body[:7] == b"\x00\x04MQTT\x05"
    assert body[7] == 0x80 | 0x40  # user name + password, clean start off (session kept)
    assert struct.unpack("!H", body[8:10])[0] == 30
    assert body[10:19] == b"\x0d\x11\x00\x00\x0e\x10\x21\x01\xf4"  # expiry 3600, receive max 500
    assert body[19] == 0x27 and struct.unpack("!I", body[20:24])[0] == MAX_PACKET_BYTES
    assert body[24:] == b"\x00\x02c1\x00\x01u\x00\x02pw"
    v3 = MqttConfig(client_id="c1", protocol="3.1.1", shared_subscription=False,
                    session_expiry_s=0)  # fmt: skip
    body = connect_packet(v3, None)[2:]
    assert body[6] == 4 and body[7] == 0x02  # 3.1.1, clean session (expiry 0 retires it)
    assert puback_packets([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("footfall/v1/#", "footfall/v1/s/d/summary", True),
        ("footfall/v1/#", "footfall/v1", True),  # '#' also matches the parent level
        ("footfall/v1/+/+/status", "footfall/v1/s/d/status", True),
        ("footfall/v1/+/+/status", "footfall/v1/s/d/summary", False),
        ("footfall/v1/+/+/status", "footfall/v1/s/status", False),
        ("footfall/v1/+/+/+", "footfall/v1/+/+/status", True),
        ("#", "$SYS/broker/uptime", False),  # '$' topics never match a wildcard first level
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/broker/uptime", True),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches
    assert mqtt.topic_matches_sub(topic_filter, topic) is matches  # the reference agrees


# --- against a real broker --------------------------------------------------------------------
class Collector:
    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.lock = threading.Lock()

    def __call__(self, d: Delivery) -> None:
        with self.lock:
            self.deliveries.append(d)

    @property
    def payloads(self) -> list[bytes]:
        with self.lock:
            return [p for d in self.deliveries for p in d.payloads]


def publish(port: int, n: int, topic: str = "footfall/v1/s/d/summary", **auth: str) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}",
                    protocol=mqtt.MQTTv5)  # fmt: skip
    if auth:
        c.username_pw_set(auth["username"], auth["password"])
    c.max_inflight_messages_set(1000)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish(topic, f"m{i}".encode(), qos=1) for i in range(n)]
    for info in infos:
        info.wait_for_publish(20)
    c.disconnect()
    c.loop_stop()


def cfg(port: int, **extra: object) -> MqttConfig:
    base: dict[str, object] = {"host": "127.0.0.1", "port": port, "client_id": "sub-1",
                               "reconnect_min_s": 0.2, "reconnect_max_s": 1.0}  # fmt: skip
    return MqttConfig.model_validate({**base, **extra})


@pytest.mark.broker
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_receives_acks_and_keeps_its_session(mosquitto: Mosquitto, protocol: str) -> None:
    got = Collector()
    c = cfg(mosquitto.port, protocol=protocol, shared_subscription=False)
    sub = MqttSubscriber(c, [("footfall/v1/#", 1)], got).start()
    try:
        wait_for(lambda: sub.connection == 1)
        time.sleep(0.2)  # the SUBACK
        publish(mosquitto.port, 500)
        wait_for(lambda: len(got.payloads) == 500)
        assert got.payloads == [f"m{i}".encode() for i in range(500)]
        # Many messages per socket read: that is what makes this client cheap.
        assert len(got.deliveries) < 500
        assert all(m > 0 for d in got.deliveries for m in d.mids)
        # Ack only the first 200, then leave: the broker keeps the other 300 for the session.
        mids = [m for d in got.deliveries for m in d.mids][:200]
        sub.ack(mids, sub.connection)
    finally:
        sub.stop()
    again = Collector()
    sub = MqttSubscriber(c, [("footfall/v1/#", 1)], again).start()
    try:
        wait_for(lambda: len(again.payloads) == 300)
        assert sorted(again.payloads) == sorted(f"m{i}".encode() for i in range(200, 500))
        assert all(d.connection == 1 for d in again.deliveries)
        # An ack for a connection that is gone is dropped, never sent on the new one.
        sub.ack([1, 2, 3], connection=0)
    finally:
        sub.stop()


@pytest.mark.broker
def test_keepalive_pings_keep_an_idle_connection(mosquitto: Mosquitto) -> None:
    got = Collector()
    # mosquitto drops a client that sends nothing for 1.5 x keepalive (7.5 s here).
    sub = MqttSubscriber(cfg(mosquitto.port, keepalive_s=5), [("footfall/v1/#", 1)], got).start()
    try:
        wait_for(lambda: sub.connection == 1)
        time.sleep(9)
        publish(mosquitto.port, 1)
        wait_for(lambda: len(got.payloads) == 1)
        assert sub.connection == 1, sub.last_error
    finally:
        sub.stop()


@pytest.mark.broker
def test_password_and_mutual_tls(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    passwd = tmp_path / "passwd"
    passwd.write_text("central:s3cret\nedge:e\n")
    subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True)
    plain_port = free_port()  # a second, plain listener for the publisher
    broker = Mosquitto(
        tmp_path / "b",
        extra_conf=[
            *broker_tls_conf(pki),
            "allow_anonymous false",
            f"password_file {passwd}",
            f"listener {plain_port} 127.0.0.1",
        ],
    ).start()
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    tls = client_tls(pki)
    try:
        got = Collector()
        c = cfg(broker.port, tls=tls, username="central", password_file=str(pw))
        sub = MqttSubscriber(c, [("footfall/v1/#", 1)], got).start()
        try:
            wait_for(lambda: sub.connection == 1, 30)
            time.sleep(0.2)
            publish(plain_port, 300, username="edge", password="e")
            wait_for(lambda: len(got.payloads) == 300)
            sub.ack([m for d in got.deliveries for m in d.mids], sub.connection)
        finally:
            sub.stop()
        # A wrong password: refused, reported, retried; never "connected".
        pw.write_text("wrong\n")
        sub = MqttSubscriber(c, [("footfall/v1/#", 1)], Collector()).start()
        try:
            wait_for(lambda: sub.last_error is not None)
            time.sleep(0.5)
            assert sub.connection == 0
            assert "refused" in (sub.last_error or ""), sub.last_error
        finally:
            sub.stop()
        # No client certificate: the TLS handshake fails; also reported, never connected.
        pw.write_text("s3cret\n")
        no_cert = cfg(broker.port, tls={"ca_file": str(pki / "ca.crt")}, username="central",
                      password_file=str(pw))  # fmt: skip
        sub = MqttSubscriber(no_cert, [("footfall/v1/#", 1)], Collector()).start()
        try:
            wait_for(lambda: sub.last_error is not None)
            assert sub.connection == 0
        finally:
            sub.stop()
    finally:
        broker.stop()


@pytest.mark.parametrize("v5", [True, False])
def test_a_refused_subscription_is_reported(v5: bool) -> None:
    # mosquitto 2.0 grants every well-formed filter (its ACLs act on delivery), so the SUBACK
    # a stricter broker sends is fed to the client directly.
    c = cfg(1883, **({} if v5 else {"protocol": "3.1.1", "shared_subscription": False}))
    sub = MqttSubscriber(c, [("$share/g/footfall/v1/#", 1), ("footfall/v1/+/+/status", 1)],
                         Collector())  # fmt: skip
    body = b"\x00\x01" + (b"\x00" if v5 else b"") + b"\x87\x01"
    sub._control(0x90, body)
    assert sub.last_error == "subscription $share/g/footfall/v1/# refused (0x87)"
    # A broker with a lower maximum QoS downgrades the subscription: at-least-once is gone.
    sub._control(0x90, b"\x00\x01" + (b"\x00" if v5 else b"") + b"\x01\x00")
    assert sub.last_error == "subscription footfall/v1/+/+/status granted QoS 0 only"


def test_malformed_properties_are_a_protocol_error_not_a_crash() -> None:
    # Anything but ProtocolError/OSError would end the network thread for good.
    cut_varint = bytearray(b"\x32\x06\x00\x01t\x00\x01\x80")  # property length runs off the end
    with pytest.raises(ProtocolError):
        split_packets(cut_varint, v5=True)
    sub = MqttSubscriber(cfg(1883), [("footfall/v1/#", 1)], Collector())
    with pytest.raises(ProtocolError):
        sub._control(0x90, b"\x00\x01\x03\x11\x00")  # a u32 property cut after one byte
    with pytest.raises(ProtocolError):
        sub._check_connack(b"\x00\x00\x02\x13")  # Server Keep Alive without its value


def test_a_pingresp_read_but_not_parsed_yet_is_no_timeout() -> None:
    # After on_delivery blocked (back-pressure) longer than the keepalive, the first read
    # after it brings the PINGRESP, which is parsed only on the next loop turn.
    sub = MqttSubscriber(cfg(1883), [("footfall/v1/#", 1)], Collector())
    a, b = socket.socketpair()
    try:
        now = time.monotonic()
        sub._last_sent = sub._ping_sent = now - 70
        sub._last_received = now
        sub._keepalive(a, 60.0)
        sub._last_received = now - 61
        with pytest.raises(ConnectionError, match="PINGRESP"):
            sub._keepalive(a, 60.0)
    finally:
        a.close()
        b.close()


class RecordingStop(threading.Event):
    """The subscriber's stop event, recording how long each reconnect waits."""

    def __init__(self) -> None:
        super().__init__()
        self.waits_s: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None:
            self.waits_s.append(timeout)
        return super().wait(timeout)


@pytest.mark.broker
def test_session_takeover_backs_off_instead_of_flapping(mosquitto: Mosquitto) -> None:
    # Two instances with one client_id (a misconfiguration, or an old process during a
    # restart) take the session from each other; each kicked instance must back off.
    c = cfg(mosquitto.port, shared_subscription=False, reconnect_min_s=0.2, reconnect_max_s=5.0)
    subs = [MqttSubscriber(c, [("footfall/v1/#", 1)], Collector()) for _ in range(2)]
    for sub in subs:
        sub._stop = RecordingStop()
    for sub in subs:
        sub.start()
    try:
        wait_for(lambda: all(len(s._stop.waits_s) >= 3 for s in subs), timeout_s=30)  # type: ignore[attr-defined]
    finally:
        for sub in subs:
            sub.stop()
    for sub in subs:
        waits = sub._stop.waits_s[:3]  # type: ignore[attr-defined]
        assert waits == sorted(waits) and waits[2] > c.reconnect_min_s, waits


@pytest.mark.broker
def test_mqtt5_broker_does_not_send_a_packet_bigger_than_ingest_accepts(
    mosquitto: Mosquitto,
) -> None:
    # Without a Maximum Packet Size in CONNECT one device's 2 MiB (or 256 MiB) message sits
    # whole in the subscriber's read buffer, then again as a payload.
    got = Collector()
    sub = MqttSubscriber(cfg(mosquitto.port, shared_subscription=False),
                         [("footfall/v1/#", 1)], got).start()  # fmt: skip
    try:
        wait_for(lambda: sub.connection == 1)
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pub-big", protocol=mqtt.MQTTv5)
        c.connect("127.0.0.1", mosquitto.port)
        c.loop_start()
        c.publish("footfall/v1/s/d/summary", b"x" * (2 << 20), qos=1).wait_for_publish(20)
        c.publish("footfall/v1/s/d/summary", b"small", qos=1).wait_for_publish(20)
        c.disconnect()
        c.loop_stop()
        wait_for(lambda: b"small" in got.payloads)
        assert got.payloads == [b"small"]
        assert sub.connection == 1, sub.last_error
    finally:
        sub.stop()


def test_a_peer_announcing_a_huge_first_packet_is_dropped_not_buffered() -> None:
    # A hostile or broken endpoint (mosquitto never does this): the subscriber must not wait
    # for, or buffer, 256 MiB before its CONNACK.
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)  # the CONNECT
            conn.sendall(b"\x20\xff\xff\xff\x7f")  # "CONNACK" of 268,435,455 bytes
            time.sleep(2)

    threading.Thread(target=serve, daemon=True).start()
    sub = MqttSubscriber(cfg(port), [("footfall/v1/#", 1)], Collector()).start()
    try:
        wait_for(lambda: sub.protocol_errors >= 1, 10)
        assert "not a CONNACK" in (sub.last_error or "")
        assert sub.connection == 0
    finally:
        sub.stop()
        server.close()


def test_an_unexpected_error_reconnects_instead_of_ending_the_thread(
    mosquitto: Mosquitto,
) -> None:
    calls = []

    def flaky(d: Delivery) -> None:
        calls.append(d)
        if len(calls) == 1:
            raise RuntimeError("a bug in the consumer")

    sub = MqttSubscriber(cfg(mosquitto.port), [("footfall/v1/#", 1)], flaky).start()
    try:
        wait_for(lambda: sub.connection == 1)
        time.sleep(0.2)
        publish(mosquitto.port, 1)
        # The first delivery raised: the connection was dropped and the message, never
        # acknowledged, comes again on the next one.
        wait_for(lambda: len(calls) >= 2)
        assert sub.connection == 2 and sub.protocol_errors == 1
        assert "RuntimeError" in (sub.last_error or "")
        assert calls[-1].payloads == [b"m0"]
    finally:
        sub.stop()
