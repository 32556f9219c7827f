"""A reader whose worker stops delivering (hung, or backing off after errors) freezes its
zones: the stock engine must not read the silence as every item leaving the shelf.

In-process agent, real mosquitto, a simulated Chafon 288 on a real pty, the real stock engine.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_agent import wire
from edge_agent.app import Agent
from edge_agent.config import AgentConfig
from edge_agent.demo.rfid_sim import SimulatedChafon288, make_tags
from edge_agent.workers import ReaderWorker, reader_silent_after_s
from tests.edge_agent.helpers import Central, wait_until
from tests.mosquitto import Mosquitto

pytestmark = pytest.mark.broker
GTIN = "80614141123458"
# Removal needs a tag unread for min_absence_s (3 s here); the hung worker is flagged sooner.
PRESENCE = {
    "epoch_s": 0.5,
    "absence_timeout_s": 3,
    "min_absence_s": 3,
    "stale_after_s": 5,
    "low_stock_hold_s": 0,
}


def config(tmp_path: Path, port: int, tty: str) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "store": {"id": "store-1", "timezone": "UTC"},
            "device": {"id": "dev-1"},
            "mqtt": {"host": "127.0.0.1", "port": port, "keepalive_s": 5},
            "outbox": {"path": str(tmp_path / "outbox.db")},
            "aggregation": {"interval_s": 60},
            "readers": [
                {
                    "id": "shelf",
                    "port": tty,
                    "protocol": "chafon288",
                    "poll_interval_s": 0.1,
                    "antennas": {1: {"zone": "shelf-a"}},
                    "presence": PRESENCE,
                }
            ],
            "products": {GTIN: {"name": "Trail shoe", "low_stock_threshold": 1}},
        }
    )


def test_the_silence_bound_follows_the_poll_interval_and_stale_after() -> None:
    test_cfg = config(Path("/nonexistent"), 1883, "/dev/null").readers[0]
    relaxed = test_cfg.presence.model_copy(update={"min_absence_s": 10.0})
    cfg = test_cfg.model_copy(update={"presence": relaxed})
    assert reader_silent_after_s(cfg) == pytest.approx(4 * (ReaderWorker.BATCH_EVERY_S + 0.1))
    slow = cfg.model_copy(update={"poll_interval_s": 5.0})
    assert reader_silent_after_s(slow) == cfg.presence.stale_after_s
    # A short min_absence_s (3 s in this file's config) pulls the bound under itself, so a
    # hung worker is flagged before any of its tags could be removed.
    assert reader_silent_after_s(test_cfg) == PRESENCE["min_absence_s"] / 2


def test_a_hung_reader_worker_does_not_empty_the_shelf(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    tags = make_tags(
        [(GTIN, serial) for serial in range(1, 4)],
        {"shelf-a": 1},
        ["shelf-a"] * 3,
        7,
        np.random.default_rng(3),
    )
    sim = SimulatedChafon288(tags, seed=5, read_rate=1.0)
    sim_stop = threading.Event()

    def serve() -> None:
        while not sim_stop.is_set():
            sim.service()
            time.sleep(0.01)

    threading.Thread(target=serve, daemon=True).start()
    central = Central(mosquitto.port).start()
    agent = Agent(config(tmp_path, mosquitto.port, sim.port))
    reader = next(w for w in agent.sources if isinstance(w, ReaderWorker))
    hang = threading.Event()
    release = threading.Event()
    real_step = reader.step

    def step() -> None:
        if hang.is_set():
            release.wait()  # stuck in a call that never returns (or backing off for 30 s)
        real_step()

    reader.step = step  # type: ignore[method-assign]

    def stock(kind: str) -> list[wire.StockEventMsg]:
        return [
            m
            for m in list(central.stored.values())
            if isinstance(m, wire.StockEventMsg) and m.event_type == kind
        ]

    def zone_healthy() -> bool:
        return bool(agent.aggregator.engine.zone_healthy("shelf-a", time.time()))

    try:
        agent.start()
        assert wait_until(lambda: len(stock("item_arrived")) == 3, 30)
        hang.set()
        assert wait_until(lambda: not zone_healthy(), 10), "the silent reader was flagged"
        assert agent.aggregator.silent_readers == {"shelf"}
        # Long past every tag's removal window (min_absence_s = 3 s): nothing was removed.
        time.sleep(3 * PRESENCE["min_absence_s"])
        assert agent.aggregator.engine.present_items().keys() == {t.epc_hex for t in tags}
        hang.clear()
        release.set()
        assert wait_until(zone_healthy, 10), "healthy again once batches flow"
        assert agent.aggregator.silent_readers == set()
        # After a full absence window of healthy reads the engine still works: a real
        # removal is reported.
        time.sleep(PRESENCE["absence_timeout_s"] + 1)
        assert agent.aggregator.engine.present_items().keys() == {t.epc_hex for t in tags}
        sim.remove(tags[0].epc_hex)
        assert wait_until(lambda: len(stock("item_removed")) == 1, 20)
        assert stock("item_removed")[0].epc == tags[0].epc_hex
        assert not stock("stock_out")
    finally:
        release.set()
        agent.stop_requested.set()
        agent.stop(drain_timeout_s=2.0)
        sim_stop.set()
        sim.close()
        central.stop()
