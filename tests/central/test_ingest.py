"""Ingest through a real mosquitto into both storage backends."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central.config import CentralConfig, IngestConfig, MqttConfig, StorageConfig
from central.ingest import Ingest
from central.storage import open_storage
from central.subscriber import Delivery
from edge_agent import wire
from tests.central.factory import summary
from tests.central.waiting import wait_for

pytestmark = pytest.mark.broker
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


class Publisher:
    def __init__(self, port: int, protocol: int = mqtt.MQTTv5) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"edge-{uuid.uuid4().hex[:8]}",
            protocol=protocol,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1, retain=retain)

    def msg(
        self, m: wire.Summary | wire.StockEventMsg | wire.Status | wire.PosTransaction
    ) -> mqtt.MQTTMessageInfo:
        return self.send(
            wire.topic_for(m.store_id, m.device_id, m.kind),
            wire.encode(m),
            retain=isinstance(m, wire.Status),
        )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture()
def publisher(mosquitto) -> Iterator[Publisher]:  # type: ignore[no-untyped-def]
    p = Publisher(mosquitto.port)
    yield p
    p.close()


def make_cfg(port: int, url: str, client_id: str) -> CentralConfig:
    return CentralConfig(
        mqtt=MqttConfig(host="127.0.0.1", port=port, client_id=client_id, group="g1"),
        storage=StorageConfig(url=url),
        ingest=IngestConfig(batch_max_wait_s=0.05, dead_letter_max_payload_bytes=1024),
    )


@pytest.fixture()
def ingest(mosquitto, storage_url: str) -> Iterator[Ingest]:  # type: ignore[no-untyped-def]
    ing = Ingest(make_cfg(mosquitto.port, storage_url, "central-a")).start()
    assert ing.connected.wait(10)
    time.sleep(0.2)  # let the SUBACK land before the test publishes
    yield ing
    ing.stop()


def test_duplicates_dropped_and_seq_gaps_found(ingest: Ingest, publisher: Publisher) -> None:
    msgs = [summary(s, T0 + timedelta(minutes=s), lines={"cam/door": (2, 1)}) for s in (1, 2, 3)]
    msgs += [summary(7, T0 + timedelta(minutes=7), lines={"cam/door": (2, 1)})]
    for m in msgs + [msgs[1], msgs[1]]:
        publisher.msg(m).wait_for_publish(5)
    wait_for(lambda: ingest.stats.received == 6)
    st = open_storage(ingest.cfg.storage.url)
    assert st.message_count("summary") == 4
    assert st.counters()["duplicates"] == 2
    assert ingest.stats.duplicates == 2
    assert [(g.after_seq, g.before_seq, g.missing) for g in st.seq_gaps("s1")] == [(3, 7, 3)]
    assert ingest.stats.seq_gaps == 3
    hours = st.footfall_hours("s1", T0, T0 + timedelta(hours=1))
    assert [(h.in_count, h.out_count) for h in hours] == [(8, 4)]
    st.close()


def test_hostile_payloads_dead_lettered_while_good_ones_flow(
    ingest: Ingest, publisher: Publisher
) -> None:
    good = [summary(s, T0 + timedelta(minutes=s), lines={"cam/door": (1, 0)}) for s in range(1, 9)]
    base = json.loads(wire.encode(good[0]))
    topic = "footfall/v1/s1/d1/summary"
    bad: list[tuple[str, bytes, str]] = [
        (topic, b"{not json", "Invalid JSON"),
        (topic, json.dumps({**base, "schema": "footfall.v0"}).encode(), "schema"),
        (topic, json.dumps({**base, "seq": "seven"}).encode(), "seq"),
        (topic, json.dumps({**base, "lines": [{"camera_id": "c"}]}).encode(), "lines"),
        (topic, b'{"a": "\xff\xfe"}', "not UTF-8"),
        (topic, b"x" * (wire.MAX_PAYLOAD_BYTES + 10), "exceeds"),
        ("footfall/v1/other-store/d1/summary", wire.encode(good[0]), "does not match"),
        ("footfall/v1/s1/d9/summary", wire.encode(good[0]), "does not match"),
        ("footfall/v1/s1/d1/stock", wire.encode(good[0]), "does not match"),
        ("footfall/v1/s1/d1/bogus", wire.encode(good[0]), "unknown kind"),
        ("footfall/v1/s1", b"{}", "is not footfall/v1"),
        (topic, json.dumps({**base, "timezone": "Mars/Olympus"}).encode(), "timezone"),
        (topic, json.dumps({**base, "device_id": "d1\u0000"}).encode(), "NUL"),
        (topic, json.dumps({**base, "extra_field": 1}).encode(), "extra_field"),
    ]
    for i, m in enumerate(good):
        publisher.msg(m)
        t, p, _ = bad[i % len(bad)]
        publisher.send(t, p)
    for t, p, _ in bad[len(good) :]:
        publisher.send(t, p)
    wait_for(lambda: ingest.stats.received == len(good) + len(bad))
    st = open_storage(ingest.cfg.storage.url)
    assert st.message_count("summary") == len(good)
    letters = st.dead_letters(limit=100)
    assert len(letters) == len(bad)
    # Raw bytes are kept, capped at 1024, with the full size.
    by_raw = {(d.topic, d.payload, d.payload_size): d for d in letters}
    for t, p, expected in bad:
        d = by_raw[(t, p[:1024], len(p))]
        assert expected in d.reason, (expected, d.reason)
    assert st.counters()["dead_letters"] == len(bad)
    st.close()


def test_retained_status_drives_the_fleet_view(mosquitto, storage_url: str) -> None:  # type: ignore[no-untyped-def]
    pub = Publisher(mosquitto.port)
    online = wire.Status(store_id="s1", device_id="d1", seq=1, state="online", version="1.2")
    pub.msg(online).wait_for_publish(5)
    pub.msg(wire.Status(store_id="s1", device_id="d2", seq=1, state="offline")).wait_for_publish(5)
    # Central starts after the statuses were published: it learns them from the retained copies.
    ing = Ingest(make_cfg(mosquitto.port, storage_url, "central-late")).start()
    st = open_storage(storage_url)  # our own connection: storage objects are per thread

    def states() -> dict[str, str | None]:
        return {d.device_id: d.state for d in st.devices("s1")}

    try:
        wait_for(lambda: len(states()) == 2)
        assert states() == {"d1": "online", "d2": "offline"}
        pub.msg(wire.Status(store_id="s1", device_id="d1", seq=2, state="offline"))
        wait_for(lambda: states()["d1"] == "offline")
    finally:
        st.close()
        ing.stop()
        pub.close()


def test_two_instances_share_a_burst_without_loss_or_duplicates(
    mosquitto,
    storage_url: str,  # type: ignore[no-untyped-def]
) -> None:
    a = Ingest(make_cfg(mosquitto.port, storage_url, "central-a")).start()
    b = Ingest(make_cfg(mosquitto.port, storage_url, "central-b")).start()
    assert a.connected.wait(10) and b.connected.wait(10)
    time.sleep(0.3)
    pub = Publisher(mosquitto.port)
    n = 2000
    infos = []
    for i in range(n):
        dev = f"d{i % 20}"
        seq = i // 20 + 1
        s = summary(seq, T0 + timedelta(minutes=seq), device=dev, lines={"cam/door": (1, 0)})
        infos.append(pub.msg(s))
    for info in infos:
        info.wait_for_publish(30)
    try:
        wait_for(lambda: a.stats.received + b.stats.received >= n, timeout_s=90)
        time.sleep(0.3)
        st = open_storage(storage_url)
        assert st.message_count("summary") == n
        assert a.stats.stored + b.stats.stored == n
        assert a.stats.duplicates + b.stats.duplicates == 0
        assert a.stats.stored > 0 and b.stats.stored > 0  # the group really split the load
        total = sum(h.in_count for h in st.footfall_hours("s1", T0, T0 + timedelta(days=1)))
        assert total == n
        assert st.seq_gaps("s1") == []
        st.close()
    finally:
        a.stop()
        b.stop()
        pub.close()


def test_broker_restart_loses_nothing(mosquitto, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite://{tmp_path / 'c.db'}"
    ing = Ingest(make_cfg(mosquitto.port, url, "central-restart")).start()
    assert ing.connected.wait(10)
    time.sleep(0.2)
    pub = Publisher(mosquitto.port)
    for s in range(1, 51):
        pub.msg(summary(s, T0 + timedelta(minutes=s))).wait_for_publish(5)
    pub.close()
    wait_for(lambda: ing.stats.stored == 50)
    mosquitto.restart()  # persistent sessions survive; central's client reconnects by itself
    # mosquitto 2.0.11 did not queue messages published between its restart and central's
    # reconnect (nor for a plain subscription): the devices here publish after it.
    wait_for(lambda: ing.connections == 2)
    pub = Publisher(mosquitto.port)
    for s in range(51, 101):
        pub.msg(summary(s, T0 + timedelta(minutes=s))).wait_for_publish(10)
    try:
        wait_for(lambda: ing.stats.stored == 100, timeout_s=60)
    finally:
        pub.close()
        ing.stop()
    with open_storage(url) as st:
        assert st.message_count("summary") == 100
        assert st.seq_gaps("s1") == []


def test_live_pos_and_stock_kinds(ingest: Ingest, publisher: Publisher) -> None:
    tx = wire.PosTransaction(store_id="s1", device_id="till-1", seq=1, transaction_id="R-1",
                             ts=T0, amount=19.99, currency="EUR")  # fmt: skip
    ev = wire.StockEventMsg.model_validate(
        {"store_id": "s1", "device_id": "rfid-1", "seq": 1, "ts": T0, "event_type": "stock_out",
         "zone": "shelf-a", "gtin": "09506000134352", "count": 0}
    )  # fmt: skip
    publisher.msg(tx).wait_for_publish(5)
    publisher.msg(ev).wait_for_publish(5)
    wait_for(lambda: ingest.stats.received == 2)
    with open_storage(ingest.cfg.storage.url) as st:
        (pos,) = st.pos_transactions("s1", T0, T0 + timedelta(hours=1))
        assert (pos.transaction_id, pos.amount, pos.currency, pos.source) == (
            "R-1", 19.99, "EUR", "mqtt"
        )  # fmt: skip
        (stock_row,) = st.stock_events("s1")
        assert (stock_row.event_type, stock_row.zone, stock_row.count) == (
            "stock_out",
            "shelf-a",
            0,
        )
        assert ingest.stats.by_kind == {"pos": 1, "stock": 1}


def test_mqtt_311_plain_subscription_keeps_its_session_across_a_restart(
    mosquitto,  # type: ignore[no-untyped-def]
    storage_url: str,
) -> None:
    """A broker or network that only speaks MQTT 3.1.1 (no $share): one instance, a plain
    subscription, and a persistent session (clean_session false, fixed client id)."""
    cfg = CentralConfig(
        mqtt=MqttConfig(
            host="127.0.0.1",
            port=mosquitto.port,
            client_id="central-311",
            protocol="3.1.1",
            shared_subscription=False,
        ),
        storage=StorageConfig(url=storage_url),
        ingest=IngestConfig(batch_max_wait_s=0.05),
    )
    pub = Publisher(mosquitto.port, protocol=mqtt.MQTTv311)
    pub.msg(wire.Status(store_id="s1", device_id="d1", seq=1, state="online")).wait_for_publish(5)
    first = Ingest(cfg).start()
    second: Ingest | None = None
    try:
        assert first.connected.wait(10)
        assert not first.client.v5
        # The retained status arrives through the plain footfall/v1/# subscription, once.
        wait_for(lambda: first.stats.statuses == 1)
        for s in range(1, 21):
            pub.msg(summary(s, T0 + timedelta(minutes=s), lines={"cam/door": (1, 0)}))
        wait_for(lambda: first.stats.stored == 20)
        first.stop()
        # Published while central is down: the broker queues them for its persistent session.
        for s in range(21, 41):
            pub.msg(
                summary(s, T0 + timedelta(minutes=s), lines={"cam/door": (1, 0)})
            ).wait_for_publish(5)
        second = Ingest(cfg).start()
        wait_for(lambda: second is not None and second.stats.stored == 20)
        assert first.stats.statuses == 1
        assert first.stats.duplicates + second.stats.duplicates == 0
        with open_storage(storage_url) as st:
            assert st.message_count("summary") == 40
            assert st.seq_gaps("s1") == []
            total = sum(h.in_count for h in st.footfall_hours("s1", T0, T0 + timedelta(days=1)))
            assert total == 40
            assert [d.state for d in st.devices("s1")] == ["online"]
    finally:
        if second is not None:
            second.stop()
        else:
            first.stop()
        pub.close()


def test_a_full_queue_holds_the_stream_back_without_loss(mosquitto, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The writer is slower than the socket: the network thread stops reading while the
    queue is full, the broker keeps the rest, and everything is stored once."""
    cfg = make_cfg(mosquitto.port, f"sqlite://{tmp_path / 'c.db'}", "central-small-queue")
    cfg = cfg.model_copy(
        update={"ingest": IngestConfig(queue_max_messages=100, batch_max_messages=50)}
    )
    ing = Ingest(cfg).start()
    assert ing.connected.wait(10)
    time.sleep(0.2)
    pub = Publisher(mosquitto.port)
    n = 1500
    infos = [
        pub.msg(summary(s, T0 + timedelta(minutes=s), lines={"cam/door": (1, 0)}))
        for s in range(1, n + 1)
    ]
    for info in infos:
        info.wait_for_publish(30)
    try:
        wait_for(lambda: ing.stats.stored == n, timeout_s=90)
        assert ing.stats.duplicates == 0
        assert ing.stats.batches >= n // 50
    finally:
        pub.close()
        ing.stop()
    with open_storage(cfg.storage.url) as st:
        assert st.message_count("summary") == n
        assert st.seq_gaps("s1") == []


