"""The in-process Agent's stop path: what a batch run reports as delivered."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_agent import wire
from edge_agent.app import Agent
from edge_agent.outbox import Outbox
from tests.edge_agent.helpers import agent_config, wait_until
from tests.mosquitto import Mosquitto

pytestmark = pytest.mark.broker


def earlier_summary(n: int) -> wire.Summary:
    t = 1_800_000_000 + 60 * n
    return wire.Summary(
        store_id="store-1",
        device_id="dev-1",
        seq=1,
        interval_start=datetime.fromtimestamp(t, UTC),
        interval_end=datetime.fromtimestamp(t + 60, UTC),
        timezone="UTC",
    )


def test_undelivered_counts_only_this_runs_messages(tmp_path: Path, mosquitto: Mosquitto) -> None:
    mosquitto.stop()  # nothing can be delivered
    cfg = agent_config(tmp_path, port=mosquitto.port, interval_s=1, cameras=[])
    with Outbox(cfg.outbox.path) as ob:
        backlog = len(ob.append([earlier_summary(i) for i in range(40)]))
    agent = Agent(cfg)
    agent.start()
    assert wait_until(lambda: agent.aggregator.messages >= 2, 15)
    agent.stop_requested.set()
    assert not agent.stop(drain_timeout_s=0.5, wait_for_broker=True)
    doc = agent.run_summary()
    assert doc["messages"] == agent.aggregator.messages >= 3  # + the flushed partial interval
    assert doc["delivered"] == 0
    assert agent.undelivered == doc["messages"], "the earlier run's backlog is not this run's"
    with Outbox(cfg.outbox.path) as ob:
        assert ob.depth == backlog + doc["messages"]


def test_a_batch_run_that_delivered_everything_reports_it(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    cfg = agent_config(tmp_path, port=mosquitto.port, interval_s=1, cameras=[])
    agent = Agent(cfg)
    agent.start()
    assert wait_until(lambda: agent.aggregator.messages >= 2, 15)
    time.sleep(0.2)
    assert agent.stop(drain_timeout_s=10.0, wait_for_broker=True)
    doc = agent.run_summary()
    assert doc["delivered"] == doc["messages"] >= 3
