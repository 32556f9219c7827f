"""An event that cannot become a wire message is dropped and counted, never the step's others.

The aggregator closes an interval and moves past it in the same call that returns its summary:
if a later item of the same step raised, that summary existed nowhere else and was lost. Real
pieces throughout: a SQLite outbox file, the AggregatorWorker's step, the RFID stock engine.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edge_agent import wire
from edge_agent.app import Agent, AggregatorWorker
from edge_agent.config import AgentConfig
from edge_agent.outbox import Outbox
from edge_agent.sync import MqttSync
from edge_agent.workers import CameraBatch, Item, ReaderBatch
from rfid.events import ItemArrived, TagRead
from vision.events import CrossingEvent, ZoneOccupancy

GOOD_EPC = "3074257BF7194E4000001A85"
T0 = 1_800_000_000.0  # on a minute boundary


def config(tmp_path: Path, *, readers: bool) -> AgentConfig:
    doc: dict[str, Any] = {
        "store": {"id": "store-1", "timezone": "UTC"},
        "device": {"id": "dev-1"},
        "mqtt": {"host": "127.0.0.1", "port": 1},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "aggregation": {"interval_s": 60},
        "cameras": [
            {
                "id": "door",
                "source": str(tmp_path / "none"),
                "lines": [{"id": "entrance", "points": [[0, 10], [100, 10]]}],
                "zones": [{"id": "front", "polygon": [[0, 0], [50, 0], [50, 50]]}],
            }
        ],
    }
    if readers:
        doc["readers"] = [
            {
                "id": "shelf-a",
                "port": "/dev/null",
                "protocol": "chafon288",
                "antennas": {1: {"zone": "shelf-a1"}},
                "presence": {"appear_min_reads": 1, "appear_min_epochs": 1, "zone_dwell_s": 0},
            }
        ]
    return AgentConfig.model_validate(doc)


def worker(
    cfg: AgentConfig, ob: Outbox, queues: dict[str, queue.Queue[Item]], **kw: Any
) -> AggregatorWorker:
    sync = MqttSync(cfg.mqtt, cfg.store.id, cfg.device.id, ob)  # not started: only woken
    w = AggregatorWorker(cfg, queues, ob, sync, threading.Event(), **kw)
    w.setup()
    return w


def stored(ob: Outbox) -> list[Any]:
    return [wire.decode(r.payload, r.topic) for r in ob.pending(100)]


def crossings_in(msgs: list[Any]) -> int:
    return sum(ln.in_count for m in msgs if isinstance(m, wire.Summary) for ln in m.lines)


def test_a_bad_epc_does_not_cost_the_summary_closed_in_the_same_step(tmp_path: Path) -> None:
    """The review's reproducer: a crossing in the previous minute, the frame that closes that
    minute, and a tag whose 1-byte EPC the wire format refuses, all drained by one step."""
    cfg = config(tmp_path, readers=True)
    ob = Outbox(cfg.outbox.path)
    cq: queue.Queue[Item] = queue.Queue()
    rq: queue.Queue[Item] = queue.Queue()
    now = time.time()
    t0 = (now // 60) * 60 - 60  # the previous minute
    w = worker(cfg, ob, {"camera/door": cq, "reader/shelf-a": rq}, mode="wall", start_ts=t0)
    cq.put(CameraBatch("door", t0 + 5, [CrossingEvent("door", "entrance", "in", 1, t0 + 5, 1)]))
    cq.put(CameraBatch("door", now, [CrossingEvent("door", "entrance", "in", 2, now, 2)]))
    reads = [TagRead(epc, now, "shelf-a", 1) for epc in ("AB", GOOD_EPC)] * 3
    rq.put(ReaderBatch("shelf-a", now, reads, True))

    w.step()  # used to raise ValidationError, losing the closed minute for good

    msgs = stored(ob)
    closed = [m for m in msgs if isinstance(m, wire.Summary)]
    assert closed and closed[0].interval_start.timestamp() == t0
    assert crossings_in(closed) == 1  # the crossing of the closed minute
    # The good tag's arrival, drained in the same step, is stored too.
    stock = [m for m in msgs if isinstance(m, wire.StockEventMsg)]
    assert [(m.event_type, m.epc) for m in stock] == [("item_arrived", GOOD_EPC)]
    assert w.agg.invalid_messages == {"stock_event": 1, "summary": 0}
    assert not w.unsaved and not w.errors
    ob.close()


def test_the_dropped_count_is_in_the_daemons_status(tmp_path: Path) -> None:
    cfg = config(tmp_path, readers=True)
    agent = Agent(cfg, mode="wall", start_ts=T0)  # built, not started: nothing opens
    try:
        agg = agent.aggregator.agg
        agg.add(ItemArrived("AB", None, "shelf-a1", "shelf-a", T0 + 1))
        status = agent.health.status("online")
        assert status.extra["aggregator"]["invalid_messages"] == {"stock_event": 1, "summary": 0}
    finally:
        agent.outbox.close()


def test_a_summary_that_cannot_be_sent_is_dropped_and_the_intervals_go_on(tmp_path: Path) -> None:
    """A zone name the wire format refuses (vision reporting a zone the config does not name)
    made every step raise on the same interval forever; now that one summary is dropped."""
    cfg = config(tmp_path, readers=False)
    ob = Outbox(cfg.outbox.path)
    cq: queue.Queue[Item] = queue.Queue()
    w = worker(cfg, ob, {"camera/door": cq}, mode="events", start_ts=T0)
    bad = ZoneOccupancy("door", T0 + 1, {"front": 1, "no such zone!": 1})
    cq.put(CameraBatch("door", T0 + 1, [bad]))
    cq.put(CameraBatch("door", T0 + 61, [CrossingEvent("door", "entrance", "in", 1, T0 + 61, 1)]))
    cq.put(CameraBatch("door", T0 + 121, []))
    w.step()
    msgs = stored(ob)
    assert [m.interval_start.timestamp() for m in msgs] == [T0 + 60]
    assert crossings_in(msgs) == 1
    assert w.agg.invalid_messages == {"stock_event": 0, "summary": 1}
    assert not w.errors
    ob.close()


def test_summaries_closed_before_an_item_that_fails_are_still_stored(tmp_path: Path) -> None:
    """Any other failure on one item (here a malformed occupancy count from vision) is the
    worker's error to count and back off from, but what the step closed before it is kept."""
    cfg = config(tmp_path, readers=False)
    ob = Outbox(cfg.outbox.path)
    cq: queue.Queue[Item] = queue.Queue()
    w = worker(cfg, ob, {"camera/door": cq}, mode="events", start_ts=T0)
    cq.put(CameraBatch("door", T0 + 1, [CrossingEvent("door", "entrance", "in", 1, T0 + 1, 1)]))
    # An event of the next minute closes the first one.
    cq.put(CameraBatch("door", T0 + 61, [CrossingEvent("door", "entrance", "out", 2, T0 + 61, 2)]))
    broken = ZoneOccupancy("door", T0 + 62, {"front": None})  # type: ignore[dict-item]
    cq.put(CameraBatch("door", T0 + 62, [broken]))
    with pytest.raises(TypeError):
        w.step()
    msgs = stored(ob)
    assert [m.interval_start.timestamp() for m in msgs] == [T0]
    assert crossings_in(msgs) == 1
    ob.close()
