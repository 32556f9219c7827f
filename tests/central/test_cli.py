"""`footfall-central` commands end to end: serve (a real process, SIGTERM) and report."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central.cli import main
from central.storage import open_storage
from edge_agent import wire
from tests.central.factory import summary
from tests.central.test_report import seed_ny, utc

REPO = Path(__file__).resolve().parents[2]


def test_report_json_shape_and_line_totals(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_storage(storage_url) as st:
        seed_ny(st)
    rc = main(["report", "--store", "s1", "--from", "2026-11-01", "--to", "2026-11-01",
               "--db", storage_url, "--json"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # exactly one JSON document
    doc = json.loads(out)
    for key in ("store", "from", "to", "timezone", "footfall", "conversion", "dwell",
                "transitions", "stock", "data_quality"):  # fmt: skip
        assert key in doc
    assert doc["footfall"]["lines"]["door/main"] == {"in": 65, "out": 61}
    assert doc["footfall"]["total_in"] == 66
    rc = main(["report", "--store", "s1", "--from", "2026-11-01", "--to", "2026-11-01",
               "--db", storage_url, "--csv"])  # fmt: skip
    assert rc == 0
    assert capsys.readouterr().out.startswith("hour,in,out")
    rc = main(["report", "--store", "s1", "--from", "2026-11-02", "--to", "2026-11-01",
               "--db", storage_url])  # fmt: skip
    assert rc == 2


def test_config_errors_exit_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "central.yaml"
    cfg.write_text("mqtt:\n  port: 99999\n  bogus: 1\nstorage:\n  url: mysql://x\n")
    rc = main(["serve", "--config", str(cfg)])
    err = capsys.readouterr().err
    assert rc == 78
    assert "mqtt.port" in err and "mqtt.bogus" in err and "storage.url" in err


@pytest.mark.broker
def test_serve_ingests_until_sigterm(mosquitto, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite://{tmp_path / 'c.db'}"
    cfg = tmp_path / "central.yaml"
    cfg.write_text(f"mqtt:\n  client_id: cli-test\ningest:\n  batch_max_wait_s: 0.05\n"
                   f"storage:\n  url: {db}\n")  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from central.cli import main; sys.exit(main())",
         "serve", "--config", str(cfg), "--broker", f"127.0.0.1:{mosquitto.port}", "--json"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        deadline = time.monotonic() + 30
        stored = 0
        seq = 0
        # Publish until the server has subscribed and stored something (it may start slowly).
        while stored < 3 and time.monotonic() < deadline:
            seq += 1
            s = summary(seq, utc(2026, 5, 4, 9, seq % 60), lines={"c/l": (1, 0)})
            pub.publish(wire.topic_for("s1", "d1", "summary"), wire.encode(s), qos=1)
            time.sleep(0.2)
            if (tmp_path / "c.db").exists():
                with open_storage(db) as st:
                    stored = st.message_count("summary")
        assert stored >= 3
        pub.disconnect()
        pub.loop_stop()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    stats = json.loads(out)
    assert stats["stored"] >= 3
    assert "connected to 127.0.0.1" in err


@pytest.mark.broker
def test_serve_workers_split_the_stream_and_stop_together(mosquitto, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite://{tmp_path / 'c.db'}"
    log = tmp_path / "serve.log"
    with log.open("w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from central.cli import main; sys.exit(main())",
             "serve", "--db", db, "--broker", f"127.0.0.1:{mosquitto.port}", "--workers", "2",
             "--client-id", "cli-workers", "--json"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=err_file, text=True,
        )  # fmt: skip
    n = 400
    try:
        # Both workers must be subscribed before the burst, or one could get all of it.
        deadline = time.monotonic() + 60
        while log.read_text().count("connected to 127.0.0.1") < 2:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        time.sleep(0.5)
        pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        t0 = utc(2026, 5, 4, 9, 0)
        infos = [
            pub.publish(wire.topic_for("s1", "d1", "summary"),
                        wire.encode(summary(i, t0 + timedelta(minutes=i), lines={"c/l": (1, 0)})),
                        qos=1)
            for i in range(1, n + 1)
        ]  # fmt: skip
        for info in infos:
            info.wait_for_publish(30)
        pub.disconnect()
        pub.loop_stop()
        deadline = time.monotonic() + 60
        stored = 0
        while stored < n and time.monotonic() < deadline:
            time.sleep(0.2)
            with open_storage(db) as st:
                stored = st.message_count("summary")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    err = log.read_text()
    assert proc.returncode == 0, err
    stats = json.loads(out)
    assert stats["workers"] == 2
    assert stats["stored"] == n and stats["duplicates"] == 0
    assert all(k > 0 for k in stats["stored_by_worker"]), stats  # the group split the load
    assert "cli-workers-w2" in err  # the second worker logs under its own client id
    with open_storage(db) as st:
        assert st.message_count("summary") == n


def test_serve_workers_need_a_shared_subscription(tmp_path: Path) -> None:
    cfg = tmp_path / "central.yaml"
    cfg.write_text("mqtt:\n  protocol: '3.1.1'\n  shared_subscription: false\n"
                   "ingest:\n  workers: 2\n")  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from central.cli import main; sys.exit(main())",
         "serve", "--config", str(cfg), "--db", f"sqlite://{tmp_path / 'c.db'}"],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 78, proc.stderr
    assert "workers above 1 needs mqtt.shared_subscription" in proc.stderr
