"""Edge outbox and MQTT sync benchmark (BENCHMARKS.md, "Edge daemon: outbox and MQTT sync").

Measures, each as the median of --runs runs:
  * outbox append rate: one message per transaction (the worst case: one fsync each) and
    batches of 10 and 100 (how the aggregator commits an interval's messages);
  * drain rate: a filled outbox delivered to a local mosquitto by MqttSync (QoS 1, PUBACKs);
  * bytes per summary for a 4-camera device (2 lines + 3 zones each, with dwell statistics), and
    how many days of one-minute summaries fit under the default outbox cap;
  * idle CPU of `footfall-agent run` with no cameras (utime+stime from /proc/<pid>/stat).

Usage: .venv/bin/python bench/outbox_speed.py [--runs 3] [--messages 5000] [--idle-s 60] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge_agent import wire  # noqa: E402
from edge_agent.aggregate import Aggregator  # noqa: E402
from edge_agent.config import AgentConfig, MqttConfig, OutboxConfig  # noqa: E402
from edge_agent.outbox import Outbox, stored_bytes  # noqa: E402
from edge_agent.sync import MqttSync  # noqa: E402
from tests.mosquitto import Mosquitto  # noqa: E402
from vision.events import CrossingEvent, ZoneOccupancy, ZoneVisit  # noqa: E402


def four_camera_config() -> AgentConfig:
    cams = []
    for c in range(4):
        cams.append(
            {
                "id": f"cam-{c}",
                "source": f"/dev/video{c}",
                "lines": [
                    {"id": f"line-{i}", "points": [[0, 100 * i + 50], [640, 100 * i + 50]]}
                    for i in range(2)
                ],
                "zones": [
                    {"id": f"zone-{z}", "polygon": [[0, 0], [100, 0], [100, 100]]} for z in range(3)
                ],
            }
        )
    readers = [
        {
            "id": f"reader-{r}",
            "port": f"/dev/ttyUSB{r}",
            "protocol": "chafon288",
            "antennas": {1: {"zone": f"shelf-{r}"}},
        }
        for r in range(4)
    ]
    return AgentConfig.model_validate(
        {
            "store": {"id": "store-0042", "timezone": "Europe/Paris"},
            "device": {"id": "pi-01"},
            "cameras": cams,
            "readers": readers,
        }
    )


def busy_summary(cfg: AgentConfig, t0: float) -> wire.Summary:
    """A one-minute summary where every line and zone saw traffic (the larger case)."""
    agg = Aggregator(cfg, t0)
    for cam in cfg.cameras:
        for k, line in enumerate(cam.lines):
            for i in range(5 + k):
                agg.add(CrossingEvent(cam.id, line.id, "in" if i % 3 else "out", i, t0 + i, i))
        for f in range(60):
            agg.add(ZoneOccupancy(cam.id, t0 + f, {z.id: (f // 7) % 4 for z in cam.zones}))
        for z in cam.zones:
            for d in (3.5, 12.25, 48.0, 95.5):
                agg.add(ZoneVisit(cam.id, z.id, 1, t0 + 59 - d, t0 + 59))
    return agg.tick(t0 + 60)[0]


def distinct(msg: wire.Summary, n: int) -> list[wire.Summary]:
    """n copies with their own msg_id (the outbox refuses a msg_id twice)."""
    return [msg.model_copy(update={"msg_id": uuid.uuid4().hex}) for _ in range(n)]


def bench_append(n: int, batch: int, tmp: Path) -> float:
    cfg = four_camera_config()
    msg = busy_summary(cfg, datetime(2026, 11, 21, 14, 0, tzinfo=UTC).timestamp())
    msgs = distinct(msg, n)
    db = tmp / f"append-{batch}-{time.monotonic_ns()}.db"
    ob = Outbox(db, max_bytes=1 << 40)
    t = time.perf_counter()
    for i in range(n // batch):
        ob.append(msgs[i * batch : (i + 1) * batch])
    rate = (n // batch) * batch / (time.perf_counter() - t)
    ob.close()
    for f in tmp.glob(db.name + "*"):
        f.unlink()
    return rate


def bench_drain(n: int, tmp: Path, broker: Mosquitto) -> float:
    cfg = four_camera_config()
    msg = busy_summary(cfg, datetime(2026, 11, 21, 14, 0, tzinfo=UTC).timestamp())
    db = tmp / f"drain-{time.monotonic_ns()}.db"
    ob = Outbox(db, max_bytes=1 << 40)
    msgs = distinct(msg, n)
    for i in range(n // 100):
        ob.append(msgs[i * 100 : (i + 1) * 100])
    mq = MqttConfig(host="127.0.0.1", port=broker.port, max_inflight=64)
    sync = MqttSync(mq, "store-0042", f"pi-{time.monotonic_ns()}", ob)
    t = time.perf_counter()
    sync.start()
    if not sync.wait_drained(300):
        raise RuntimeError(f"not drained: {sync.stats()}")
    rate = n / (time.perf_counter() - t)  # includes connecting (a few ms on loopback)
    sync.stop(1.0)
    ob.close()
    return rate


def summary_size() -> dict[str, float]:
    cfg = four_camera_config()
    t0 = datetime(2026, 11, 21, 14, 0, tzinfo=UTC).timestamp()
    busy = len(wire.encode(busy_summary(cfg, t0).model_copy(update={"seq": 123456})))
    quiet = len(
        wire.encode(Aggregator(cfg, t0).tick(t0 + 60)[0].model_copy(update={"seq": 123456}))
    )
    cap = OutboxConfig().max_bytes
    per_row = stored_bytes(busy_summary(cfg, t0))
    week = 7 * 24 * 60
    # Also the real file: a week of busy summaries written to an outbox.
    with tempfile.TemporaryDirectory() as d:
        ob = Outbox(Path(d) / "week.db", max_bytes=cap)
        msgs = distinct(busy_summary(cfg, t0), week)
        for i in range(week // 60):
            ob.append(msgs[i * 60 : (i + 1) * 60])
        ob.close()
        file_bytes = (Path(d) / "week.db").stat().st_size
    return {
        "busy_summary_bytes": busy,
        "zero_summary_bytes": quiet,
        "stored_bytes_per_summary": per_row,
        "week_of_minute_summaries_accounted_mib": round(week * per_row / 2**20, 1),
        "week_of_minute_summaries_file_mib": round(file_bytes / 2**20, 1),
        "default_cap_mib": cap / 2**20,
        "days_of_minute_summaries_under_cap": round(cap / per_row / 1440, 1),
    }


def idle_cpu(seconds: float, tmp: Path, broker: Mosquitto) -> float:
    conf = tmp / f"idle-{time.monotonic_ns()}.yaml"
    conf.write_text(
        f"store: {{id: store-0042}}\ndevice: {{id: idle}}\n"
        f"mqtt: {{host: 127.0.0.1, port: {broker.port}}}\n"
        f"outbox: {{path: {tmp}/idle-{time.monotonic_ns()}.db}}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "run", "--config", str(conf)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(5.0)  # past start-up (imports, connect)
        ticks = os.sysconf("SC_CLK_TCK")

        def cpu_s() -> float:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime

        c0, t0 = cpu_s(), time.monotonic()
        time.sleep(seconds)
        c1, t1 = cpu_s(), time.monotonic()
        return 100.0 * (c1 - c0) / (t1 - t0)
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--idle-s", type=float, default=60.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results: dict[str, object] = {
        "machine": f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at start",
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for batch in (1, 10, 100):
            rates = [bench_append(args.messages, batch, tmp) for _ in range(args.runs)]
            results[f"append_batch{batch}_msgs_per_s"] = round(statistics.median(rates))
        with Mosquitto(tmp / "broker", persistence=False) as broker:
            rates = [bench_drain(args.messages * 4, tmp, broker) for _ in range(args.runs)]
            results["drain_msgs_per_s"] = round(statistics.median(rates))
            results.update(summary_size())
            if args.idle_s > 0:
                cpus = [idle_cpu(args.idle_s, tmp, broker) for _ in range(args.runs)]
                results["idle_cpu_percent"] = round(statistics.median(cpus), 3)
                results["idle_cpu_percent_runs"] = [round(c, 3) for c in cpus]
        results["load_at_end"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(results))
    else:
        for k, v in results.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
