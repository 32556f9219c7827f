"""Central ingest throughput: summaries/s into SQLite and PostgreSQL.

Stages measured separately, each over the same pre-encoded summaries:
  validate  - `central.ingest.validate` (wire.decode + checks) only: the JSON/pydantic cost
  sql       - `Storage.write_batch` of already-decoded messages: the SQL cost
  storage   - `BatchWriter.write` on raw bytes: validate + SQL, the whole storage path
  mqtt_rx   - a bare paho subscriber counting messages from mosquitto: the MQTT client cost
  e2e       - a publisher process -> mosquitto -> `Ingest` (shared subscription, manual ack
              after commit) -> storage, timed from the first publish to the last commit

Summaries look like a counting device's 1-minute summary: 2 lines, 4 zones with dwell
histograms (a few non-empty bins), 3 transitions; 1,000 devices in 100 stores.

PostgreSQL runs in a throwaway cluster with default durability (fsync on) unless --pg-url.
Usage: .venv/bin/python bench/central_ingest.py [--n 20000] [--runs 3] [--json]

--micro instead times only the wire code, in this process, with no broker or database:
`wire.decode` with its topic (in batches of 1,000 kept alive, as ingest does; once more with
the cyclic GC off, which leaves the decoding alone), `central.ingest.validate`, and
`wire.encode`, in us per summary, as wall time and as this thread's CPU time (less disturbed
by other processes on a shared machine); medians over --runs passes of --n summaries, after
one warm-up pass.
Usage: .venv/bin/python bench/central_ingest.py --micro [--n 5000] [--runs 15] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from central.cli import _disable_gc_for_ingest  # noqa: E402
from central.config import CentralConfig, IngestConfig, MqttConfig, StorageConfig  # noqa: E402
from central.ingest import BatchWriter, Ingest, RawMessage, validate  # noqa: E402
from central.storage import Received, Storage, open_storage  # noqa: E402
from central.storage.postgres import PostgresStorage  # noqa: E402
from central.subscriber import (  # noqa: E402
    Delivery,
    MqttSubscriber,
    connect_packet,
    packet,
    split_packets,
)
from edge_agent import wire  # noqa: E402
from tests.mosquitto import Mosquitto  # noqa: E402

T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
BATCH = 1000


def make_payloads(n: int, offset: int = 0, devices: int | None = None) -> list[tuple[str, bytes]]:
    """n summaries from `devices` devices (10 per store) taking turns, each device's seq and
    interval advancing by one minute per turn. Without `devices`, $FOOTFALL_BENCH_DEVICES
    (how main() reaches the publisher processes it spawns), else 1,000."""
    devices = devices or int(os.environ.get("FOOTFALL_BENCH_DEVICES", "1000"))
    out = []
    hist = {"edges_s": [0, 10, 30, 60, 120, 300, 600], "counts": [1, 2, 1, 0, 0, 0]}
    for i in range(offset, offset + n):
        dev = i % devices
        store, device, seq = f"store{dev // 10:04d}", f"edge{dev % 10}", i // devices + 1
        start = T0 + timedelta(minutes=seq)
        s = wire.Summary.model_validate(
            {
                "store_id": store, "device_id": device, "seq": seq,
                "interval_start": start, "interval_end": start + timedelta(minutes=1),
                "timezone": "Europe/Paris",
                "lines": [{"camera_id": f"{device}-door", "line_id": "l1", "in": 3, "out": 2},
                          {"camera_id": f"{device}-side", "line_id": "l1", "in": 1, "out": 1}],
                "zones": [{"camera_id": f"{device}-floor", "zone_id": f"z{z}", "visits": 4,
                           "occupancy_mean": 1.2, "occupancy_max": 3, "dwell_count": 4,
                           "dwell_mean_s": 25.0, "dwell_median_s": 20.0, "dwell_p90_s": 50.0,
                           "dwell_hist": hist} for z in range(4)],
                "transitions": [{"camera_id": f"{device}-floor", "from_zone": "z0",
                                 "to_zone": f"z{z}", "count": 1} for z in range(1, 4)],
            }
        )  # fmt: skip
        out.append((wire.topic_for(store, device, "summary"), wire.encode(s)))
    return out


_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@dataclass
class Measured:
    wall_s: float
    cpu_s: float  # this process + the listed helper processes (database backend, broker)

    def rate(self, n: int) -> float:
        return n / self.wall_s

    def cpu_us(self, n: int) -> float:
        return self.cpu_s / n * 1e6


def timed(fn: Callable[[], object], pids: Sequence[int] = ()) -> Measured:
    others = sum(proc_cpu_s(p) for p in pids)
    cpu = time.process_time()
    t = time.perf_counter()
    fn()
    wall = time.perf_counter() - t
    cpu = time.process_time() - cpu + sum(proc_cpu_s(p) for p in pids) - others
    return Measured(wall, cpu)


def backend_pids(st: Storage) -> list[int]:
    if isinstance(st, PostgresStorage):
        return [int(st._all("SELECT pg_backend_pid()")[0][0])]
    return []


def server_pids(st: Storage) -> list[int]:
    """Every process of the PostgreSQL server behind `st` (the postmaster's children: each
    connection's backend, the WAL writer, the checkpointer...), or nothing for SQLite."""
    if not isinstance(st, PostgresStorage):
        return []
    data_dir = Path(str(st._all("SHOW data_directory")[0][0]))
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # the process ended meanwhile
        if ppid == postmaster:
            pids.append(int(stat.parent.name))
    return pids


def cpu_of(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        # An ended process's CPU is no longer visible (rare: backends live until the end).
        with contextlib.suppress(OSError, ValueError):
            total += proc_cpu_s(pid)
    return total


def bench_storage(
    url_factory: Callable[[], str], payloads: list[tuple[str, bytes]]
) -> dict[str, Measured]:
    n = len(payloads)
    raws = [RawMessage(t, p, time.time()) for t, p in payloads]
    decoded: list[Received] = []

    def run_validate() -> None:
        decoded.clear()
        decoded.extend(Received(validate(t, p), 0.0, p) for t, p in payloads)

    out = {"validate": timed(run_validate)}
    st = open_storage(url_factory())
    out["sql"] = timed(
        lambda: [st.write_batch(decoded[i : i + BATCH]) for i in range(0, n, BATCH)],
        backend_pids(st),
    )
    assert st.message_count() == n
    st.close()
    st = open_storage(url_factory())
    writer = BatchWriter(st, IngestConfig(), lambda: open_storage(st.url))
    out["storage"] = timed(
        lambda: [writer.write(raws[i : i + BATCH]) for i in range(0, n, BATCH)],
        backend_pids(st),
    )
    assert st.message_count() == n
    st.close()
    return out


def _publish_packet(topic: str, payload: bytes, mid: int) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic.encode() + mid.to_bytes(2, "big") + b"\x00"
    return packet(0x32, body + payload)  # PUBLISH, QoS 1


def _publisher(port: int, n: int, offset: int, ready: mp.Event, go: mp.Event,  # type: ignore[valid-type]
               window: int = 1000) -> None:  # fmt: skip
    """Publishes n summaries at QoS 1 over MQTT 5, keeping `window` unacknowledged.

    A raw-socket publisher, not paho: in the field the devices are other machines, and a paho
    publisher on these 2 cores took 90-170 us of CPU per message, more than the broker and as
    much as ingest, which capped every end-to-end figure at what the publisher could send."""
    payloads = make_payloads(n, offset)
    packets = [_publish_packet(t, p, i % 65535 + 1) for i, (t, p) in enumerate(payloads)]
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cfg = MqttConfig(client_id=f"bench-pub-{offset}", session_expiry_s=0, keepalive_s=600)
    sock.sendall(connect_packet(cfg, None))
    buf = bytearray()
    while not split_packets(buf, True)[3]:  # the CONNACK
        buf += sock.recv(65536)
    ready.set()  # type: ignore[attr-defined]
    go.wait()  # type: ignore[attr-defined]
    sent = acked = 0
    while acked < n:
        if sent < n and sent - acked < window:
            end = min(n, acked + window)
            sock.sendall(b"".join(packets[sent:end]))
            sent = end
        buf += sock.recv(65536)
        acked += sum(1 for first, _ in split_packets(buf, True)[3] if first >> 4 == 4)
    sock.sendall(b"\xe0\x00")
    sock.close()


def _publish(port: int, n: int, offset: int) -> tuple[BaseProcess, Callable[[], float]]:
    ctx = mp.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_publisher, args=(port, n, offset, ready, go))
    proc.start()
    ready.wait(120)

    def start() -> float:
        go.set()
        return time.perf_counter()

    return proc, start


def bench_mqtt_rx(broker: Mosquitto, n: int, client: str) -> Measured:
    """The MQTT client alone on the shared subscription, acking as it receives: central's
    subscriber (`client="footfall"`) or, as the reference, a bare paho subscriber."""
    got = threading.Event()
    count = [0]
    if client == "paho":

        def on_message(c: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
            count[0] += 1
            if count[0] == n:
                got.set()

        c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                        protocol=mqtt.MQTTv5, client_id="bench-rx")  # fmt: skip
        c.on_message = on_message
        c.connect("127.0.0.1", broker.port)
        c.subscribe("$share/bench/footfall/v1/#", qos=1)
        c.loop_start()

        def stop() -> None:
            c.disconnect()
            c.loop_stop()
    else:
        cfg = MqttConfig(host="127.0.0.1", port=broker.port, client_id="bench-rx",
                         session_expiry_s=0, receive_maximum=2000)  # fmt: skip

        def on_delivery(d: Delivery) -> None:
            sub.ack(d.mids, d.connection)
            count[0] += len(d.mids)
            if count[0] >= n:
                got.set()

        sub = MqttSubscriber(cfg, [("$share/bench/footfall/v1/#", 1)], on_delivery).start()
        stop = sub.stop
    time.sleep(0.5)
    proc, start = _publish(broker.port, n, 0)

    def run() -> None:
        start()
        got.wait(300)

    m = timed(run)
    proc.join(60)
    stop()
    return m


def bench_e2e(broker: Mosquitto, url: str, n: int, offset: int) -> Measured:
    cfg = CentralConfig(
        # Expiry 0: a finished run's session must not keep its share of the shared
        # subscription (mosquitto queues a share for offline persistent members).
        mqtt=MqttConfig(
            host="127.0.0.1", port=broker.port, client_id=f"bench-central-{offset}",
            session_expiry_s=0,
        ),
        storage=StorageConfig(url=url),
        ingest=IngestConfig(batch_max_messages=BATCH),
    )  # fmt: skip
    ing = Ingest(cfg, collect_garbage=not gc.isenabled()).start()
    ing.connected.wait(10)
    time.sleep(0.5)
    base = ing.stats.stored
    proc, start = _publish(broker.port, n, offset)
    pids = backend_pids(ing.storage)
    assert broker.proc is not None

    def run() -> None:
        start()
        deadline = time.monotonic() + 600
        while ing.stats.stored - base < n and time.monotonic() < deadline:
            time.sleep(0.01)

    m = timed(run, [*pids, broker.proc.pid])  # the broker's CPU is counted too
    proc.join(60)
    ing.stop()
    if ing.stats.stored - base < n:
        raise RuntimeError(f"e2e: only {ing.stats.stored - base} of {n} stored")
    return m


def _ingest_process(port: int, url: str, client_id: str, ready: Any, stop: Any,
                    session_expiry_s: int = 0, go: Any = None) -> None:  # fmt: skip
    """One ingest process; with `go`, ready means started up and waiting to connect."""
    # Expiry 0: a finished run's session must not keep its share of the shared
    # subscription (mosquitto queues a share for offline persistent members).
    cfg = CentralConfig(
        mqtt=MqttConfig(
            host="127.0.0.1", port=port, client_id=client_id, session_expiry_s=session_expiry_s
        ),
        storage=StorageConfig(url=url),
        ingest=IngestConfig(batch_max_messages=BATCH),
    )
    _disable_gc_for_ingest()  # as `footfall-central serve` runs
    ing = Ingest(cfg, collect_garbage=True)
    if go is not None:
        ready.set()
        go.wait()
    ing.start()
    ing.connected.wait(10)
    if go is None:
        ready.set()
    stop.wait()
    ing.stop()


def bench_drain(
    broker: Mosquitto, url: str, n: int, offset: int, k: int, prefill: bool = False
) -> Measured:
    """A backlog: `k` ingest processes (one shared-subscription group) subscribe, go away,
    n summaries are published meanwhile and queued by the broker, then the processes come
    back and drain it; timed from their start until the database holds all n. The devices'
    publishing is not on the clock (in the field they are thousands of other machines); the
    broker, ingest and the database are, with their CPU.

    `prefill`: first store, from this process, one summary per device for the minute before,
    in the same hour, so every timed summary merges into a device-hour row that exists and
    that the ingest processes have not seen (a fleet's steady state: 59 of a device's 60
    summaries an hour are merges, and a fleet of 300,000 devices does not fit their cache)."""
    ctx = mp.get_context("spawn")
    devices = int(os.environ.get("FOOTFALL_BENCH_DEVICES", "1000"))
    if prefill:
        if n > devices * 29:
            raise SystemExit("--prefill needs --n <= 29 x --devices (one hour of turns)")
        turn = offset // devices
        turn = turn - turn % 60 + 30  # start mid-hour: prefill and stream share the hour
        offset = turn * devices
        before = [
            RawMessage(t, p, time.time()) for t, p in make_payloads(devices, offset - devices)
        ]
        st0 = open_storage(url)
        writer = BatchWriter(st0, IngestConfig(), lambda: open_storage(url))
        for i in range(0, len(before), BATCH):
            writer.write(before[i : i + BATCH])
        st0.close()
    ids = [f"bench-drain-{offset}-{i}" for i in range(k)]

    def launch(expiry_s: int, go: Any = None) -> tuple[list[Any], Any]:
        stop = ctx.Event()
        readies = [ctx.Event() for _ in ids]
        procs = [
            ctx.Process(target=_ingest_process,
                        args=(broker.port, url, cid, readies[i], stop, expiry_s, go))
            for i, cid in enumerate(ids)
        ]  # fmt: skip
        for p in procs:
            p.start()
        for r in readies:
            r.wait(60)
        return procs, stop

    procs, stop = launch(3600)  # create the persistent sessions and the group's members
    time.sleep(0.5)
    stop.set()
    for p in procs:
        p.join(60)
    pub, start = _publish(broker.port, n, offset)
    start()
    pub.join(300)
    st = open_storage(url)
    assert broker.proc is not None
    go = ctx.Event()
    procs, stop = launch(0, go)  # expiry 0 on the way out: the sessions end with the run
    ingest_pids = [broker.proc.pid, *(p.pid for p in procs if p.pid is not None)]
    base = st.message_count()
    # The workers' server backends exist once they have opened their storage (before ready).
    pids = [*ingest_pids, *server_pids(st)]
    cpu0 = cpu_of(pids)
    t0 = time.perf_counter()
    go.set()
    while st.message_count() - base < n and time.perf_counter() - t0 < 600:
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    cpu = cpu_of(pids) - cpu0
    stored = st.message_count() - base
    st.close()
    stop.set()
    for p in procs:
        p.join(60)
    if stored < n:
        raise RuntimeError(f"drain x{k}: only {stored} of {n} stored")
    return Measured(wall, cpu)


def bench_e2e_processes(broker: Mosquitto, url: str, n: int, offset: int, k: int) -> Measured:
    """`k` ingest processes in one shared-subscription group writing one database; timed
    from the first publish until the database holds all n (wall clock only)."""
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    readies = [ctx.Event() for _ in range(k)]
    procs = [
        ctx.Process(target=_ingest_process,
                    args=(broker.port, url, f"bench-multi-{offset}-{i}", readies[i], stop))
        for i in range(k)
    ]  # fmt: skip
    for p in procs:
        p.start()
    for r in readies:
        r.wait(60)
    time.sleep(0.5)
    st = open_storage(url)
    pub, start = _publish(broker.port, n, offset)

    def run() -> None:
        start()
        deadline = time.monotonic() + 600
        while st.message_count() < n and time.monotonic() < deadline:
            time.sleep(0.05)

    m = timed(run)
    stored = st.message_count()
    st.close()
    pub.join(60)
    stop.set()
    for p in procs:
        p.join(60)
    if stored < n:
        raise RuntimeError(f"e2e x{k}: only {stored} of {n} stored")
    return Measured(m.wall_s, float("nan"))


def micro(n: int, runs: int) -> dict[str, dict[str, float]]:
    payloads = make_payloads(n)
    gc.collect()

    def batched(fn: Callable[[tuple[str, bytes]], object]) -> Callable[[], None]:
        # As in BatchWriter, a batch's decoded messages stay alive until the batch is done:
        # that is what keeps the cyclic GC busy (it runs and scans them while decoding).
        def run() -> None:
            for i in range(0, n, BATCH):
                kept = [fn(x) for x in payloads[i : i + BATCH]]
                del kept

        return run

    def encode_all() -> None:
        msgs = [wire.decode(p, t) for t, p in payloads[:BATCH]]
        for i in range(n):
            wire.encode(msgs[i % BATCH])

    decode = batched(lambda tp: wire.decode(tp[1], tp[0]))
    stages: dict[str, tuple[Callable[[], object], bool]] = {
        "decode": (decode, True),
        "decode_gc_off": (decode, False),
        "validate": (batched(lambda tp: validate(*tp)), True),
        "encode": (encode_all, True),
    }
    out = {}
    for stage, (fn, gc_on) in stages.items():
        fn()  # warm-up: string caches, allocator
        wall, cpu = [], []
        for _ in range(runs):
            gc.collect()
            if not gc_on:
                gc.disable()
            try:
                c, t = time.thread_time(), time.perf_counter()
                fn()
                wall.append((time.perf_counter() - t) / n * 1e6)
                cpu.append((time.thread_time() - c) / n * 1e6)
            finally:
                gc.enable()
        out[stage] = {
            "wall_us": round(statistics.median(wall), 1),
            "cpu_us": round(statistics.median(cpu), 1),
            "cpu_us_min": round(min(cpu), 1),
        }
    return out


def _round(x: float) -> int | None:
    return None if math.isnan(x) else round(x)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="summaries per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--devices",
        type=int,
        default=1000,
        help="devices the summaries come from, taking turns (default 1,000; see BENCHMARKS.md)",
    )
    ap.add_argument(
        "--prefill",
        action="store_true",
        help="drain: every summary merges into an existing device-hour row the ingest "
        "processes have not cached (a large fleet's steady state; see bench_drain)",
    )
    ap.add_argument("--pg-url", help="use this PostgreSQL instead of a throwaway cluster")
    ap.add_argument("--skip-pg", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--instances", type=int, default=0, help="also run e2e with this many ingest processes"
    )
    ap.add_argument("--micro", action="store_true", help="time only the wire code (see above)")
    ap.add_argument(
        "--gc",
        choices=["serve", "default"],
        default="serve",
        help="serve: the cyclic GC policy `footfall-central serve` runs with (disabled, collected "
        "between batches), in this process and in the ingest processes; default: Python's",
    )
    ap.add_argument(
        "--stages",
        default="storage,e2e,drain,rx",
        help="comma-separated: storage (validate, sql, storage), e2e (live publisher; with "
        "--instances also k processes), drain (a queued backlog; with --instances also k "
        "processes), rx (the MQTT clients alone)",
    )
    args = ap.parse_args()
    if args.micro:
        load = os.getloadavg()[0]
        res = micro(args.n, args.runs)
        load_avg = {"start": round(load, 2), "end": round(os.getloadavg()[0], 2)}
        if args.json:
            print(json.dumps({"n": args.n, "runs": args.runs, "load_avg_1m": load_avg, **res}))
        else:
            print(f"load average {load_avg}, {args.n} summaries x {args.runs} runs (medians)")
            for stage, us in res.items():
                print(f"{stage:10s} {us['wall_us']:6.1f} us wall  {us['cpu_us']:6.1f} us CPU"
                      f"  (CPU min {us['cpu_us_min']})")  # fmt: skip
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="central-bench-"))
    counter = iter(range(10_000))
    backends: dict[str, Callable[[], str]] = {
        "sqlite": lambda: f"sqlite://{tmp / f'bench{next(counter)}.db'}"
    }
    cluster = None
    if not args.skip_pg:
        if args.pg_url:
            backends["postgresql"] = lambda: args.pg_url
        else:
            from tests.central.conftest import PgCluster

            cluster = PgCluster(durable=True).start()
            backends["postgresql"] = cluster.new_database
    os.environ["FOOTFALL_BENCH_DEVICES"] = str(args.devices)
    payloads = make_payloads(args.n)
    results: dict[str, dict[str, list[Measured]]] = {}
    wanted = set(args.stages.split(","))
    if args.gc == "serve":
        _disable_gc_for_ingest()
    load_start = os.getloadavg()[0]
    # The drain stage queues a whole run for offline sessions.
    broker = Mosquitto(tmp / "broker", persistence=False,
                       extra_conf=[f"max_queued_messages {max(100_000, 2 * args.n)}"]).start()  # fmt: skip
    try:
        for name, factory in backends.items():
            r = results.setdefault(name, {})
            for run in range(args.runs):
                if "storage" in wanted:
                    for stage, m in bench_storage(factory, payloads).items():
                        r.setdefault(stage, []).append(m)
                if "e2e" in wanted:
                    e2e = bench_e2e(broker, factory(), args.n, (run + 1) * 10_000_000)
                    r.setdefault("e2e", []).append(e2e)
                    if args.instances > 1:
                        multi = bench_e2e_processes(
                            broker, factory(), args.n, (run + 1) * 20_000_000, args.instances
                        )
                        r.setdefault(f"e2e_x{args.instances}", []).append(multi)
                if "drain" in wanted:
                    for k in sorted({1, max(1, args.instances)}):
                        m = bench_drain(
                            broker, factory(), args.n, (run + 1) * 30_000_000 + k, k, args.prefill
                        )
                        r.setdefault(f"drain_x{k}", []).append(m)
                print(name, run, {k: round(v[-1].rate(args.n)) for k, v in r.items()},
                      file=sys.stderr)  # fmt: skip
        if "rx" in wanted:
            results["mqtt"] = {
                f"{client}_rx_only": [
                    bench_mqtt_rx(broker, args.n, client) for _ in range(args.runs)
                ]
                for client in ("footfall", "paho")
            }
    finally:
        broker.stop()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.n
    summary = {
        name: {
            stage: {
                "per_s": round(statistics.median(m.rate(n) for m in ms)),
                "cpu_us": _round(statistics.median(m.cpu_us(n) for m in ms)),
                "runs_per_s": [round(m.rate(n)) for m in ms],
            }
            for stage, ms in stages.items()
        }
        for name, stages in results.items()
    }
    doc = {
        "n": n,
        "runs": args.runs,
        "gc": args.gc,
        "devices": args.devices,
        "prefill": args.prefill,
        "load_avg_1m": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
        "median": summary,
    }
    if args.json:
        print(json.dumps(doc))
    else:
        print(f"load average {doc['load_avg_1m']}, {args.devices} devices")
        for name, stages in summary.items():
            for stage, v in stages.items():
                print(f"{name:10s} {stage:12s} {v['per_s']:>7,}/s  {v['cpu_us'] or '-':>5} us CPU/summary"
                      f"  runs {v['runs_per_s']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
