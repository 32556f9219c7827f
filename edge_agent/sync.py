"""MQTT delivery of the outbox: the only module on the edge that imports paho.

The outbox owns durability; paho is only the transport. The sync worker thread hands the oldest
undelivered rows to paho (QoS 1, at most ``mqtt.max_inflight`` at once) and deletes a row only
when its PUBACK arrives with a success reason code. Everything else is resent:

* a connection lost with messages in flight: paho keeps its in-flight messages across our
  reconnects (same client object) and retransmits them with DUP set, whether or not the broker
  kept our session; a row whose PUBACK never arrives stays in the outbox;
* a restart of the agent: the rows are still in the outbox and are sent again;
* a PUBACK with a failure reason code (MQTT 5, e.g. quota exceeded, not authorised): the row is
  held back with a backoff and retried, never marked sent.

Duplicates created by these resends are harmless: central drops them by ``msg_id``.

The connection: MQTT 5 by default with clean start off and a session expiry (3.1.1 selectable,
with clean session off), a retained ``online`` status as birth message on every connect, and a
retained ``offline`` status as the will. paho's own reconnect loop is disabled
(``reconnect_on_failure=False``) because it has no jitter; this worker reconnects with
exponential backoff and jitter, reading the password file at each attempt so a rotated
credential is picked up. A connection whose CONNACK does not arrive in time is abandoned.
"""

from __future__ import annotations

import logging
import queue
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent import __version__, wire
from edge_agent.config import MqttConfig
from edge_agent.outbox import Outbox

log = logging.getLogger(__name__)

StatusFn = Callable[[Literal["online", "offline"]], wire.Status]
BrokerState = Literal["idle", "connecting", "connected", "backoff", "stopped"]

# Rows whose delivery was confirmed are deleted in batches: one fsync per batch, not per PUBACK.
_MARK_BATCH_ROWS = 256
_MARK_MAX_DELAY_S = 0.05
_REJECT_RETRY_S = 5.0


