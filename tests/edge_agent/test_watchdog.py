"""WATCHDOG=1 is sent only while every worker's heartbeat is fresh (in-process agent)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import pytest

from edge_agent.app import Agent
from tests.edge_agent.helpers import agent_config
from tests.mosquitto import Mosquitto

pytestmark = pytest.mark.broker


def test_a_hung_worker_stops_the_watchdog(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.1)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # ping every 0.2 s
    agent = Agent(agent_config(tmp_path, port=mosquitto.port, cameras=[]))
    agent.heartbeat_max_age_s = 1.0
    release = threading.Event()
    real_step = agent.aggregator.step
    hang = threading.Event()

    def step() -> None:
        if hang.is_set():
            release.wait()  # a worker stuck in a call that never returns
        real_step()

    agent.aggregator.step = step  # type: ignore[method-assign]
    supervisor = threading.Thread(target=agent.supervise, daemon=True)

    def pings(seconds: float) -> int:
        n = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                n += sock.recv(4096).decode().splitlines().count("WATCHDOG=1")
        return n

    try:
        agent.start()
        supervisor.start()
        assert pings(1.5) >= 3
        hang.set()
        time.sleep(1.5)  # the aggregator's heartbeat goes stale
        assert not agent.all_fresh()
        pings(0.3)  # discard pings queued before the heartbeat went stale
        assert pings(1.5) == 0, "no WATCHDOG=1 while a worker hangs: systemd would restart us"
        hang.clear()
        release.set()
        time.sleep(0.5)
        assert pings(1.5) >= 3
    finally:
        release.set()
        agent.stop_requested.set()
        supervisor.join(5)
        agent.stop(drain_timeout_s=1.0)
        sock.close()


def test_outbox_errors_do_not_end_the_supervisor(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The status reads the outbox and pruning writes it; a locked or damaged outbox made
    them raise out of the loop that feeds the watchdog."""
    import sqlite3

    import edge_agent.app as app

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.1)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.setattr(app, "PRUNE_EVERY_S", 0.2)
    cfg = agent_config(tmp_path, port=mosquitto.port, cameras=[])
    cfg.health.status_interval_s = 0.2
    agent = Agent(cfg)

    def broken(*args: object, **kwargs: object) -> int:
        raise sqlite3.DatabaseError("database disk image is malformed")

    supervisor = threading.Thread(target=agent.supervise, daemon=True)
    try:
        agent.start()  # builds the first status itself: broken only from here on
        monkeypatch.setattr(agent.outbox, "prune_age", broken)
        monkeypatch.setattr(agent.health, "status", broken)
        supervisor.start()
        time.sleep(7.0)  # the first prune comes 5 s after the start
        assert supervisor.is_alive()
        assert agent.supervisor_errors >= 3
        pings = 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                pings += sock.recv(4096).decode().splitlines().count("WATCHDOG=1")
        assert pings >= 2  # the workers are fine: the watchdog is still fed
    finally:
        agent.stop_requested.set()
        if supervisor.is_alive():
            supervisor.join(5)
        agent.stop(drain_timeout_s=1.0)
        sock.close()
