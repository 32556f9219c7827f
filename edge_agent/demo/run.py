"""Run the demo: a simulated store through the real edge pipeline, a broker, and central.

Simulated parts: the shoppers and the truth (store_sim), the detector output (noisy_detections),
the RFID reader's radio (rfid_sim, behind a real pty), and the till (POS transactions).
Real parts: the ByteTrack tracker, line and zone counters (vision.pipeline), the serial reader
and the stock engine (rfid), the aggregator, the SQLite outbox and the MQTT sync (edge_agent),
the broker, and central's ingest into an SQLite file.

Time: everything edge-side runs on the simulated clock (frame timestamps, read timestamps,
aggregation intervals aligned to the simulated wall clock), as fast as the CPU allows. Only
the MQTT delivery and central's ingest run on real time, concurrently with the simulation.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from central.config import CentralConfig, StorageConfig
from central.config import MqttConfig as CentralMqttConfig
from central.ingest import Ingest
from central.storage import open_storage
from edge_agent import wire
from edge_agent.aggregate import Aggregator
from edge_agent.config import (
    AgentConfig,
    AggregationConfig,
    DeviceConfig,
    MqttConfig,
    OutboxConfig,
    ProductConfig,
    StoreConfig,
)
from edge_agent.demo import floor_plan as fp
from edge_agent.demo.broker import Broker, start_broker
from edge_agent.demo.noisy_detections import NoiseModel, NoisyDetector
from edge_agent.demo.render import Clip, Renderer
from edge_agent.demo.rfid_sim import SimulatedChafon288, make_tags
from edge_agent.demo.store_sim import FrameStream, SimParams, StoreDay, simulate_day
from edge_agent.demo.truth import Truth, measure
from edge_agent.outbox import Outbox
from edge_agent.sync import MqttSync
from rfid.config import AntennaConfig, ReaderConfig
from rfid.serial_port import SerialReader
from rfid.stock import StockEngine
from vision.events import CrossingEvent
from vision.pipeline import CameraPipeline

log = logging.getLogger(__name__)

STORE_ID = "demo-store"
EDGE_DEVICE_ID = "demo-edge"
TILL_DEVICE_ID = "demo-till"
READER_ID = "shelf-reader"
STORE_TZ = "Europe/London"
OPENING_HOUR = 9
# Slack on top of the stock engine's own delays (absence timeout + low-stock hold) for read
# epochs and sweeps: the window in which a stock_out counts as detecting a true one, and how
# long the readers keep running after the last item was taken.
STOCKOUT_SLACK_S = 30.0
CLIP_S = 20.0
STILLS = 4


@dataclass(frozen=True, slots=True)
class DemoOptions:
    minutes: float = 20.0
    fps: float = 10.0
    visitors: float = 110.0
    seed: int = 7
    interval_s: int = 60
    out_dir: Path | None = None
    broker: str = "auto"
    video: bool = True
    day: date | None = None  # the simulated date; default yesterday (UTC)
    drain_timeout_s: float = 30.0


@dataclass(slots=True)
class EdgeCounts:
    produced: dict[str, int] = field(default_factory=dict)  # kind -> messages put in outboxes
    stock_events: list[wire.StockEventMsg] = field(default_factory=list)
    delivered: int = 0
    undelivered: int = 0


@dataclass(slots=True)
class DemoRun:
    """Everything the report needs."""

    options: DemoOptions
    out_dir: Path
    day: StoreDay
    truth: Truth
    opening: datetime  # UTC
    closing: datetime  # UTC, end of the simulated day
    broker_kind: str
    edge: EdgeCounts
    central_db: Path
    central_stored: dict[str, int]
    frames: list[Path]
    clip: Path | None
    wall_s: float
    sim_wall_s: float
    detector_stats: dict[str, int]
    reader_stats: dict[str, Any]
    stockout_window_s: float  # a stock_out this long after the shelf empties detects it
    stockout_min_s: float  # shorter empty spells end before the engine may call them out


def _agent_config(opts: DemoOptions, broker: Broker, out_dir: Path, port: str) -> AgentConfig:
    return AgentConfig(
        store=StoreConfig(id=STORE_ID, timezone=STORE_TZ),
        device=DeviceConfig(id=EDGE_DEVICE_ID),
        mqtt=MqttConfig(host=broker.host, port=broker.port, protocol=broker.mqtt_protocol),
        outbox=OutboxConfig(path=out_dir / "edge-outbox.db"),
        aggregation=AggregationConfig(interval_s=opts.interval_s),
        cameras=[fp.camera_config(opts.fps)],
        readers=[
            ReaderConfig(
                id=READER_ID,
                port=port,
                protocol="chafon288",
                # Two antennas inventoried alternately: each shelf gets one cycle per second.
                poll_interval_s=0.5,
                antennas={i + 1: AntennaConfig(zone=zone) for i, zone in enumerate(fp.RFID_ZONES)},
            )
        ],
        products={
            p.gtin: ProductConfig(name=p.name, low_stock_threshold=p.low_threshold)
            for p in fp.PRODUCTS
        },
    )


def _central_mqtt(broker: Broker) -> CentralMqttConfig:
    """Central's broker settings: the protocol the broker speaks, and a shared subscription
    only where the broker has them (amqtt has neither MQTT 5 nor $share)."""
    return CentralMqttConfig(
        host=broker.host,
        port=broker.port,
        client_id="footfall-demo-central",
        protocol=broker.mqtt_protocol,
        shared_subscription=broker.shared_subscriptions,
    )


def _opening(opts: DemoOptions) -> datetime:
    day = opts.day or (datetime.now(UTC).date() - timedelta(days=1))
    local = datetime(day.year, day.month, day.day, OPENING_HOUR, tzinfo=ZoneInfo(STORE_TZ))
    return local.astimezone(UTC)


def _wait_for(predicate: Any, timeout_s: float, step_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())


def run_demo(opts: DemoOptions) -> DemoRun:
    started = time.monotonic()
    # Absolute: the central URL is sqlite:// + the path (a relative --out would otherwise
    # land at the file system root).
    out_dir = (opts.out_dir or Path(tempfile.mkdtemp(prefix="footfall-demo-"))).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "frames").mkdir(exist_ok=True)
    params = SimParams(
        duration_s=opts.minutes * 60.0, fps=opts.fps, visitors=opts.visitors, seed=opts.seed
    )
    day = simulate_day(params)
    camera = fp.camera_config(opts.fps)
    truth = measure(day, camera)
    opening = _opening(opts)
    t0 = opening.timestamp()

    company_len = len(fp.COMPANY_PREFIX)
    tags = make_tags(
        [(i.gtin, i.serial) for i in day.items],
        {z: n + 1 for n, z in enumerate(fp.RFID_ZONES)},
        [i.zone for i in day.items],
        company_len,
        np.random.default_rng(opts.seed + 3),
    )
    for item in day.items:
        tags[item.epc_index].on_shelf = item.stocked_s <= 0.0  # refills wait in the back
    rfid = SimulatedChafon288(tags, seed=opts.seed + 1)
    broker = start_broker(out_dir / "broker", opts.broker)  # type: ignore[arg-type]
    central_db = out_dir / "central.db"
    ingest: Ingest | None = None
    syncs: list[MqttSync] = []
    outboxes: list[Outbox] = []
    reader: SerialReader | None = None
    try:
        cfg = _agent_config(opts, broker, out_dir, rfid.port)
        ingest = Ingest(
            CentralConfig(
                mqtt=_central_mqtt(broker),
                storage=StorageConfig(url=f"sqlite://{central_db}"),
            )
        ).start()
        if not _wait_for(ingest.connected.is_set, 15.0):
            raise RuntimeError(f"central could not connect to the {broker.kind} broker")

        edge_outbox = Outbox(cfg.outbox.path)
        till_outbox = Outbox(out_dir / "till-outbox.db")
        outboxes += [edge_outbox, till_outbox]
        edge_sync = MqttSync(cfg.mqtt, STORE_ID, EDGE_DEVICE_ID, edge_outbox).start()
        till_sync = MqttSync(cfg.mqtt, STORE_ID, TILL_DEVICE_ID, till_outbox).start()
        syncs += [edge_sync, till_sync]
        # Central's subscription must be live before the first message, or the broker has
        # nobody to queue it for. The devices' retained `online` status reaching central's
        # storage proves it (both of its filters go in one SUBSCRIBE).
        ingest_ref = ingest
        if not _wait_for(lambda: ingest_ref.stats.statuses >= 1, 20.0):
            raise RuntimeError("central did not receive the devices' status: subscription failed")

        pipeline = CameraPipeline(camera, detector=None)
        reader = SerialReader(cfg.readers[0], read_timeout_s=0.0)
        engine = StockEngine(
            cfg.readers, {g: p.low_stock_threshold for g, p in cfg.products.items()}
        )
        aggregator = Aggregator(cfg, start_ts=t0)
        noisy = NoisyDetector(NoiseModel(), seed=opts.seed + 2)
        stream = FrameStream(day)
        renderer = Renderer(camera)
        edge = EdgeCounts()

        # Frames to draw: a clip around the busiest moment, and stills spread over the day.
        clip_len = round(CLIP_S * opts.fps)
        clip_start = max(0, truth.occupancy_peak_frame - clip_len // 2)
        clip = Clip(out_dir / "demo.mp4", opts.fps) if opts.video else None
        still_frames = {round((k + 1) * day.n_frames / (STILLS + 1)) for k in range(STILLS)}
        still_frames.add(truth.occupancy_peak_frame)
        frames_written: list[Path] = []

        takes = sorted(day.takes, key=lambda t: t.ts_s)
        sales = sorted(day.sales, key=lambda s: s.ts_s)
        refills = sorted((i for i in day.items if i.stocked_s > 0), key=lambda i: i.stocked_s)
        next_take = next_sale = next_refill = 0
        # Keep the shelf running until the last take or refill has had time to show.
        last_shelf_s = max([t.ts_s for t in takes] + [i.stocked_s for i in day.items])
        presence = cfg.readers[0].presence
        window_s = presence.absence_timeout_s + presence.low_stock_hold_s + STOCKOUT_SLACK_S
        n_frames = max(day.n_frames, round((last_shelf_s + window_s) * opts.fps))

        def store(msgs: list[Any], outbox: Outbox, sync: MqttSync) -> None:
            if not msgs:
                return
            for m in outbox.append(msgs):
                edge.produced[m.kind] = edge.produced.get(m.kind, 0) + 1
                if isinstance(m, wire.StockEventMsg):
                    edge.stock_events.append(m)
            sync.wake()

        door = {"in": 0, "out": 0}  # running counts, only for the frame captions
        # The reader loop runs at twice the inventory rate (like the daemon's reader worker,
        # it need not wake for every camera frame): each answer is read within half a poll.
        reader_every = max(1, round(cfg.readers[0].poll_interval_s / 2 * opts.fps))
        sim_started = time.monotonic()
        ts = t0
        for f in range(n_frames):
            sim_s = f / opts.fps
            ts = t0 + sim_s
            feet, ids = stream.at(f)
            dets = noisy.detect(feet, ids)
            result = pipeline.process_detections(dets, ts, f)
            pending: list[Any] = []
            for ev in result.events:
                pending += aggregator.add(ev)
                if isinstance(ev, CrossingEvent):
                    door[ev.direction] += 1
            # The shelf: items leave the antenna field when taken; the reader polls, the
            # simulated radio answers, and the stock engine judges presence.
            while next_refill < len(refills) and refills[next_refill].stocked_s <= sim_s:
                rfid.put(tags[refills[next_refill].epc_index].epc_hex)
                next_refill += 1
            while next_take < len(takes) and takes[next_take].ts_s <= sim_s:
                rfid.remove(tags[takes[next_take].epc_index].epc_hex)
                next_take += 1
            if f % reader_every == 0:
                reads = reader.poll(ts)
                engine.set_reader_health(reader.reader_id, reader.state == "connected", ts)
                engine.ingest(reads)
                for sev in engine.tick(ts):
                    pending += aggregator.add(sev)
                rfid.service()
            pending += aggregator.tick(ts)
            store(pending, edge_outbox, edge_sync)
            till: list[wire.PosTransaction] = []
            while next_sale < len(sales) and sales[next_sale].ts_s <= sim_s:
                sale = sales[next_sale]
                when = datetime.fromtimestamp(t0 + sale.ts_s, UTC)
                till.append(
                    wire.PosTransaction(
                        store_id=STORE_ID,
                        device_id=TILL_DEVICE_ID,
                        seq=1,  # the outbox stamps the real seq
                        created_at=when,
                        transaction_id=sale.transaction_id,
                        ts=when,
                        amount=sale.amount,
                        currency="EUR",
                    )
                )
                next_sale += 1
            store(till, till_outbox, till_sync)
            in_clip = clip is not None and clip_start <= f < clip_start + clip_len
            if in_clip or f in still_frames:
                clock = datetime.fromtimestamp(ts, ZoneInfo(STORE_TZ)).strftime("%H:%M:%S")
                img = renderer.draw(
                    feet,
                    ids,
                    dets,
                    clock=clock,
                    caption=f"frame {f}   counted in {door['in']} out {door['out']}",
                    tracks=result.tracks,
                )
                if in_clip and clip is not None:
                    clip.write(img)
                if f in still_frames:
                    path = out_dir / "frames" / f"frame_{f:06d}.png"
                    cv2.imwrite(str(path), img)
                    frames_written.append(path)
        closing_ts = ts + 1.0 / opts.fps
        final: list[Any] = []
        for ev in pipeline.close(closing_ts):
            final += aggregator.add(ev)
        final += aggregator.flush(closing_ts)
        store(final, edge_outbox, edge_sync)
        sim_wall_s = time.monotonic() - sim_started
        if clip is not None:
            clip.close()

        for sync in syncs:
            sync.wait_drained(opts.drain_timeout_s)
        edge.delivered = sum(o.delivered_total() for o in outboxes)
        edge.undelivered = sum(o.depth for o in outboxes)
        expected = sum(edge.produced.values())
        reading = open_storage(f"sqlite://{central_db}")
        try:
            _wait_for(
                lambda: (
                    sum(reading.message_count(k) for k in ("summary", "stock", "pos")) >= expected
                ),
                opts.drain_timeout_s,
                0.1,
            )
            stored = {k: reading.message_count(k) for k in ("summary", "stock", "pos")}
        finally:
            reading.close()
        return DemoRun(
            options=opts,
            out_dir=out_dir,
            day=day,
            truth=truth,
            opening=opening,
            closing=datetime.fromtimestamp(closing_ts, UTC),
            broker_kind=broker.kind,
            edge=edge,
            central_db=central_db,
            central_stored=stored,
            frames=sorted(frames_written),
            clip=clip.path if clip is not None and clip.path.exists() else None,
            wall_s=time.monotonic() - started,
            sim_wall_s=sim_wall_s,
            detector_stats={
                "true_boxes": noisy.true_boxes,
                "missed": noisy.missed,
                "false_positives": noisy.false_positives,
            },
            reader_stats={"sim": rfid.stats, "parser_rejects": dict(reader.parser.rejects)},
            stockout_window_s=window_s,
            stockout_min_s=presence.absence_timeout_s + presence.low_stock_hold_s,
        )
    finally:
        for sync in syncs:
            sync.stop(drain_timeout_s=1.0)
        for outbox in outboxes:
            outbox.close()
        if ingest is not None:
            ingest.stop()
        if reader is not None:
            reader.close()
        rfid.close()
        broker.stop()


__all__ = ["DemoOptions", "DemoRun", "EdgeCounts", "run_demo"]