@dataclass(frozen=True, slots=True)
class SyncStats:
    state: BrokerState
    connects: int
    disconnects: int
    published: int
    acked: int
    rejected: int
    inflight: int
    status_inflight: int
    window: int
    last_error: str | None
    session_present: bool | None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def backoff_delay_s(attempt: int, min_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped at max_s.

    Jitter keeps a store's devices (and a chain's stores) from reconnecting in lockstep after
    a broker restart.
    """
    base = min(max_s, min_s * (2.0 ** min(attempt, 30)))
    return base / 2 + rng.uniform(0, base / 2)


class MqttSync:
    """Drains an Outbox to the broker. `start()`, then `stop(drain_timeout_s)`."""

    def __init__(
        self,
        mqtt_cfg: MqttConfig,
        store_id: str,
        device_id: str,
        outbox: Outbox,
        *,
        status_fn: StatusFn | None = None,
        connect_timeout_s: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        self.cfg = mqtt_cfg
        self.store_id = store_id
        self.device_id = device_id
        self.outbox = outbox
        self.status_fn = status_fn or self._default_status
        self.connect_timeout_s = connect_timeout_s
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._acks: queue.SimpleQueue[tuple[int, bool, str]] = queue.SimpleQueue()
        self._inflight: dict[int, int] = {}  # paho mid -> outbox row id
        self._window = mqtt_cfg.max_inflight
        self._status_mids: set[int] = set()  # touched by the sync thread only
        self._status_out: wire.Status | None = None  # handed over by publish_status()
        self._status_lock = threading.Lock()
        self._to_mark: list[int] = []
        self._first_mark_at = 0.0
        self._held: dict[int, float] = {}  # row id -> retry time after a rejected PUBACK
        self._state: BrokerState = "idle"
        self._connected = threading.Event()
        self._refused: str | None = None
        self._need_birth = False
        self._attempt = 0
        self._next_attempt_at = 0.0
        self._connect_started = 0.0
        self._loop_running = False
        self._start_mono = time.monotonic()
        self.heartbeat = time.monotonic()
        self._connects = 0
        self._disconnects = 0
        self._published = 0
        self._acked = 0
        self._rejected = 0
        self._last_error: str | None = None
        self._session_present: bool | None = None
        self._thread: threading.Thread | None = None
        self.status_topic = wire.topic_for(store_id, device_id, "status")
        self._client = self._make_client()

    # -- paho setup and callbacks (callbacks run on paho's network thread) ---------------------
    def _make_client(self) -> mqtt.Client:
        v5 = self.cfg.protocol == "5"
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"footfall-{self.store_id}-{self.device_id}",
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            # 3.1.1: a persistent session. MQTT 5 takes clean_start at connect() instead.
            clean_session=None if v5 else False,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(self.cfg.max_inflight)
        client.max_queued_messages_set(0)  # the window below bounds what paho holds
        client.connect_timeout = self.connect_timeout_s
        tls = self.cfg.tls
        if tls is not None:
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: Any,
        properties: Any,
    ) -> None:
        if getattr(reason_code, "is_failure", False):
            self._refused = str(reason_code)
            self._wake.set()
            return
        self._session_present = bool(flags.session_present)
        # MQTT 5: never have more unacknowledged messages out than the broker accepts
        # (paho does not apply the CONNACK's Receive Maximum itself).
        receive_max = getattr(properties, "ReceiveMaximum", None)
        self._window = min(self.cfg.max_inflight, int(receive_max or self.cfg.max_inflight))
        self._need_birth = True
        self._connected.set()
        self._wake.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if self._connected.is_set():
            self._disconnects += 1
            self._last_error = f"disconnected: {reason_code}"
        elif self._refused is None:
            self._refused = f"connection closed: {reason_code}"  # ends the attempt at once
        self._connected.clear()
        self._wake.set()

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        failed = bool(getattr(reason_code, "is_failure", False))
        self._acks.put((mid, failed, str(reason_code)))
        self._wake.set()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> MqttSync:
        self._thread = threading.Thread(target=self._run, name="sync", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        """New rows were appended: publish them now rather than at the next poll."""
        self._wake.set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def state(self) -> BrokerState:
        return self._state

    def stats(self) -> SyncStats:
        return SyncStats(
            state=self._state,
            connects=self._connects,
            disconnects=self._disconnects,
            published=self._published,
            acked=self._acked,
            rejected=self._rejected,
            inflight=len(self._inflight),
            status_inflight=len(self._status_mids),
            window=self._window,
            last_error=self._last_error,
            session_present=self._session_present,
        )

    def drained(self) -> bool:
        return self.outbox.depth == 0 and not self._inflight

    def wait_drained(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.drained():
                return True
            time.sleep(0.02)
        return self.drained()

    def stop(self, drain_timeout_s: float = 5.0, wait_for_broker: bool = False) -> bool:
        """Give the backlog up to drain_timeout_s, then say offline and disconnect.

        While disconnected the backlog cannot move, so the wait is skipped unless
        `wait_for_broker` (a batch run that must deliver before it exits). Returns True when
        the outbox was empty at the end.
        """
        if self.connected or wait_for_broker:
            drained = self.wait_drained(drain_timeout_s)
        else:
            drained = self.drained()
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        return drained

    # -- the worker ------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.heartbeat = time.monotonic()
                self._step()
                # Poll fast only while something is moving (acks to batch, a connect to time
                # out); idle, wake() and the callbacks interrupt the wait. Keeps an idle
                # daemon's CPU near zero.
                if self._inflight or self._to_mark or self._state == "connecting":
                    wait_s = 0.05
                elif self._state == "backoff":
                    wait_s = min(0.5, max(0.01, self._next_attempt_at - time.monotonic()))
                else:
                    wait_s = 0.5
                self._wake.wait(wait_s)
                self._wake.clear()
        except Exception:  # pragma: no cover - a bug here must be loud, not a silent stall
            log.exception("sync worker crashed")
            self._state = "stopped"
            raise
        finally:
            self._shutdown()

    def _step(self) -> None:
        now = time.monotonic()
        self._process_acks()
        if self._connected.is_set():
            if self._state != "connected":
                self._state = "connected"
                self._connects += 1
                self._attempt = 0
                log.info(
                    "connected to %s:%s (session present: %s)",
                    self.cfg.host,
                    self.cfg.port,
                    self._session_present,
                )
            if self._need_birth:
                self._need_birth = False
                self._send_status(self.status_fn("online"))
            with self._status_lock:
                status, self._status_out = self._status_out, None
            if status is not None:
                self._send_status(status)
            self._fill_window()
        elif self._state == "connecting":
            if self._refused is not None or now - self._connect_started > self.connect_timeout_s:
                why = self._refused or "no CONNACK in time"
                self._abandon(f"connect failed: {why}")
        elif self._state == "connected":
            self._abandon(self._last_error or "connection lost")
        elif now >= self._next_attempt_at:
            self._connect()
        self._flush_marks(force=False)

    def _connect(self) -> None:
        self._refused = None
        self._state = "connecting"
        self._connect_started = time.monotonic()
        try:
            if self.cfg.username:
                self._client.username_pw_set(self.cfg.username, self.cfg.password())
            # The will carries the latest committed seq, like every status (see wire-format.md).
            self._client.will_set(
                self.status_topic, wire.encode(self.status_fn("offline")), qos=1, retain=True
            )
            if self.cfg.protocol == "5":
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self.cfg.session_expiry_s
                self._client.connect(
                    self.cfg.host,
                    self.cfg.port,
                    keepalive=self.cfg.keepalive_s,
                    clean_start=False,
                    properties=props,
                )
            else:
                self._client.connect(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        except (OSError, ValueError, ssl.SSLError) as exc:
            self._abandon(f"connect failed: {exc}")
            return
        self._client.loop_start()
        self._loop_running = True

    def _abandon(self, why: str) -> None:
        """Drop the current connection attempt or dead connection and schedule a retry."""
        self._last_error = why
        self._connected.clear()
        with self._status_lock:
            # A snapshot taken before the drop would be sent after the new birth message and
            # become the retained status with stale figures; the next one is taken fresh.
            self._status_out = None
        if self._loop_running:
            self._client.disconnect()
            self._client.loop_stop()
            self._loop_running = False
        delay = backoff_delay_s(
            self._attempt, self.cfg.reconnect_min_s, self.cfg.reconnect_max_s, self._rng
        )
        self._attempt += 1
        self._next_attempt_at = time.monotonic() + delay
        self._state = "backoff"
        log.warning("broker %s:%s: %s; retry in %.1f s", self.cfg.host, self.cfg.port, why, delay)

    def _process_acks(self) -> None:
        now = time.monotonic()
        while True:
            try:
                mid, failed, reason = self._acks.get_nowait()
            except queue.Empty:
                break
            if mid in self._status_mids:
                self._status_mids.discard(mid)
                continue
            row_id = self._inflight.pop(mid, None)
            if row_id is None:
                continue
            if failed:
                # Not a delivery: keep the row and retry later (the broker refused it now).
                self._rejected += 1
                self._held[row_id] = now + _REJECT_RETRY_S
                self._last_error = f"PUBACK refused: {reason}"
                log.warning("broker refused message row %d: %s", row_id, reason)
                continue
            self._acked += 1
            if not self._to_mark:
                self._first_mark_at = now
            self._to_mark.append(row_id)
        if len(self._to_mark) >= _MARK_BATCH_ROWS:
            self._flush_marks(force=True)

    def _flush_marks(self, force: bool) -> None:
        if not self._to_mark:
            return
        if force or time.monotonic() - self._first_mark_at >= _MARK_MAX_DELAY_S:
            self.outbox.mark_sent(self._to_mark)
            self._to_mark = []

    def _fill_window(self) -> None:
        room = self._window - len(self._inflight)
        if room <= 0:
            return
        now = time.monotonic()
        for row_id, until in list(self._held.items()):
            if until <= now:
                del self._held[row_id]
        exclude = [*self._inflight.values(), *self._to_mark, *self._held]
        for row in self.outbox.pending(room, exclude=exclude):
            info = self._client.publish(row.topic, row.payload, qos=1)
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                break
            # NO_CONN still leaves the message in paho's queue, sent on reconnect: track it.
            self._inflight[info.mid] = row.id
            self._published += 1
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break

    def publish_status(self, status: wire.Status) -> bool:
        """Have the sync thread publish a retained status (best effort: only while connected,
        not stored; a newer status replaces one not sent yet). Returns False when offline.

        Every publish happens on the sync thread, the thread that also matches PUBACKs: a mid
        is registered before any PUBACK can be looked up. Published from the caller's thread,
        a fast PUBACK could be handled before its mid was registered, leaving a stale status
        mid that, once paho's 16-bit mids wrap, would swallow a data row's PUBACK.
        """
        if not self._connected.is_set():
            return False
        with self._status_lock:
            self._status_out = status
        self._wake.set()
        return True

    def _send_status(self, status: wire.Status) -> None:
        """Publish a status now (sync thread only, like every publish that expects a PUBACK)."""
        info = self._client.publish(self.status_topic, wire.encode(status), qos=1, retain=True)
        self._status_mids.add(info.mid)

    def _shutdown(self) -> None:
        try:
            self._process_acks()
            self._flush_marks(force=True)
            if self._connected.is_set():
                info = self._client.publish(
                    self.status_topic, wire.encode(self.status_fn("offline")), qos=1, retain=True
                )
                deadline = time.monotonic() + 2.0
                while not info.is_published() and time.monotonic() < deadline:
                    time.sleep(0.01)
                self._client.disconnect()
            if self._loop_running:
                self._client.loop_stop()
                self._loop_running = False
            # PUBACKs that arrived while disconnecting still count as deliveries.
            self._process_acks()
            self._flush_marks(force=True)
        except Exception:
            log.exception("error while closing the broker connection")
        self._connected.clear()
        self._state = "stopped"

    def _default_status(self, state: Literal["online", "offline"]) -> wire.Status:
        st = self.outbox.stats()
        return wire.Status(
            store_id=self.store_id,
            device_id=self.device_id,
            seq=max(1, st.last_seq),
            state=state,
            version=__version__,
            uptime_s=time.monotonic() - self._start_mono,
            outbox_depth=st.depth,
            outbox_oldest_age_s=st.oldest_age_s,
            outbox_dropped=st.dropped_total,
        )


def probe(mqtt_cfg: MqttConfig, client_id: str, timeout_s: float = 5.0) -> tuple[bool, str]:
    """Connect once with the real settings (TLS, credentials) and disconnect: for `doctor`.

    Uses its own client id and a clean session, so it never takes over the daemon's session.
    """
    v5 = mqtt_cfg.protocol == "5"
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else True,
        reconnect_on_failure=False,
    )
    client.connect_timeout = timeout_s
    result: dict[str, str] = {}
    done = threading.Event()

    def on_connect(c: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any) -> None:
        result["rc"] = str(rc)
        result["ok"] = "" if getattr(rc, "is_failure", False) else "yes"
        done.set()

    client.on_connect = on_connect
    try:
        tls = mqtt_cfg.tls
        if tls is not None:
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
            )
        if mqtt_cfg.username:
            client.username_pw_set(mqtt_cfg.username, mqtt_cfg.password())
        client.connect(mqtt_cfg.host, mqtt_cfg.port, keepalive=mqtt_cfg.keepalive_s)
    except (OSError, ValueError, ssl.SSLError) as exc:
        return False, f"{mqtt_cfg.host}:{mqtt_cfg.port}: {exc}"
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            return False, f"{mqtt_cfg.host}:{mqtt_cfg.port}: no CONNACK within {timeout_s:g} s"
        if not result.get("ok"):
            return False, f"{mqtt_cfg.host}:{mqtt_cfg.port}: refused: {result.get('rc')}"
        return True, f"{mqtt_cfg.host}:{mqtt_cfg.port}: connected (MQTT {mqtt_cfg.protocol})"
    finally:
        client.disconnect()
        client.loop_stop()


__all__ = ["BrokerState", "MqttSync", "StatusFn", "SyncStats", "backoff_delay_s", "probe"]
