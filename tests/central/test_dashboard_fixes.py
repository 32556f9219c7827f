"""`footfall-central dashboard` as a real process: SIGTERM stops it cleanly (exit 0, storage
closed)."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from central.storage import open_storage
from tests.central.factory import received, summary
from tests.mosquitto import free_port

CLI = Path(sys.executable).parent / "footfall-central"
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def _get(port: int, path: str) -> tuple[int, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        res = conn.getresponse()
        return res.status, json.loads(res.read())
    finally:
        conn.close()


def _wait_until_serving(proc: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            status, _ = _get(port, "/api/stores")
        except OSError:
            time.sleep(0.1)
            continue
        assert status == 200
        return
    raise AssertionError("dashboard did not start serving")


def test_dashboard_exits_0_on_sigterm_and_closes_storage(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    with open_storage(f"sqlite://{db}") as st:
        st.write_batch(
            received(
                *[summary(i + 1, T0 + timedelta(hours=i), minutes=60, lines={"c/door": (i, 0)})
                  for i in range(3)]
            )
        )  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [str(CLI), "dashboard", "--db", f"sqlite://{db}", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_until_serving(proc, port)
        status, doc = _get(port, "/api/footfall?store=s1&from=2026-05-04&to=2026-05-04")
        assert status == 200
        assert isinstance(doc, dict) and doc
        # The WAL file exists while the dashboard holds the database open.
        assert db.with_name("central.db-wal").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopping" in err
    # SQLite checkpoints and removes the WAL when its last connection closes: storage was
    # closed, not abandoned.
    assert not db.with_name("central.db-wal").exists()