def test_deliveries_after_stop_are_left_to_the_broker(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """While stop() drains the queue the network thread keeps reading; under a steady stream
    the writer would never see an empty queue and stop() would run into its timeout, then
    close the storage under a writer still committing. Not acknowledged, so redelivered."""
    cfg = make_cfg(1883, f"sqlite://{tmp_path / 'c.db'}", "central-stopping")
    ing = Ingest(cfg)
    try:
        ing._stop.set()
        ing._on_delivery(Delivery(["footfall/v1/s/d/summary"], [b"{}"], [7], time.time(), 1))
        assert ing.pending() == 0
    finally:
        ing.writer.storage.close()


def test_a_long_storage_stall_keeps_the_connection(mosquitto, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The database is locked for longer than 1.5 x keepalive while messages arrive: the
    queue fills, the subscriber stops reading but keeps pinging, so the broker keeps the
    connection (no reconnect, no redelivery) and everything is stored once it is free."""
    import sqlite3

    db = tmp_path / "c.db"
    cfg = make_cfg(mosquitto.port, f"sqlite://{db}", "central-stall")
    cfg = cfg.model_copy(
        update={
            "mqtt": cfg.mqtt.model_copy(update={"keepalive_s": 5}),
            "ingest": IngestConfig(queue_max_messages=100, batch_max_messages=50),
        }
    )
    ing = Ingest(cfg).start()
    assert ing.connected.wait(10)
    time.sleep(0.2)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the writer now waits on busy_timeout (30 s)
    pub = Publisher(mosquitto.port)
    n = 600
    try:
        for s in range(1, n + 1):
            pub.msg(summary(s, T0 + timedelta(minutes=s), lines={"cam/door": (1, 0)}))
        time.sleep(12)  # mosquitto drops a silent client after 7.5 s
        assert ing.connections == 1
        blocker.execute("ROLLBACK")
        wait_for(lambda: ing.stats.stored == n, timeout_s=60)
        assert ing.connections == 1 and ing.stats.duplicates == 0
    finally:
        blocker.close()
        pub.close()
        ing.stop()
