"""MQTT sync against a real mosquitto: whatever happens to the broker or the network, what
central stores (deduplicated by msg_id) equals what the agent produced."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edge_agent import wire
from edge_agent.config import MqttConfig
from edge_agent.outbox import Outbox, stored_bytes
from edge_agent.sync import MqttSync, backoff_delay_s
from tests.edge_agent.helpers import Central, wait_caught_up, wait_until
from tests.edge_agent.tcp_proxy import TcpProxy
from tests.mosquitto import Mosquitto
from tests.pki import broker_tls_conf, client_tls, make_pki

pytestmark = pytest.mark.broker


def summary(n: int) -> wire.Summary:
    t = 1_800_000_000 + 60 * n
    return wire.Summary(
        store_id="store-1",
        device_id="dev-1",
        seq=1,
        interval_start=datetime.fromtimestamp(t, UTC),
        interval_end=datetime.fromtimestamp(t + 60, UTC),
        timezone="UTC",
        lines=[
            wire.LineCount.model_validate({"camera_id": "c", "line_id": "l", "in": n, "out": 1})
        ],
    )


def stock(n: int) -> wire.StockEventMsg:
    return wire.StockEventMsg(
        store_id="store-1",
        device_id="dev-1",
        seq=1,
        event_type="stock_out",
        ts=datetime.fromtimestamp(1_800_000_000 + n, UTC),
        zone="shelf",
        gtin="80614141123458",
        count=0,
    )


def mqtt_cfg(port: int, **extra: object) -> MqttConfig:
    return MqttConfig.model_validate(
        {
            "host": "127.0.0.1",
            "port": port,
            "keepalive_s": 5,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1.0,
            "max_inflight": 16,
            **extra,
        }
    )


class Producer:
    """Appends messages in the background, as the aggregator would, and remembers them."""

    def __init__(self, outbox: Outbox, sync: MqttSync) -> None:
        self.outbox = outbox
        self.sync = sync
        self.produced: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            batch = [summary(n + i) for i in range(4)] + [stock(n)]
            for m in self.outbox.append(batch):
                self.produced[m.msg_id] = m.seq
            self.sync.wake()
            n += 5
            time.sleep(0.03)

    def run_for(self, seconds: float) -> None:
        self._thread.start()
        time.sleep(seconds)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def check_delivery(central: Central, produced: dict[str, int], sync: MqttSync) -> None:
    assert sync.wait_drained(30.0), f"outbox not drained: {sync.stats()}"
    assert central.wait_for(len(produced), 15.0), (len(central.stored), len(produced))
    time.sleep(0.3)  # late duplicates would show up here
    assert set(central.stored) == set(produced), "central stored exactly what was produced"
    assert central.seqs() == sorted(produced.values())
    assert not central.rejected


def test_backoff_is_exponential_jittered_and_capped() -> None:
    import random

    rng = random.Random(1)
    delays = [backoff_delay_s(a, 1.0, 60.0, rng) for a in range(10)]
    for a, d in enumerate(delays):
        base = min(60.0, 2.0**a)
        assert base / 2 <= d <= base
    assert len({round(backoff_delay_s(3, 1.0, 60.0, rng), 6) for _ in range(20)}) > 10


def test_delivers_everything_with_retained_birth_and_will(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    central = Central(mosquitto.port).start()
    ob = Outbox(tmp_path / "o.db")
    sync = MqttSync(mqtt_cfg(mosquitto.port), "store-1", "dev-1", ob).start()
    produced = {m.msg_id: m.seq for m in ob.append([summary(i) for i in range(300)])}
    sync.wake()
    check_delivery(central, produced, sync)
    assert any(s.state == "online" for s in central.status)
    assert sync.stop(drain_timeout_s=2.0)
    ob.close()
    assert wait_until(lambda: central.status[-1].state == "offline")
    # The retained status is what a dashboard connecting later sees first.
    late = Central(mosquitto.port, client_id="late").start()
    deadline = time.monotonic() + 5
    while not late.status and time.monotonic() < deadline:
        time.sleep(0.05)
    assert late.status and late.status[0].state == "offline"
    late.stop()
    central.stop()


def test_broker_down_before_start_and_killed_mid_run(tmp_path: Path, mosquitto: Mosquitto) -> None:
    proxy = TcpProxy(mosquitto.port)
    central = Central(mosquitto.port).start()  # central's persistent session exists first
    time.sleep(1.2)  # mosquitto autosaves sessions every second
    mosquitto.stop()
    ob = Outbox(tmp_path / "o.db")
    sync = MqttSync(mqtt_cfg(proxy.port), "store-1", "dev-1", ob).start()
    producer = Producer(ob, sync)
    producer.run_for(1.0)  # broker down: everything waits in the outbox
    assert sync.stats().state != "connected" and ob.depth > 0
    mosquitto.start()
    time.sleep(1.5)
    # Cut the agent off with messages in flight, let central catch up with what the broker
    # acknowledged, then SIGKILL the broker.
    proxy.set_mode("drop")
    wait_caught_up(central, dict(producer.produced), ob)
    mosquitto.kill()
    time.sleep(0.5)
    mosquitto.start()
    proxy.set_mode("forward")
    time.sleep(1.0)
    producer.stop()
    check_delivery(central, producer.produced, sync)
    assert sync.stats().connects >= 2
    sync.stop(1.0)
    ob.close()
    proxy.close()
    central.stop()


def test_broker_restarted_with_a_lost_session(tmp_path: Path, mosquitto: Mosquitto) -> None:
    proxy = TcpProxy(mosquitto.port)
    central = Central(mosquitto.port).start()
    ob = Outbox(tmp_path / "o.db")
    sync = MqttSync(mqtt_cfg(proxy.port), "store-1", "dev-1", ob).start()
    producer = Producer(ob, sync)
    producer.run_for(1.0)
    assert sync.stats().session_present is False  # first connect ever
    # The broker loses every session. The proxy keeps the agent away until central has
    # subscribed again, so nothing is published to a broker with no subscriber.
    proxy.set_mode("drop")
    wait_caught_up(central, dict(producer.produced), ob)
    central.subscribed.clear()  # set again only by a SUBACK on the new broker
    mosquitto.restart(wipe_sessions=True)
    assert central.subscribed.wait(15), "central subscribed again on the wiped broker"
    proxy.set_mode("forward")
    time.sleep(1.5)
    producer.stop()
    check_delivery(central, producer.produced, sync)
    assert sync.stats().session_present is False  # the broker had forgotten us
    sync.stop(1.0)
    ob.close()
    proxy.close()
    central.stop()


def test_network_dropped_then_stalled(tmp_path: Path, mosquitto: Mosquitto) -> None:
    proxy = TcpProxy(mosquitto.port)
    central = Central(mosquitto.port).start()
    ob = Outbox(tmp_path / "o.db")
    sync = MqttSync(mqtt_cfg(proxy.port), "store-1", "dev-1", ob, connect_timeout_s=3.0).start()
    producer = Producer(ob, sync)
    producer.run_for(0.8)
    proxy.set_mode("drop")  # the cable is cut: connections reset, new ones refused
    time.sleep(1.5)
    proxy.set_mode("forward")
    time.sleep(1.0)
    proxy.set_mode("stall")  # packets go nowhere; only keepalive can notice
    deadline = time.monotonic() + 20
    while sync.connected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not sync.connected, "the stalled connection was detected"
    proxy.set_mode("forward")
    time.sleep(0.5)
    producer.stop()
    check_delivery(central, producer.produced, sync)
    assert sync.stats().disconnects >= 2
    sync.stop(1.0)
    ob.close()
    proxy.close()
    central.stop()


def test_disk_cap_drops_oldest_summaries_and_reports_it(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    central = Central(mosquitto.port).start()
    time.sleep(1.2)
    mosquitto.stop()
    cap = stored_bytes(summary(100)) * 20
    ob = Outbox(tmp_path / "o.db", max_bytes=cap)
    sync = MqttSync(mqtt_cfg(mosquitto.port), "store-1", "dev-1", ob).start()
    stocks = [m for i in range(3) for m in ob.append([stock(i)])]
    summaries = [m for i in range(60) for m in ob.append([summary(100 + i)])]
    st = ob.stats()
    dropped = st.dropped.get("cap_summary", 0)
    assert dropped > 0 and "cap_stock" not in st.dropped
    kept = stocks + summaries[dropped:]
    mosquitto.start()
    sync.wake()
    check_delivery(central, {m.msg_id: m.seq for m in kept}, sync)
    # The policy is visible on the wire: the status reports the drops.
    sync.publish_status(sync.status_fn("online"))
    assert wait_until(lambda: central.status[-1].outbox_dropped == dropped)
    sync.stop(1.0)
    ob.close()
    central.stop()


def test_mqtt_311_with_password_file(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    passwd = tmp_path / "passwd"
    passwd.write_text("agent:s3cret\n")
    import subprocess

    subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True)
    broker = Mosquitto(
        tmp_path / "b", extra_conf=["allow_anonymous false", f"password_file {passwd}"]
    )
    broker.start()
    try:
        ob = Outbox(tmp_path / "o.db")
        cfg = mqtt_cfg(broker.port, protocol="3.1.1", username="agent", password_file=str(pw))
        sync = MqttSync(cfg, "store-1", "dev-1", ob).start()
        got: list[bytes] = []
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        sub.username_pw_set("agent", "s3cret")
        sub.on_message = lambda c, u, m: got.append(bytes(m.payload))
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe("footfall/v1/+/+/summary", qos=1)
        sub.loop_start()
        time.sleep(0.3)
        ob.append([summary(1)])
        sync.wake()
        assert sync.wait_drained(10)
        time.sleep(0.2)
        assert len(got) == 1 and wire.decode(got[0]).kind == "summary"
        sync.stop(1.0)
        ob.close()
        sub.loop_stop()
        # A wrong password never connects and never marks anything sent.
        pw.write_text("wrong\n")
        ob = Outbox(tmp_path / "o2.db")
        sync = MqttSync(cfg, "store-1", "dev-2", ob).start()
        ob.append([summary(2)])
        time.sleep(1.5)
        assert not sync.connected and ob.depth == 1
        assert sync.stats().last_error is not None
        sync.stop(0.1)
        ob.close()
    finally:
        broker.stop()


def test_a_puback_with_a_failure_reason_is_not_a_delivery(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    # Summaries are refused (MQTT 5 PUBACK 0x87 Not authorized); status is allowed.
    acl.write_text("topic read footfall/v1/#\ntopic write footfall/v1/+/+/status\n")
    broker = Mosquitto(tmp_path / "b", extra_conf=[f"acl_file {acl}"]).start()
    try:
        ob = Outbox(tmp_path / "o.db")
        sync = MqttSync(mqtt_cfg(broker.port), "store-1", "dev-1", ob).start()
        central = Central(broker.port).start()
        produced = {m.msg_id: m.seq for m in ob.append([summary(1), summary(2)])}
        sync.wake()
        deadline = time.monotonic() + 10
        while sync.stats().rejected < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sync.stats().rejected >= 2 and sync.stats().acked == 0
        assert ob.depth == 2, "refused messages stay in the outbox"
        # The operator fixes the ACL; the held messages are retried and delivered.
        acl.write_text("topic readwrite footfall/v1/#\n")
        broker.restart()
        check_delivery(central, produced, sync)
        sync.stop(1.0)
        ob.close()
        central.stop()
    finally:
        broker.stop()


def test_mutual_tls(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    broker = Mosquitto(
        tmp_path / "b",
        extra_conf=broker_tls_conf(pki),
    ).start()
    try:
        tls = client_tls(pki)
        ob = Outbox(tmp_path / "o.db")
        sync = MqttSync(mqtt_cfg(broker.port, tls=tls), "store-1", "dev-1", ob).start()
        ob.append([summary(1), stock(1)])
        sync.wake()
        assert sync.wait_drained(15), sync.stats()  # PUBACKs came back over TLS
        sync.stop(1.0)
        ob.close()
        # Without a client certificate the broker refuses the handshake: nothing is lost.
        ob = Outbox(tmp_path / "o2.db")
        cfg = mqtt_cfg(broker.port, tls={"ca_file": str(pki / "ca.crt")})
        sync = MqttSync(cfg, "store-1", "dev-2", ob).start()
        ob.append([summary(2)])
        time.sleep(2.0)
        assert not sync.connected and ob.depth == 1
        sync.stop(0.1)
        ob.close()
    finally:
        broker.stop()


def test_the_window_follows_the_brokers_receive_maximum(tmp_path: Path) -> None:
    # mosquitto advertises max_inflight_messages as MQTT 5 Receive Maximum; exceeding it
    # would get the connection closed, and paho does not apply it by itself.
    broker = Mosquitto(tmp_path / "b", extra_conf=["max_inflight_messages 5"]).start()
    try:
        ob = Outbox(tmp_path / "o.db")
        sync = MqttSync(mqtt_cfg(broker.port, max_inflight=64), "store-1", "dev-1", ob).start()
        ob.append([summary(i) for i in range(200)])
        sync.wake()
        assert sync.wait_drained(20)
        st = sync.stats()
        assert st.window == 5 and st.disconnects == 0 and st.acked == 200
        sync.stop(0.5)
        ob.close()
    finally:
        broker.stop()


def test_a_status_puback_that_beats_its_registration_does_not_hijack_a_data_ack(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    # The supervisor thread publishes status while paho's network thread handles PUBACKs: if
    # the caller loses the CPU right after publish() returns, the PUBACK is handled before the
    # mid is registered. The sleep below makes that interleaving certain.
    ob = Outbox(tmp_path / "o.db")
    sync = MqttSync(mqtt_cfg(mosquitto.port), "store-1", "dev-1", ob).start()
    assert wait_until(lambda: sync.connected and sync.stats().status_inflight == 0)
    real_publish = sync._client.publish
    status_mids: list[int] = []

    def descheduled_after_publish(topic: str, *args: object, **kwargs: object) -> object:
        info = real_publish(topic, *args, **kwargs)  # type: ignore[arg-type]
        if topic == sync.status_topic:
            status_mids.append(info.mid)
            time.sleep(0.3)
        return info

    sync._client.publish = descheduled_after_publish  # type: ignore[method-assign, assignment]
    publisher = threading.Thread(
        target=lambda: [sync.publish_status(sync.status_fn("online")) for _ in range(3)]
    )
    publisher.start()
    publisher.join()
    assert wait_until(lambda: len(status_mids) >= 1)
    assert wait_until(lambda: sync.stats().status_inflight == 0), "status acks were matched"
    # paho's 16-bit mid wraps after 65535 publishes: the next data messages get the mids the
    # status messages had (set directly here rather than publishing 65535 messages).
    sync._client._last_mid = min(status_mids) - 1
    produced = {m.msg_id: m.seq for m in ob.append([summary(i) for i in range(5)])}
    sync.wake()
    assert sync.wait_drained(10), f"a data row stayed in flight: {sync.stats()}"
    assert sync.stats().acked == len(produced)
    sync.stop(1.0)
    ob.close()
