"""Builders shared by the edge daemon tests (configs, event streams, a central-like subscriber)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge_agent import wire
from edge_agent.config import AgentConfig


def agent_config(
    tmp_path: Path,
    port: int = 1883,
    tz: str = "UTC",
    interval_s: int = 60,
    cameras: list[dict[str, Any]] | None = None,
    **mqtt_extra: Any,
) -> AgentConfig:
    cams = (
        cameras
        if cameras is not None
        else [
            {
                "id": "door",
                "source": str(tmp_path / "none"),
                "lines": [{"id": "entrance", "points": [[0, 10], [100, 10]]}],
                "zones": [
                    {"id": "front", "polygon": [[0, 0], [50, 0], [50, 50]]},
                    {"id": "back", "polygon": [[50, 50], [100, 50], [100, 100]]},
                ],
            }
        ]
    )
    return AgentConfig.model_validate(
        {
            "store": {"id": "store-1", "timezone": tz},
            "device": {"id": "dev-1"},
            "mqtt": {"host": "127.0.0.1", "port": port, "keepalive_s": 5, **mqtt_extra},
            "outbox": {"path": str(tmp_path / "outbox.db")},
            "aggregation": {"interval_s": interval_s},
            "cameras": cams,
        }
    )


class Central:
    """What central does with the stream: subscribe to everything, validate, dedupe by msg_id."""

    def __init__(self, port: int, client_id: str = "test-central") -> None:
        self.port = port
        self.stored: dict[
            str, wire.Summary | wire.StockEventMsg | wire.Status | wire.PosTransaction
        ] = {}
        self.received = 0
        self.rejected: list[str] = []
        self.status: list[wire.Status] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.subscribed = threading.Event()
        self.client.reconnect_delay_set(0.2, 1.0)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        client.subscribe("footfall/v1/#", qos=1)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, rcs: Any, props: Any
    ) -> None:
        self.subscribed.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        self.subscribed.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            decoded = wire.decode(msg.payload, msg.topic)
        except wire.WireError as exc:
            with self._lock:
                self.rejected.append(exc.reason)
            return
        with self._lock:
            self.received += 1
            if isinstance(decoded, wire.Status):
                self.status.append(decoded)
            else:
                self.stored.setdefault(decoded.msg_id, decoded)

    def start(self) -> Central:
        props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect(
            "127.0.0.1", self.port, keepalive=5, clean_start=False, properties=props
        )
        self.client.loop_start()
        self.subscribed.wait(10)
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def seqs(self) -> list[int]:
        with self._lock:
            return sorted(m.seq for m in self.stored.values())

    def wait_for(self, n: int, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.stored) >= n:
                    return True
            time.sleep(0.05)
        return False


def wait_until(pred: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def wait_caught_up(central: Central, produced: dict[str, int], outbox: Any) -> None:
    """Wait until central holds every message the broker acknowledged (the ones no longer in
    the outbox). Only then may a test kill or wipe the broker: a broker that dies between
    its PUBACK and its delivery to a subscriber loses that message on the broker's side,
    which no edge device can prevent."""
    time.sleep(0.3)  # let the sync delete what was just acknowledged

    def caught_up() -> bool:
        pending = {r.msg_id for r in outbox.pending(1_000_000)}
        return set(produced) - pending <= set(central.stored)

    assert wait_until(caught_up, 15.0), "central missed messages the broker acknowledged"
