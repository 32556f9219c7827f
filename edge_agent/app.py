"""The Agent: builds the workers, starts them, supervises them and stops them in flow order.

Threads: one CameraWorker per camera, one ReaderWorker per reader, the AggregatorWorker (which
also owns the RFID stock engine, so zones spanning readers see one state), the sync worker and
paho's network thread; the main thread handles signals and sd_notify and builds the periodic
status message, which the sync thread publishes.

Stop (SIGTERM), within ``SHUTDOWN_BUDGET_S`` (the unit's TimeoutStopSec leaves margin):
sources first (close cameras and readers, their last zone visits are queued), then the
aggregator drains the queues and flushes the partial interval into the outbox together with
clearing its checkpoint, then the sync gets ``DRAIN_ON_STOP_S`` to deliver, publishes
``offline`` and disconnects, then the outbox is closed.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from typing import Any, Literal

from edge_agent import systemd, wire
from edge_agent.aggregate import Aggregator, summary_totals
from edge_agent.config import AgentConfig
from edge_agent.health import HealthReporter
from edge_agent.outbox import Outbox
from edge_agent.sync import MqttSync
from edge_agent.workers import (
    QUEUE_ITEMS,
    CameraBatch,
    CameraWorker,
    Item,
    ReaderBatch,
    ReaderWorker,
    SourceEnded,
    Worker,
    reader_silent_after_s,
)

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "aggregation.open_interval"
CHECKPOINT_EVERY_S = 1.0
SOURCES_STOP_S = 5.0
AGGREGATOR_STOP_S = 5.0
DRAIN_ON_STOP_S = 10.0
SHUTDOWN_BUDGET_S = SOURCES_STOP_S + AGGREGATOR_STOP_S + DRAIN_ON_STOP_S + 5.0  # 25 s
OPEN_WAIT_S = 20.0
HEARTBEAT_MAX_AGE_S = 30.0
PRUNE_EVERY_S = 300.0

ClockMode = Literal["wall", "events"]


class AggregatorWorker(Worker):
    """Drains the source queues into the Aggregator and commits messages to the outbox.

    ``wall`` mode closes intervals on the wall clock (live sources). ``events`` mode (file
    sources run as fast as they decode) closes them on the slowest camera's frame time, so a
    file is summarised as if it had been watched live from its start time.
    """

    kind = "aggregator"

    def __init__(
        self,
        cfg: AgentConfig,
        queues: dict[str, queue.Queue[Item]],
        outbox: Outbox,
        sync: MqttSync,
        stop: threading.Event,
        *,
        mode: ClockMode,
        start_ts: float,
    ) -> None:
        super().__init__("aggregator", stop)
        self.cfg = cfg
        self.queues = queues
        self.outbox = outbox
        self.sync = sync
        self.mode = mode
        self.agg = Aggregator(cfg, start_ts)
        self.engine: Any = None
        self.watermarks: dict[str, float] = {}
        self.live_cameras = {c.id for c in cfg.cameras}
        self.last_ts = start_ts
        self.totals: dict[str, Any] = {"lines": {}, "zones": {}}
        self.stock_events = 0
        self.messages = 0
        # This run's first stored seq: the outbox allocates seqs in order, so this run's
        # messages are exactly the seqs from here on (the run summary counts them in SQL).
        self.first_seq: int | None = None
        # Messages the aggregator has closed but the outbox failed to store (disk full, an I/O
        # error): the aggregator has moved on, so these are their only copy. Retried before
        # anything else is drained; bounded because nothing new is aggregated meanwhile.
        self.unsaved: list[wire.Summary | wire.StockEventMsg] = []
        self.append_failures = 0
        # When each reader's last batch arrived (monotonic), and the readers whose batches
        # stopped: the stock engine must not take a silent worker for an empty shelf.
        self.reader_seen: dict[str, float] = {}
        self.silent_readers: set[str] = set()
        self._reader_silent_after_s = {rc.id: reader_silent_after_s(rc) for rc in cfg.readers}
        self._last_checkpoint = 0.0

    def setup(self) -> None:
        if self.cfg.readers:
            from rfid.stock import StockEngine

            thresholds = {g: p.low_stock_threshold for g, p in self.cfg.products.items()}
            self.engine = StockEngine(self.cfg.readers, thresholds)
            started = time.monotonic()
            self.reader_seen = {rc.id: started for rc in self.cfg.readers}
        # A crashed run's checkpoint becomes the summary it owed, stored atomically with the
        # new checkpoint so it is never sent twice.
        # After a failed attempt the recovered summary is already among the unsaved messages:
        # recovering again would send that interval twice.
        recovered = [] if self.unsaved else self.agg.recover(self.outbox.get_state(CHECKPOINT_KEY))
        if recovered:
            log.info("recovered the open interval of the previous run")
        self._commit(list(recovered), force=True)
        self.state = "running"

    def _drain(
        self, msgs: list[wire.Summary | wire.StockEventMsg] | None = None
    ) -> list[wire.Summary | wire.StockEventMsg]:
        """Handle what the queues hold, appending to `msgs` as it goes: an item that raises
        leaves what was produced before it in the caller's list."""
        if msgs is None:
            msgs = []
        for q in self.queues.values():
            for _ in range(QUEUE_ITEMS):
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
                msgs.extend(self._handle(item))
        return msgs

    def _handle(self, item: Item) -> list[wire.Summary | wire.StockEventMsg]:
        out: list[wire.Summary | wire.StockEventMsg] = []
        if isinstance(item, CameraBatch):
            for ev in item.events:
                out.extend(self.agg.add(ev))
            if item.camera_id in self.live_cameras:
                self.watermarks[item.camera_id] = item.ts
            self.last_ts = max(self.last_ts, item.ts)
        elif isinstance(item, ReaderBatch) and self.engine is not None:
            self.reader_seen[item.reader_id] = time.monotonic()
            if item.reader_id in self.silent_readers:
                self.silent_readers.discard(item.reader_id)
                log.info("reader %s delivers batches again", item.reader_id)
            self.engine.set_reader_health(item.reader_id, item.healthy, item.ts, item.heard_ts)
            self.engine.ingest(item.reads)
        elif isinstance(item, SourceEnded):
            self.live_cameras.discard(item.source_id)
            self.watermarks.pop(item.source_id, None)
        return out

    def step(self) -> None:
        if self.unsaved:
            # Raises while the outbox still fails: the worker backs off (up to 30 s) and the
            # sources wait on their full queues, so what is unsaved cannot grow.
            self._commit([])
        msgs: list[wire.Summary | wire.StockEventMsg] = []
        try:
            self._drain(msgs)
            now = time.time()
            if self.engine is not None:
                self._flag_silent_readers(now)
                for ev in self.engine.tick(now):
                    msgs.extend(self.agg.add(ev))
            if self.mode == "wall":
                msgs.extend(self.agg.tick(now))
            elif self.live_cameras and set(self.watermarks) >= self.live_cameras:
                msgs.extend(self.agg.tick(min(self.watermarks.values())))
        except Exception:
            # One item failed (it is gone from its queue; the run loop counts the error and
            # backs off). The aggregator has moved past the intervals closed before it, so
            # their summaries exist only here.
            self._commit(msgs)
            raise
        self._commit(msgs)
        if not msgs:
            # Sources deliver at most a few batches per second; 0.25 s keeps interval ends
            # prompt and an idle daemon cheap.
            self.stop_event.wait(0.25)

    def _flag_silent_readers(self, now: float) -> None:
        """Mark unhealthy every reader whose batches stopped (after the queues were drained,
        so a batch that was merely waiting in its queue counts as arrived)."""
        mono = time.monotonic()
        for rid, seen in self.reader_seen.items():
            if rid in self.silent_readers or mono - seen <= self._reader_silent_after_s[rid]:
                continue
            self.silent_readers.add(rid)
            self.engine.set_reader_health(rid, False, now)
            log.warning(
                "reader %s: no batch for %.1f s; its zones are frozen until it delivers again",
                rid,
                mono - seen,
            )

    def _commit(self, msgs: list[wire.Summary | wire.StockEventMsg], force: bool = False) -> None:
        now = time.monotonic()
        msgs = [*self.unsaved, *msgs]
        if msgs:
            try:
                stored = self.outbox.append(msgs, {CHECKPOINT_KEY: self.agg.checkpoint()})
            except Exception as exc:
                self._keep_unsaved(msgs, exc)
                raise
            self.unsaved = []
            self._last_checkpoint = now
            self._account(stored)
            self.sync.wake()
        elif (self.agg.dirty or force) and now - self._last_checkpoint >= CHECKPOINT_EVERY_S:
            self.outbox.set_state(CHECKPOINT_KEY, self.agg.checkpoint())
            self._last_checkpoint = now

    def _keep_unsaved(self, msgs: list[wire.Summary | wire.StockEventMsg], exc: Exception) -> None:
        self.unsaved = msgs
        self.append_failures += 1
        self.agg.dirty = True  # the checkpoint taken for the failed transaction was not stored
        log.error(
            "outbox append failed (%s: %s): %d messages kept in memory, retried before anything"
            " new is aggregated",
            type(exc).__name__,
            exc,
            len(msgs),
        )

    def _account(self, stored: list[Any]) -> None:
        for m in stored:
            self.messages += 1
            if self.first_seq is None:
                self.first_seq = m.seq
            if isinstance(m, wire.StockEventMsg):
                self.stock_events += 1
            elif isinstance(m, wire.Summary):
                t = summary_totals([m])
                for key, d in t["lines"].items():
                    acc = self.totals["lines"].setdefault(key, {"in": 0, "out": 0})
                    acc["in"] += d["in"]
                    acc["out"] += d["out"]
                for key, d in t["zones"].items():
                    z = self.totals["zones"].setdefault(
                        key, {"visits": 0, "dwell_count": 0, "occupancy_max": 0}
                    )
                    z["visits"] += d["visits"]
                    z["dwell_count"] += d["dwell_count"]
                    z["occupancy_max"] = max(z["occupancy_max"], d["occupancy_max"])

    def teardown(self) -> None:
        """Sources are stopped: take what they queued last and flush the partial interval."""
        msgs = [*self.unsaved, *self._drain()]
        end = time.time() if self.mode == "wall" else self.last_ts
        msgs.extend(self.agg.flush(end))
        try:
            stored = self.outbox.append(msgs, {CHECKPOINT_KEY: None})
        except Exception as exc:
            # Nothing left to retry with: the last stored checkpoint is recovered at the next
            # start, so only what came after it is lost.
            self._keep_unsaved(msgs, exc)
            log.error("stopping with %d messages the outbox could not store", len(msgs))
            raise
        self.unsaved = []
        self._account(stored)
        self.sync.wake()
        self.state = "stopped"


