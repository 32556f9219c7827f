"""MQTT delivery of the outbox: the only module on the edge that imports paho.

The outbox owns durability; paho is only the transport. The sync worker thread hands the oldest
undelivered rows to paho (QoS 1, at most ``mqtt.max_inflight`` at once) and deletes a row only
when its PUBACK arrives with a success reason code. Everything else is resent:

* a connection lost with messages in flight: paho keeps its in-flight messages across our
  reconnects (same client object) and retransmits them with DUP set, whether or not the broker
  kept our session; a row whose PUBACK never arrives stays in the outbox;
* a restart of the agent: the rows are still in the outbox and are sent again;
* a PUBACK with a failure reason code (MQTT 5, e.g. quota exceeded, not authorised): the row is
  never marked sent, and the whole sync backs off (exponential with jitter, like a reconnect),
  then probes with one message at a time until a PUBACK is accepted again. A broker that refuses
  everything would otherwise get the whole backlog re-sent as fast as it can refuse it.

Duplicates created by these resends are harmless: central drops them by ``msg_id``.

A failing outbox (SQLite error: a corrupt page, a lock held too long, an I/O error) does not end
the worker: the error is counted, the outbox is left alone for a backoff and tried again, while
the connection, its status and its will stay managed. The worker's exit always disconnects and
stops paho's thread, whatever the outbox does, so the broker never keeps a dead agent online.

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
import sqlite3
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
# Backoff of the outbox after a SQLite error: short first (a lock that is released), capped so a
# repaired or freed disk is noticed within half a minute.
_OUTBOX_RETRY_MIN_S = 0.5
_OUTBOX_RETRY_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class SyncStats:
    state: BrokerState
    connects: int
    disconnects: int
    published: int
    acked: int
    rejected: int
    # Seconds until publishing resumes after refused PUBACKs (0: not paused).
    refused_pause_s: float
    # SQLite errors the outbox raised to the worker since start (each one backs the outbox off).
    outbox_errors: int
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
        self._refusal_attempt = 0  # refused PUBACK backoffs since the last accepted one
        self._paused_until = 0.0  # no data publish before this (monotonic) after a refusal
        self._outbox_errors = 0
        self._outbox_attempt = 0
        self._outbox_retry_at = 0.0  # no outbox call before this (monotonic) after an error
        self._last_status: wire.Status | None = None  # fallback while the outbox fails
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
            refused_pause_s=round(max(0.0, self._paused_until - time.monotonic()), 3),
            outbox_errors=self._outbox_errors,
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
                try:
                    self._step()
                except sqlite3.Error as exc:
                    self._outbox_failed(exc)
                # Poll fast only while something is moving (acks to batch, a connect to time
                # out); idle, wake() and the callbacks interrupt the wait. Keeps an idle
                # daemon's CPU near zero.
                now = time.monotonic()
                if self._outbox_backing_off(now):
                    wait_s = min(0.5, max(0.01, self._outbox_retry_at - now))
                elif self._state == "connecting" or self._to_mark or self._inflight:
                    wait_s = 0.05
                elif self._state == "backoff":
                    wait_s = min(0.5, max(0.01, self._next_attempt_at - now))
                elif self._paused_until > now:
                    wait_s = min(0.5, max(0.01, self._paused_until - now))
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
                self._send_status(self._status("online"))
                self._need_birth = False  # only once sent: an outbox error retries it
            with self._status_lock:
                status, self._status_out = self._status_out, None
            if status is not None:
                self._last_status = status
                self._send_status(status)
            self._fill_window()
        elif self._state == "connecting":
            if self._refused is not None or now - self._connect_started > self.connect_timeout_s:
                why = self._refused or "no CONNACK in time"
                self._abandon(f"connect failed: {why}")
        elif self._state == "connected":
            self._abandon(self._last_error or "connection lost")
        elif now >= self._next_attempt_at and (
            self._last_status is not None or not self._outbox_backing_off(now)
        ):
            # Without a status ever built, the will needs the outbox: wait for its retry.
            self._connect()
        self._flush_marks(force=False)

    def _connect(self) -> None:
        # Built first: an outbox error here leaves the worker in backoff, not half connecting.
        will = self._status("offline")
        self._refused = None
        self._state = "connecting"
        self._connect_started = time.monotonic()
        # A new connection (maybe a reconfigured broker) gets one probe at once; the refusal
        # backoff itself is kept until a PUBACK is accepted.
        self._paused_until = 0.0
        try:
            if self.cfg.username:
                self._client.username_pw_set(self.cfg.username, self.cfg.password())
            # The will carries the latest committed seq, like every status (see wire-format.md).
            self._client.will_set(self.status_topic, wire.encode(will), qos=1, retain=True)
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
                self._refused_puback(row_id, reason, now)
                continue
            if self._refusal_attempt:
                log.info("broker accepts messages again")
                self._refusal_attempt = 0
                self._paused_until = 0.0
            self._acked += 1
            if not self._to_mark:
                self._first_mark_at = now
            self._to_mark.append(row_id)
        if len(self._to_mark) >= _MARK_BATCH_ROWS:
            self._flush_marks(force=True)

    def _refused_puback(self, row_id: int, reason: str, now: float) -> None:
        """Not a delivery: keep the row, and stop publishing for a while.

        The rows of one window are refused together: only the first refusal after a pause
        lengthens the backoff, the others find the sync already paused.
        """
        self._rejected += 1
        self._last_error = f"PUBACK refused: {reason}"
        if now >= self._paused_until:
            delay = backoff_delay_s(
                self._refusal_attempt, self.cfg.reconnect_min_s, self.cfg.reconnect_max_s, self._rng
            )
            self._refusal_attempt += 1
            self._paused_until = now + delay
            log.warning(
                "broker refused message row %d: %s; publishing paused for %.1f s",
                row_id,
                reason,
                delay,
            )
        # The refused row itself waits longer still, so the probe is another row when there
        # is one (the broker may refuse one topic only).
        self._held[row_id] = max(self._paused_until, now + _REJECT_RETRY_S)

    def _outbox_backing_off(self, now: float) -> bool:
        return now < self._outbox_retry_at

    def _outbox_failed(self, exc: sqlite3.Error) -> None:
        """Count a SQLite error and leave the outbox alone for a backoff; the worker lives on."""
        self._outbox_errors += 1
        delay = backoff_delay_s(
            self._outbox_attempt, _OUTBOX_RETRY_MIN_S, _OUTBOX_RETRY_MAX_S, self._rng
        )
        self._outbox_attempt += 1
        self._outbox_retry_at = time.monotonic() + delay
        self._last_error = f"outbox error: {exc}"
        log.error("outbox error (%d so far): %s; retry in %.1f s", self._outbox_errors, exc, delay)

    def _outbox_worked(self) -> None:
        if self._outbox_attempt:
            log.info("outbox works again")
            self._outbox_attempt = 0

    def _flush_marks(self, force: bool) -> None:
        if not self._to_mark or self._outbox_backing_off(time.monotonic()):
            return
        if force or time.monotonic() - self._first_mark_at >= _MARK_MAX_DELAY_S:
            # Cleared only once committed: after an error the rows are marked at the retry
            # (and meanwhile kept out of the window as delivered).
            self.outbox.mark_sent(self._to_mark)
            self._to_mark = []
            self._outbox_worked()

    def _fill_window(self) -> None:
        now = time.monotonic()
        if now < self._paused_until or self._outbox_backing_off(now):
            return
        # After a refusal, one probe at a time until the broker accepts a message again.
        window = 1 if self._refusal_attempt else self._window
        room = window - len(self._inflight)
        if room <= 0:
            return
        for row_id, until in list(self._held.items()):
            if until <= now:
                del self._held[row_id]
        exclude = [*self._inflight.values(), *self._to_mark, *self._held]
        rows = self.outbox.pending(room, exclude=exclude)
        self._outbox_worked()
        for row in rows:
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

    def _status(self, state: Literal["online", "offline"]) -> wire.Status:
        """A fresh status, or while the outbox fails the last good one with `state`.

        Without a fallback a failing outbox would leave the connection without a will and the
        broker without an offline status at stop. Only when there never was a good one does
        the error go up (the worker then backs the outbox off).
        """
        try:
            status = self.status_fn(state)
        except sqlite3.Error as exc:
            if self._last_status is None:
                raise
            self._outbox_errors += 1
            self._last_error = f"outbox error: {exc}"
            log.error("status from the last good figures, outbox error: %s", exc)
            return self._last_status.model_copy(update={"state": state})
        self._last_status = status
        return status

    def _send_status(self, status: wire.Status) -> None:
        """Publish a status now (sync thread only, like every publish that expects a PUBACK)."""
        info = self._client.publish(self.status_topic, wire.encode(status), qos=1, retain=True)
        self._status_mids.add(info.mid)

    def _shutdown(self) -> None:
        """Say offline and disconnect, whatever the outbox does.

        Each step is guarded on its own: a failing outbox must not keep paho's thread running
        a session the broker shows online (no will is sent for a live connection).
        """
        self._outbox_retry_at = 0.0  # last chance to mark what was delivered
        self._guarded("marking delivered rows", self._process_acks)
        self._guarded("marking delivered rows", lambda: self._flush_marks(force=True))
        try:
            if self._connected.is_set():
                self._guarded("sending the offline status", self._send_offline)
                self._client.disconnect()
        except Exception:
            log.exception("error while disconnecting from the broker")
        finally:
            if self._loop_running:
                self._client.loop_stop()
                self._loop_running = False
        # PUBACKs that arrived while disconnecting still count as deliveries.
        self._guarded("marking delivered rows", self._process_acks)
        self._guarded("marking delivered rows", lambda: self._flush_marks(force=True))
        self._connected.clear()
        self._state = "stopped"

    def _send_offline(self) -> None:
        info = self._client.publish(
            self.status_topic, wire.encode(self._status("offline")), qos=1, retain=True
        )
        deadline = time.monotonic() + 2.0
        while not info.is_published() and time.monotonic() < deadline:
            time.sleep(0.01)

    def _guarded(self, what: str, fn: Callable[[], object]) -> None:
        try:
            fn()
        except sqlite3.Error as exc:
            self._outbox_errors += 1
            log.error("outbox error while stopping (%s): %s", what, exc)
        except Exception:
            log.exception("error while stopping (%s)", what)

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
