"""The sync worker when the outbox fails or the broker refuses messages: it stays alive, counts
what happens, backs off, resumes, and at stop the broker always sees it go."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from edge_agent import wire
from edge_agent.outbox import Outbox
from edge_agent.sync import MqttSync
from tests.edge_agent.helpers import Central, wait_until
from tests.edge_agent.test_sync import check_delivery, mqtt_cfg, summary
from tests.mosquitto import Mosquitto

pytestmark = pytest.mark.broker


def retained_status(port: int, topic: str) -> wire.Status | None:
    """The status the broker holds retained for `topic`, as a newly connecting central sees it."""
    got: list[wire.Status] = []
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="retained-probe")

    def on_connect(c: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any) -> None:
        c.subscribe(topic, qos=1)

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        decoded = wire.decode(bytes(msg.payload), msg.topic)
        assert isinstance(decoded, wire.Status)
        got.append(decoded)
        done.set()

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect("127.0.0.1", port, keepalive=5)
    client.loop_start()
    done.wait(3.0)
    client.disconnect()
    client.loop_stop()
    return got[-1] if got else None


def write_lock(db: Path) -> sqlite3.Connection:
    """Another process's writer holding the database: every write of the outbox fails with
    "database is locked" once its busy timeout runs out (reads go on, it is WAL)."""
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


def test_an_outbox_error_is_counted_backed_off_and_delivery_resumes(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    db = tmp_path / "o.db"
    ob = Outbox(db, busy_timeout_s=0.05)
    central = Central(mosquitto.port).start()
    produced = {m.msg_id: m.seq for m in ob.append([summary(i) for i in range(40)])}
    blocker = write_lock(db)
    sync = MqttSync(mqtt_cfg(mosquitto.port), "store-1", "dev-1", ob).start()
    try:
        # The broker acknowledges every row, but none can be marked delivered.
        assert wait_until(lambda: sync.stats().acked >= 40 and sync.stats().outbox_errors >= 2)
        time.sleep(0.5)
        assert sync._thread is not None and sync._thread.is_alive()
        st = sync.stats()
        assert st.state == "connected" and ob.depth == 40
        assert "locked" in (st.last_error or "")
        # Backed off, not retried in a loop: a handful of tries in about a second.
        assert st.outbox_errors <= 6, st
        assert time.monotonic() - sync.heartbeat < 1.0, "the worker still beats"
        blocker.rollback()
        blocker.close()
        # The outbox works again: what was acknowledged is marked, new rows flow.
        produced |= {m.msg_id: m.seq for m in ob.append([summary(i) for i in range(40, 50)])}
        sync.wake()
        check_delivery(central, produced, sync)
        assert sync.stats().outbox_errors == st.outbox_errors
        status = retained_status(mosquitto.port, sync.status_topic)
        assert status is not None and status.state == "online"
    finally:
        sync.stop(1.0)
        ob.close()
        central.stop()


def test_stop_disconnects_and_says_offline_while_the_outbox_fails(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    db = tmp_path / "o.db"
    ob = Outbox(db, busy_timeout_s=0.05)
    ob.append([summary(i) for i in range(10)])
    blocker = write_lock(db)
    sync = MqttSync(mqtt_cfg(mosquitto.port), "store-1", "dev-1", ob).start()
    try:
        assert wait_until(lambda: sync.stats().acked == 10 and sync.stats().outbox_errors >= 1)
        online = retained_status(mosquitto.port, sync.status_topic)
        assert online is not None and online.state == "online"
        assert sync.stop(0.1) is False  # nothing could be marked: the rows stay for a resend
        assert sync._thread is not None and not sync._thread.is_alive()
        assert sync.stats().state == "stopped" and not sync._client.is_connected()
        assert sync._client._thread is None, "paho's network thread was stopped"
        status = retained_status(mosquitto.port, sync.status_topic)
        assert status is not None and status.state == "offline", "the broker saw us go"
        assert ob.depth == 10
    finally:
        blocker.rollback()
        blocker.close()
        ob.close()


def test_a_failing_outbox_from_the_start_still_connects_once_it_works(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    # The status (and so the will) needs the outbox; without one ever built the worker waits
    # for the outbox instead of connecting without a will or dying.
    db = tmp_path / "o.db"
    ob = Outbox(db, busy_timeout_s=0.05)
    ob.append([summary(1)])
    broken = [True]

    def status_fn(state: Any) -> wire.Status:
        if broken[0]:
            raise sqlite3.OperationalError("disk I/O error")
        return wire.Status(store_id="store-1", device_id="dev-1", seq=1, state=state)

    sync = MqttSync(mqtt_cfg(mosquitto.port), "store-1", "dev-1", ob, status_fn=status_fn)
    sync.start()
    try:
        assert wait_until(lambda: sync.stats().outbox_errors >= 2)
        assert sync._thread is not None and sync._thread.is_alive()
        assert not sync.connected and ob.depth == 1
        broken[0] = False
        assert sync.wait_drained(15.0), sync.stats()
        # Broken again: the birth and the will fall back on the last good status.
        broken[0] = True
        mosquitto.restart()
        assert wait_until(lambda: sync.stats().connects >= 2, 15.0), sync.stats()
        sync.stop(0.5)
        status = retained_status(mosquitto.port, sync.status_topic)
        assert status is not None and status.state == "offline"
    finally:
        sync.stop(0.1)
        ob.close()


def test_a_broker_that_refuses_everything_is_not_flooded(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    # Data topics refused (MQTT 5 PUBACK 0x87 Not authorized); status allowed.
    acl.write_text("topic read footfall/v1/#\ntopic write footfall/v1/+/+/status\n")
    broker = Mosquitto(tmp_path / "b", extra_conf=[f"acl_file {acl}"]).start()
    ob = Outbox(tmp_path / "o.db")
    produced = {m.msg_id: m.seq for m in ob.append([summary(i) for i in range(300)])}
    central = Central(broker.port).start()
    cfg = mqtt_cfg(broker.port, max_inflight=16, reconnect_min_s=0.2, reconnect_max_s=1.0)
    sync = MqttSync(cfg, "store-1", "dev-1", ob).start()
    try:
        assert wait_until(lambda: sync.stats().rejected >= 16)
        time.sleep(1.0)
        before = sync.stats().published
        # Longer than the 5 s a refused row is held: before the fix the whole backlog went
        # out again as soon as the holds ran out, over and over.
        time.sleep(6.5)
        st = sync.stats()
        # One probe per backoff (0.5 to 1 s at the cap) instead of the whole window.
        assert st.published - before <= 15, st
        assert st.rejected >= st.published - st.inflight - 1
        assert st.acked == 0 and ob.depth == 300
        assert sync._thread is not None and sync._thread.is_alive() and st.state == "connected"
        # The operator fixes the ACL and reloads the broker (SIGHUP: the connection stays, so
        # only the first accepted PUBACK can end the backoff); the full window is used again.
        acl.write_text("topic readwrite footfall/v1/#\n")
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGHUP)
        check_delivery(central, produced, sync)
        st = sync.stats()
        assert st.refused_pause_s == 0.0 and st.acked >= 300 and st.connects == 1
    finally:
        sync.stop(1.0)
        ob.close()
        central.stop()
        broker.stop()