class Agent:
    """The whole daemon for one device config."""

    def __init__(
        self,
        cfg: AgentConfig,
        *,
        mode: ClockMode = "wall",
        start_ts: float | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.cfg = cfg
        self.mode = mode
        self.start_ts = time.time() if start_ts is None else start_ts
        self.outbox = Outbox(cfg.outbox.path, cfg.outbox.max_bytes, cfg.outbox.max_age_s)
        self.sources_stop = threading.Event()
        self.agg_stop = threading.Event()
        self.stop_requested = stop or threading.Event()
        self.queues: dict[str, queue.Queue[Item]] = {}
        self.sources: list[CameraWorker | ReaderWorker] = []
        for cam in cfg.cameras:
            q: queue.Queue[Item] = queue.Queue(QUEUE_ITEMS)
            self.queues[f"camera/{cam.id}"] = q
            self.sources.append(CameraWorker(cam, q, self.sources_stop, self.start_ts))
        for rc in cfg.readers:
            q = queue.Queue(QUEUE_ITEMS)
            self.queues[f"reader/{rc.id}"] = q
            self.sources.append(ReaderWorker(rc, q, self.sources_stop))
        self.health = HealthReporter(
            cfg,
            self.outbox,
            self.sources,
            broker=lambda: self.sync.stats().as_dict(),
            extra=self._extra,
        )
        self.sync = MqttSync(
            cfg.mqtt, cfg.store.id, cfg.device.id, self.outbox, status_fn=self.health.status
        )
        self.aggregator = AggregatorWorker(
            cfg,
            self.queues,
            self.outbox,
            self.sync,
            self.agg_stop,
            mode=mode,
            start_ts=self.start_ts,
        )
        self.heartbeat_max_age_s = HEARTBEAT_MAX_AGE_S
        self.supervisor_errors = 0  # status or pruning failed on an outbox error
        self._stopped = False
        self.drained = False
        self.undelivered = 0
        self.dropped_in_run = 0

    def _extra(self) -> dict[str, Any]:
        return {
            "aggregator": {
                "state": self.aggregator.state,
                "errors": dict(self.aggregator.errors),
                "unknown_events": self.aggregator.agg.unknown_events,
                "invalid_messages": dict(self.aggregator.agg.invalid_messages),
                "unsaved_messages": len(self.aggregator.unsaved),
                "outbox_append_failures": self.aggregator.append_failures,
                "silent_readers": sorted(self.aggregator.silent_readers),
            },
            "queues": {k: q.qsize() for k, q in self.queues.items()},
            "supervisor_errors": self.supervisor_errors,
        }

    @property
    def workers(self) -> list[Worker]:
        return [*self.sources, self.aggregator]

    def start(self) -> None:
        self.sync.start()
        self.aggregator.start()
        for w in self.sources:
            w.start()
        deadline = time.monotonic() + OPEN_WAIT_S
        for w in self.sources:
            while not w.opened.wait(0.1):
                if self.stop_requested.is_set() or time.monotonic() > deadline:
                    break
        status = self.health.status("online")
        systemd.ready(HealthReporter.one_line(status))
        log.info("started: %s", HealthReporter.one_line(status))

    def all_fresh(self) -> bool:
        max_age = self.heartbeat_max_age_s
        fresh = all(w.fresh(max_age) for w in self.workers)
        sync_fresh = time.monotonic() - self.sync.heartbeat <= max_age
        return fresh and sync_fresh

    def sources_ended(self) -> bool:
        return all(w.ended for w in self.sources if isinstance(w, CameraWorker))

    def supervise(self, until_sources_end: bool = False) -> None:
        """The main thread's loop: watchdog, status, pruning; returns when asked to stop."""
        wd = systemd.watchdog_interval_s()
        next_wd = 0.0
        next_status = time.monotonic() + self.cfg.health.status_interval_s
        next_prune = time.monotonic() + 5.0
        while not self.stop_requested.is_set():
            now = time.monotonic()
            if wd is not None and now >= next_wd:
                if self.all_fresh():
                    systemd.watchdog()
                else:
                    stale = [w.name for w in self.workers if not w.fresh(self.heartbeat_max_age_s)]
                    log.error("not feeding the watchdog: stale workers %s", stale)
                next_wd = now + wd / 2
            # The status reads the outbox and pruning writes it: an outbox error (a locked or
            # damaged file) is counted and retried next time, and must not end this loop,
            # which is what feeds the watchdog.
            if now >= next_status:
                next_status = now + self.cfg.health.status_interval_s
                try:
                    status = self.health.status("online")
                except sqlite3.Error as exc:
                    self.supervisor_errors += 1
                    log.error("health status not built (outbox error): %s", exc)
                else:
                    self.sync.publish_status(status)
                    line = HealthReporter.one_line(status)
                    systemd.status(line)
                    log.info("health: %s", line)
            if now >= next_prune:
                next_prune = now + PRUNE_EVERY_S
                try:
                    dropped = self.outbox.prune_age()
                except sqlite3.Error as exc:
                    self.supervisor_errors += 1
                    log.error("outbox not pruned: %s", exc)
                    dropped = 0
                if dropped:
                    log.warning(
                        "dropped %d messages older than %.0f s", dropped, self.cfg.outbox.max_age_s
                    )
            if until_sources_end and self.sources_ended():
                return
            self.stop_requested.wait(0.5 if wd is None else min(0.5, wd / 4))

    def stop(self, drain_timeout_s: float = DRAIN_ON_STOP_S, wait_for_broker: bool = False) -> bool:
        """Stop in flow order within the budget; True when the outbox was fully delivered.

        `wait_for_broker` is the batch run (`--until-sources-end`): only then is what this run
        left undelivered counted, for run_summary(). A service stop on SIGTERM counts nothing:
        its backlog can be the whole outbox cap, and the stop must stay within TimeoutStopSec.
        """
        if self._stopped:
            return self.drained
        self._stopped = True
        systemd.stopping("stopping: flushing counts and delivering")
        t0 = time.monotonic()
        self.sources_stop.set()
        for w in self.sources:
            w.join(max(0.1, SOURCES_STOP_S - (time.monotonic() - t0)))
            if w.is_alive():
                log.error("%s did not stop in time", w.name)
        self.agg_stop.set()
        self.aggregator.join(AGGREGATOR_STOP_S)
        if self.aggregator.is_alive():
            log.error("the aggregator did not stop in time; its open interval stays checkpointed")
        drained = self.sync.stop(drain_timeout_s, wait_for_broker=wait_for_broker)
        first_seq = self.aggregator.first_seq
        if wait_for_broker and not drained and first_seq is not None:
            # A COUNT on the seq index: the backlog's payloads are never loaded.
            self.undelivered = self.outbox.count_pending(min_seq=first_seq)
        if wait_for_broker:
            self.dropped_in_run = self.outbox.dropped_this_run()
        self.drained = drained
        self.outbox.close()
        log.info(
            "stopped in %.1f s (%s)",
            time.monotonic() - t0,
            "all delivered" if drained else "undelivered messages kept in the outbox",
        )
        return drained

    def run_summary(self) -> dict[str, Any]:
        """The `--until-sources-end` report (call after stop())."""
        return {
            "lines": self.aggregator.totals["lines"],
            "zones": self.aggregator.totals["zones"],
            "stock_events": self.aggregator.stock_events,
            "messages": self.aggregator.messages,
            "delivered": max(0, self.aggregator.messages - self.undelivered - self.dropped_in_run),
        }


__all__ = ["CHECKPOINT_KEY", "SHUTDOWN_BUDGET_S", "Agent", "AggregatorWorker"]
