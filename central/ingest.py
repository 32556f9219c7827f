"""MQTT ingest: receive, validate, store, acknowledge.

Flow: the subscriber's network thread (central.subscriber) queues what each socket read
delivered, bounded by messages; one writer thread validates them with `edge_agent.wire.decode`,
commits a batch in one transaction (duplicates dropped by msg_id in storage, rejected payloads
to the dead-letter table), and only then acknowledges the batch to the broker (QoS 1, PUBACKs
sent after the commit). A crash before the commit therefore loses nothing:
the broker redelivers, and the dedupe makes the redelivery harmless.

Subscriptions: `$share/<group>/footfall/v1/#` (instances in one group split the stream) and a
plain `footfall/v1/+/+/status`, because brokers do not send retained messages to shared
subscriptions and the retained status is what drives the fleet's online/offline view.
With `shared_subscription: false` (required on MQTT 3.1.1, which has no `$share`) the filter is
subscribed plainly, plus the status filter only when the topic filter does not cover it.

Sessions are persistent, so messages published while ingest is down wait at the broker: on
MQTT 5 with clean start off and a session expiry, on 3.1.1 with clean_session=False; both
keyed by the fixed `client_id`.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from central.config import CentralConfig, IngestConfig, MqttConfig
from central.storage import BatchResult, DeadLetter, Received, Storage, open_storage
from central.storage.base import END_TIME, FIRST_TIME, YEARS, Decoded
from central.subscriber import Delivery, MqttSubscriber, topic_matches
from edge_agent.wire import Status, Summary, WireError, decode, parse_topic

log = logging.getLogger("central.ingest")
STATUS_FILTER = "footfall/v1/+/+/status"
FULL_GC_INTERVAL_S = 300.0


def subscriptions(m: MqttConfig) -> list[tuple[str, int]]:
    """What ingest subscribes to (QoS 1): see the module docstring."""
    if m.shared_subscription:
        return [(f"$share/{m.group}/{m.topic_filter}", 1), (STATUS_FILTER, 1)]
    # A filter that matches the status filter itself (its '+' taken literally) matches every
    # status topic; subscribing both would deliver each status twice.
    if topic_matches(m.topic_filter, STATUS_FILTER):
        return [(m.topic_filter, 1)]
    return [(m.topic_filter, 1), (STATUS_FILTER, 1)]


class RawMessage(NamedTuple):
    """One received message (a tuple: ingest makes one per message, so it must be cheap)."""

    topic: str
    payload: bytes
    received_ts: float
    mid: int = 0  # 0: QoS 0, nothing to acknowledge
    connection: int = 0  # which connection delivered it: a mid is only valid on that one


def validate(topic: str, payload: bytes) -> Decoded:
    """`wire.decode` plus the checks storage relies on; raises WireError with a reason."""
    # PostgreSQL text cannot hold NUL; JSON can smuggle one in as an escape.
    if topic.count("/") != 4:  # decode() checks the topic fully; this reports it first
        parse_topic(topic)
    if b"\\u0000" in payload:
        raise WireError("payload contains a NUL character escape (\\u0000)")
    msg = decode(payload, topic)
    _check_time("created_at", msg.created_at)
    if isinstance(msg, Summary):
        _check_time("interval_start", msg.interval_start)
        try:
            ZoneInfo(msg.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise WireError(f"timezone: unknown IANA zone {msg.timezone!r}") from None
    elif not isinstance(msg, Status):
        _check_time("ts", msg.ts)
    return msg


def _check_time(name: str, value: datetime) -> None:
    if not FIRST_TIME <= value < END_TIME:
        raise WireError(f"{name}: {value.isoformat()} is outside the years {YEARS}")


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    statuses: int = 0
    seq_gaps: int = 0  # messages missing by seq, as seen by this instance (storage has all)
    batches: int = 0
    storage_errors: int = 0
    last_batch_ms: float = 0.0
    connections: int = 0  # successful MQTT connections (reconnects included)
    protocol_errors: int = 0  # connections dropped because the broker broke the protocol
    by_kind: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class BatchWriter:
    """Validates raw messages and commits them; never raises for bad data."""

    def __init__(self, storage: Storage, cfg: IngestConfig, reopen: Callable[[], Storage]) -> None:
        self.storage = storage
        self.cfg = cfg
        self._reopen = reopen
        self.stats = IngestStats()
        self._last_seq: dict[tuple[str, str], int] = {}
        self._dead_since_prune = 0

    def _dead(self, raw: RawMessage, reason: str) -> DeadLetter:
        cap = self.cfg.dead_letter_max_payload_bytes
        return DeadLetter(
            topic=raw.topic[:1024],
            reason=reason[:2000],
            payload=raw.payload[:cap],
            payload_size=len(raw.payload),
            received_at=datetime.fromtimestamp(raw.received_ts, UTC),
        )

    def _track_seq(self, msg: Received) -> None:
        if isinstance(msg.msg, Status):
            return
        key = (msg.msg.store_id, msg.msg.device_id)
        last = self._last_seq.get(key)
        seq = msg.msg.seq
        if last is not None and seq > last + 1:
            self.stats.seq_gaps += seq - last - 1
            log.warning("%s/%s: seq jumped %d -> %d (missing data)", *key, last, seq)
        if last is None or seq > last:
            self._last_seq[key] = seq

    def write(self, batch: list[RawMessage], stop: threading.Event | None = None) -> BatchResult:
        """Validate and commit; retries storage outages until it succeeds or `stop` is set."""
        t0 = time.perf_counter()
        good: list[Received] = []
        dead: list[DeadLetter] = []
        for raw in batch:
            try:
                msg = validate(raw.topic, raw.payload)
            except WireError as exc:
                dead.append(self._dead(raw, exc.reason))
                continue
            except Exception as exc:  # a validator bug must not stop ingest either
                log.exception("unexpected error validating a payload on %s", raw.topic)
                dead.append(self._dead(raw, f"unexpected {type(exc).__name__}: {exc}"))
                continue
            good.append(Received(msg, raw.received_ts, raw.payload))
        result = self._commit(good, dead, stop)
        for r in good:
            self._track_seq(r)
        s = self.stats
        s.received += len(batch)
        s.stored += result.stored_total
        s.duplicates += result.duplicates
        s.dead_letters += result.dead_letters
        s.statuses += result.statuses
        for kind, n in result.stored.items():
            s.by_kind[kind] = s.by_kind.get(kind, 0) + n
        s.batches += 1
        s.last_batch_ms = (time.perf_counter() - t0) * 1000
        self._dead_since_prune += result.dead_letters
        if self._dead_since_prune >= max(1, self.cfg.dead_letter_max_rows // 100):
            self._dead_since_prune = 0
            try:
                self.storage.prune_dead_letters(self.cfg.dead_letter_max_rows)
            except Exception as exc:  # the batch is committed: pruning can wait for the next
                log.warning("pruning dead letters failed: %s", exc)
        return result

    def _commit(
        self, good: list[Received], dead: list[DeadLetter], stop: threading.Event | None
    ) -> BatchResult:
        delay_s = 0.5
        while True:
            try:
                return self.storage.write_batch(good, dead)
            except Exception as exc:
                self.stats.storage_errors += 1
                if self._storage_alive():
                    # The database is fine, so some message in the batch is what it refuses.
                    log.warning("storage refused a batch (%s); isolating the culprit", exc)
                    return self._write_one_by_one(good, dead)
                log.error("storage unavailable (%s); retrying in %.1fs", exc, delay_s)
                if stop is not None and stop.wait(delay_s):
                    raise
                if stop is None:
                    time.sleep(delay_s)
                delay_s = min(delay_s * 2, 30.0)
                try:
                    self.storage.close()
                except Exception:  # a broken connection may fail to close; we replace it
                    log.debug("closing the broken storage failed", exc_info=True)
                try:
                    self.storage = self._reopen()
                except Exception as reopen_exc:
                    log.error("reopening storage failed: %s", reopen_exc)

    def _storage_alive(self) -> bool:
        try:
            self.storage.schema_version()
        except Exception:
            return False
        return True

    def _write_one_by_one(self, good: list[Received], dead: list[DeadLetter]) -> BatchResult:
        total = self.storage.write_batch([], dead)
        for r in good:
            try:
                res = self.storage.write_batch([r])
            except Exception as exc:
                payload = r.raw if r.raw is not None else r.msg.model_dump_json().encode()
                raw = RawMessage(
                    f"footfall/v1/{r.msg.store_id}/{r.msg.device_id}/{r.msg.kind}",
                    payload,
                    r.received_ts,
                )
                res = self.storage.write_batch([], [self._dead(raw, f"storage refused: {exc}")])
            for kind, n in res.stored.items():
                total.stored[kind] = total.stored.get(kind, 0) + n
            total.duplicates += res.duplicates
            total.statuses += res.statuses
            total.dead_letters += res.dead_letters
        return total


class Ingest:
    """One central ingest instance: MQTT subscriber (network thread) + batch writer thread."""

    def __init__(
        self, cfg: CentralConfig, storage: Storage | None = None, collect_garbage: bool = False
    ) -> None:
        """`collect_garbage`: the process runs with the cyclic GC disabled (`serve` does, see
        `central.cli`), and the writer collects between batches, when little is alive."""
        self.cfg = cfg
        self._collect_garbage = collect_garbage
        self._last_full_gc = time.monotonic()
        storage = storage or open_storage(cfg.storage.url)
        self.writer = BatchWriter(storage, cfg.ingest, lambda: open_storage(cfg.storage.url))
        # Deliveries (one per socket read) waiting for the writer; bounded by messages.
        self._pending: deque[Delivery] = deque()
        self._pending_messages = 0
        self._carry: list[RawMessage] = []  # taken from the queue, not yet in a batch
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="central-writer", daemon=True)
        self.connected = threading.Event()
        self.client = MqttSubscriber(
            cfg.mqtt,
            subscriptions(cfg.mqtt),
            self._on_delivery,
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
            accepting=self._accepting,
        )

    @property
    def connections(self) -> int:
        """Successful connections so far (reconnects included)."""
        return self.client.connection

    @property
    def stats(self) -> IngestStats:
        s = self.writer.stats
        s.connections = self.client.connection
        s.protocol_errors = self.client.protocol_errors
        return s

    @property
    def storage(self) -> Storage:
        return self.writer.storage

    # --- subscriber callbacks (network thread) ------------------------------------------------
    def _on_connect(self, connection: int) -> None:
        m = self.cfg.mqtt
        log.info(
            "connected to %s:%s (MQTT %s), %s",
            m.host,
            m.port,
            m.protocol,
            f"group {m.group}" if m.shared_subscription else "plain subscription",
        )
        self.connected.set()

    def _on_disconnect(self, reason: str) -> None:
        self.connected.clear()

    def _on_delivery(self, delivery: Delivery) -> None:
        if self._stop.is_set():
            # stop() drains the queue: under a steady stream new deliveries would keep it from
            # ever emptying. Not acknowledged, so the broker redelivers them to the next session.
            return
        with self._cond:
            self._pending.append(delivery)
            self._pending_messages += len(delivery.topics)
            self._cond.notify_all()

    def _accepting(self) -> bool:
        # Back-pressure: while the queue is full the subscriber stops reading (it still pings),
        # so the broker keeps the backlog (it is unacknowledged) instead of our memory.
        return self._pending_messages < self.cfg.ingest.queue_max_messages

    # --- writer thread ------------------------------------------------------------------------
    def _take(self, timeout_s: float) -> Delivery | None:
        with self._cond:
            if not self._pending and timeout_s > 0:
                self._cond.wait(timeout_s)
            if not self._pending:
                return None
            was_full = not self._accepting()
            d = self._pending.popleft()
            self._pending_messages -= len(d.topics)
            if was_full and self._accepting():
                self.client.resume()
            return d

    def _next_batch(self) -> list[RawMessage]:
        """Up to batch_max_messages; what one read delivered beyond that waits for the next."""
        limit = self.cfg.ingest.batch_max_messages
        batch, self._carry = self._carry, []
        if not batch:
            first = self._take(0.2)
            if first is None:
                return []
            batch = _raw(first)
        deadline = time.monotonic() + self.cfg.ingest.batch_max_wait_s
        while len(batch) < limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # A short idle gap ends the batch early: latency stays low at low rates.
            more = self._take(min(remaining, 0.01))
            if more is None:
                break
            batch += _raw(more)
        if len(batch) > limit:
            batch, self._carry = batch[:limit], batch[limit:]
        return batch

    def _run(self) -> None:
        last_stats = time.monotonic()
        while not (self._stop.is_set() and self.pending() == 0):
            batch = self._next_batch()
            while batch:
                try:
                    self.writer.write(batch, self._stop)
                except Exception:
                    # Only an outage gets here (refused rows are isolated by the writer).
                    # Unacknowledged messages are redelivered only after a reconnect, so
                    # keep retrying this batch rather than dropping it.
                    log.exception("batch of %d not committed; retrying", len(batch))
                    if self._stop.wait(1.0):
                        break  # stopping: left unacknowledged, the broker redelivers later
                    continue
                self._ack(batch)
                break
            if batch and self._collect_garbage:
                self._collect()
            if time.monotonic() - last_stats >= self.cfg.ingest.stats_interval_s:
                last_stats = time.monotonic()
                log.info("ingest stats %s", self.stats.as_dict())

    def _collect(self) -> None:
        # The batch is freed by now, so the young generations are small and a collection is
        # cheap; the old generation (caches, connections) is walked only every few minutes.
        if time.monotonic() - self._last_full_gc >= FULL_GC_INTERVAL_S:
            self._last_full_gc = time.monotonic()
            gc.collect()
        else:
            gc.collect(1)

    def _ack(self, batch: list[RawMessage]) -> None:
        # After a reconnect the broker redelivers what was not acknowledged (the msg_id dedupe
        # absorbs it); an old mid must not ack a new message, so acks go per connection.
        by_connection: dict[int, list[int]] = {}
        for raw in batch:
            if raw.mid:
                by_connection.setdefault(raw.connection, []).append(raw.mid)
        for connection, mids in by_connection.items():
            self.client.ack(mids, connection)

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> Ingest:
        self._thread.start()
        self.client.start()
        return self

    def pending(self) -> int:
        """Messages received and not yet in a batch."""
        return self._pending_messages + len(self._carry)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Commit what was received, acknowledge it, then disconnect."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout_s)
        self.client.stop()
        self.writer.storage.close()
        log.info("ingest stopped: %s", self.stats.as_dict())


def _raw(d: Delivery) -> list[RawMessage]:
    ts, conn = d.received_ts, d.connection
    return [
        RawMessage(t, p, ts, mid, conn)
        for t, p, mid in zip(d.topics, d.payloads, d.mids, strict=True)
    ]


__all__ = [
    "STATUS_FILTER",
    "BatchWriter",
    "Ingest",
    "IngestStats",
    "RawMessage",
    "subscriptions",
    "validate",
]
