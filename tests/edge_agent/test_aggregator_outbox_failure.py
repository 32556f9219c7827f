"""A failing outbox append (disk full) must not lose the summaries the aggregator closed.

The disk is made full for real: SQLite's max_page_count caps the outbox's database at its
current size, so an append that needs a new page fails with "database or disk is full",
exactly as on a full SD card. The camera has many lines with high-entropy ids so that every
summary needs a page of its own (an overflow page), which makes the failure certain.
"""

from __future__ import annotations

import queue
import random
import sqlite3
import string
import threading
from pathlib import Path

import pytest

from edge_agent import wire
from edge_agent.app import CHECKPOINT_KEY, AggregatorWorker
from edge_agent.outbox import Outbox
from edge_agent.sync import MqttSync
from edge_agent.workers import CameraBatch, Item
from tests.edge_agent.helpers import agent_config
from vision.events import CrossingEvent

T0 = 1_800_000_000.0  # on a minute boundary
SQLITE_MAX_PAGES = 1_073_741_823


def line_ids(n: int) -> list[str]:
    rng = random.Random(7)
    return [
        "l" + "".join(rng.choices(string.ascii_letters + string.digits, k=40)) for _ in range(n)
    ]


def set_disk_full(ob: Outbox, full: bool) -> None:
    # The outbox's own connection: max_page_count is a per-connection limit.
    with ob._lock:
        pages = ob._db.execute("PRAGMA page_count").fetchone()[0]
        ob._db.execute(f"PRAGMA max_page_count = {pages if full else SQLITE_MAX_PAGES}")


def crossing(line: str, direction: str, ts: float) -> CrossingEvent:
    return CrossingEvent("door", line, direction, 1, ts, int(ts - T0))  # type: ignore[arg-type]


def test_summaries_closed_while_the_disk_is_full_are_kept_and_stored_later(
    tmp_path: Path,
) -> None:
    lines = line_ids(150)
    cam = {
        "id": "door",
        "source": str(tmp_path / "none"),
        "lines": [{"id": ln, "points": [[0, 10], [100, 10]]} for ln in lines],
    }
    cfg = agent_config(tmp_path, interval_s=60, cameras=[cam])
    ob = Outbox(cfg.outbox.path)
    sync = MqttSync(cfg.mqtt, cfg.store.id, cfg.device.id, ob)  # not started: only woken
    q: queue.Queue[Item] = queue.Queue()
    worker = AggregatorWorker(
        cfg, {"camera/door": q}, ob, sync, threading.Event(), mode="events", start_ts=T0
    )
    worker.setup()
    set_disk_full(ob, True)
    q.put(CameraBatch("door", T0 + 1, [crossing(lines[0], "in", T0 + 1)]))
    q.put(CameraBatch("door", T0 + 61, []))  # the first interval is over
    with pytest.raises(sqlite3.OperationalError, match="full"):
        worker.step()
    assert len(worker.unsaved) == 1 and worker.append_failures == 1
    # Still full: the kept summary is retried first, and nothing more is drained meanwhile.
    q.put(CameraBatch("door", T0 + 62, [crossing(lines[0], "out", T0 + 62)]))
    with pytest.raises(sqlite3.OperationalError, match="full"):
        worker.step()
    assert worker.append_failures == 2 and q.qsize() == 1
    assert ob.depth == 0
    set_disk_full(ob, False)  # space was freed
    worker.step()
    assert worker.unsaved == [] and q.qsize() == 0
    rows = ob.pending(10)
    assert len(rows) == 1
    first = wire.decode(rows[0].payload, rows[0].topic)
    assert isinstance(first, wire.Summary)
    assert first.interval_start.timestamp() == T0 and first.interval_end.timestamp() == T0 + 60
    counts = {ln.line_id: (ln.in_count, ln.out_count) for ln in first.lines}
    assert counts[lines[0]] == (1, 0), "the crossing counted while the disk was full"
    # The open interval (with the later crossing) is checkpointed with it.
    assert ob.get_state(CHECKPOINT_KEY) is not None
    worker.teardown()
    row = ob.pending(10)[-1]
    last = wire.decode(row.payload, row.topic)
    assert isinstance(last, wire.Summary)
    assert {ln.line_id: ln.out_count for ln in last.lines}[lines[0]] == 1
    ob.close()


def test_a_recovered_interval_is_stored_once_when_the_first_attempts_fail(
    tmp_path: Path,
) -> None:
    lines = line_ids(150)
    cam = {
        "id": "door",
        "source": str(tmp_path / "none"),
        "lines": [{"id": ln, "points": [[0, 10], [100, 10]]} for ln in lines],
    }
    cfg = agent_config(tmp_path, interval_s=60, cameras=[cam])
    ob = Outbox(cfg.outbox.path)
    sync = MqttSync(cfg.mqtt, cfg.store.id, cfg.device.id, ob)

    def worker() -> AggregatorWorker:
        q: queue.Queue[Item] = queue.Queue()
        return AggregatorWorker(
            cfg, {"camera/door": q}, ob, sync, threading.Event(), mode="events", start_ts=T0
        )

    # A run that was killed with a crossing in its open interval left this checkpoint.
    crashed = worker()
    crashed.setup()
    crashed.agg.add(crossing(lines[0], "in", T0 + 5))
    ob.set_state(CHECKPOINT_KEY, crashed.agg.checkpoint())
    restarted = worker()
    set_disk_full(ob, True)
    for _ in range(2):  # setup is retried by the worker loop
        with pytest.raises(sqlite3.OperationalError, match="full"):
            restarted.setup()
    set_disk_full(ob, False)
    restarted.setup()
    recovered = [wire.decode(r.payload, r.topic) for r in ob.pending(10)]
    assert len(recovered) == 1
    assert isinstance(recovered[0], wire.Summary)
    assert {ln.line_id: ln.in_count for ln in recovered[0].lines}[lines[0]] == 1
    ob.close()
