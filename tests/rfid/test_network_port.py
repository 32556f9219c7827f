"""LlrpReader against a fake LLRP reader that is a real TCP server (tests/rfid/llrp_sim.py):
greeting and configuration, reports, keepalives, garbage and cut messages, a dropped link and
an outage with the stock engine watching, refusals, silence, and the daemon's reader worker.
Time is passed in, so outages of minutes take a second or two."""

from __future__ import annotations

import queue
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from edge_agent.workers import Item, ReaderBatch, ReaderWorker
from rfid.config import AntennaConfig, PresenceConfig, ReaderConfig
from rfid.events import ItemRemoved, StockEvent, TagRead
from rfid.network_port import LlrpReader
from rfid.protocols import llrp
from rfid.protocols.llrp import TagReport
from rfid.readers import make_reader
from rfid.stock import StockEngine
from tests.rfid.llrp_sim import FakeLlrpReader

EPCS = ["3074257BF7194E4000001A85", "3074257BF7194E4000001A86", "E200001D7315016521408FC6"]


def llrp_config(port: int, **kw: object) -> ReaderConfig:
    return ReaderConfig(
        id="shelf-net",
        protocol="llrp",
        host="127.0.0.1",
        port=port,
        antennas={1: AntennaConfig(zone="a"), 2: AntennaConfig(zone="b")},
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture()
def fake() -> Iterator[FakeLlrpReader]:
    reader = FakeLlrpReader()
    yield reader
    reader.close()


class SimClock:
    """Simulated seconds advance by `step_s` per poll while the sockets run in real time."""

    def __init__(self, step_s: float = 0.5, start: float = 1_760_000_000.0):
        self.now = start
        self.step_s = step_s

    def tick(self) -> float:
        self.now += self.step_s
        return self.now


def poll_until(
    reader: LlrpReader, done: Callable[[list[TagRead]], bool], timeout_s: float = 20.0
) -> list[TagRead]:
    reads: list[TagRead] = []
    deadline = time.monotonic() + timeout_s
    while not done(reads) and time.monotonic() < deadline:
        reads += reader.poll(time.time())
    return reads


def connect(reader: LlrpReader) -> None:
    poll_until(reader, lambda _: reader.state == "connected")
    assert reader.state == "connected", reader.last_error


def report(fake: FakeLlrpReader, *tags: TagReport) -> bytes:
    return llrp.build_ro_access_report(fake.next_id(), list(tags))


def test_greeting_configuration_reports_and_keepalives(fake: FakeLlrpReader) -> None:
    reader = LlrpReader(llrp_config(fake.port, presence=PresenceConfig(stale_after_s=8)))
    assert reader.state == "connecting"
    connect(reader)
    types = fake.received_types()
    assert types == [
        llrp.SET_READER_CONFIG,
        llrp.DELETE_ROSPEC,
        llrp.ADD_ROSPEC,
        llrp.ENABLE_ROSPEC,
        llrp.START_ROSPEC,
    ]
    set_config, delete, add = fake.received[:3]
    assert set_config.body == b"\x00" + llrp.tlv(llrp.P_KEEPALIVE_SPEC, struct.pack(">BI", 1, 4000))
    assert delete.body == bytes(4)  # ROSpec 0: all of them
    assert add.body == llrp.encode_add_rospec(0, reader.rospec_id, [1, 2])[10:]

    fake.send(
        report(fake, TagReport(EPCS[0], 1, -52), TagReport(EPCS[1], 2, -67, 1_760_000_000_000_000))
        + llrp.build_keepalive(777)
    )
    reads = poll_until(reader, lambda r: len(r) >= 2)
    assert [(r.epc, r.antenna, r.rssi_dbm, r.reader_id) for r in reads] == [
        (EPCS[0], 1, -52, "shelf-net"),
        (EPCS[1], 2, -67, "shelf-net"),
    ]
    assert fake.wait_for(llrp.KEEPALIVE_ACK)
    ack = next(m for m in fake.received if m.msg_type == llrp.KEEPALIVE_ACK)
    assert ack.msg_id == 777 and reader.keepalives == 1
    health = reader.health(time.time())
    assert health.state == "connected" and health.errors == {}
    assert health.last_frame_age_s is not None and health.last_frame_age_s < 5

    reader.close()
    assert fake.client_closed.wait(10)
    assert fake.received_types()[-2:] == [llrp.STOP_ROSPEC, llrp.CLOSE_CONNECTION]
    assert not reader.is_open


def test_garbage_and_a_cut_message_mid_stream(fake: FakeLlrpReader) -> None:
    reader = LlrpReader(llrp_config(fake.port))
    connect(reader)
    cut = report(fake, TagReport(EPCS[2], 1, -70))[:-5]
    fake.send(b"\xde\xad\xbe\xef" + cut + report(fake, TagReport(EPCS[0], 2, -55)))
    fake.send(llrp.build_keepalive(5) + b"\x00" * 7 + report(fake, TagReport(EPCS[1], 1, -60)))
    reads = poll_until(reader, lambda r: len(r) >= 2)
    assert [r.epc for r in reads] == [EPCS[0], EPCS[1]]
    errors = reader.health(time.time()).errors
    assert errors.get("truncated", 0) + errors.get("bad_payload", 0) >= 1
    assert reader.parser.discarded_bytes >= 4 + 7
    assert reader.state == "connected" and fake.connections == 1
    reader.close()


def test_outage_reconnects_without_false_removals(fake: FakeLlrpReader) -> None:
    # Simulated seconds run fast: a generous timeout keeps a loaded machine from failing a
    # handshake that the fake reader answers in real time.
    cfg = llrp_config(fake.port, presence=PresenceConfig(), connect_timeout_s=120)
    reader = LlrpReader(cfg)
    engine = StockEngine([cfg], {})
    clock = SimClock()
    events: list[StockEvent] = []
    states: list[str] = []

    def run(seconds: float, on_shelf: list[str]) -> None:
        end = clock.now + seconds
        while clock.now < end:
            now = clock.tick()
            if fake.running.is_set():
                fake.send(report(fake, *(TagReport(e, 1, -58) for e in on_shelf)))
            reads = reader.poll(now)
            engine.set_reader_health(reader.reader_id, reader.state == "connected", now)
            engine.ingest(reads)
            events.extend(engine.tick(now))
            if not states or states[-1] != reader.state:
                states.append(reader.state)

    run(60, EPCS)
    assert set(engine.present_items()) == set(EPCS)
    fake.send(report(fake, TagReport(EPCS[0], 1, -58))[:20])  # the link goes mid-message
    fake.go_offline()  # the reader is unplugged: the connection drops, new ones are refused
    run(120, [])
    assert reader.state in ("reconnecting", "failed")
    assert not [e for e in events if isinstance(e, ItemRemoved)]
    assert set(engine.present_items()) == set(EPCS)

    fake.go_online()  # back on the same address; one item was taken meanwhile
    run(90, EPCS[:2])
    assert states[0] == "connecting" and "connected" in states and "reconnecting" in states
    assert states[-1] == "connected"
    removed = [e for e in events if isinstance(e, ItemRemoved)]
    assert [e.epc for e in removed] == [EPCS[2]]
    assert set(engine.present_items()) == set(EPCS[:2])
    health = reader.health(clock.now)
    assert health.errors["disconnects"] == 1 and health.errors["connect_failed"] >= 1
    assert fake.connections == 2
    reader.close()


def test_reader_closing_the_connection_is_a_disconnect(fake: FakeLlrpReader) -> None:
    reader = LlrpReader(llrp_config(fake.port))
    connect(reader)
    fake.send(llrp.build_connection_close_event(fake.next_id(), 0))
    poll_until(reader, lambda _: reader.state == "reconnecting", 10)
    assert reader.state == "reconnecting" and reader.io_errors == {"disconnects": 1}
    assert "closing" in (reader.last_error or "")
    clock = time.time() + 1.5  # the first retry comes after 1 s
    while reader.state != "connected" and time.time() < clock + 20:
        reader.poll(max(time.time(), clock))
    assert reader.state == "connected" and fake.connections == 2
    fake.drop()  # a plain TCP close counts the same way
    poll_until(reader, lambda _: reader.state == "reconnecting", 10)
    assert reader.io_errors == {"disconnects": 2}
    reader.close()


def test_garbage_flood_desyncs_and_reconnects(fake: FakeLlrpReader) -> None:
    reader = LlrpReader(llrp_config(fake.port))
    connect(reader)
    fake.send(b"\xff" * (llrp.MAX_GARBAGE_BYTES + 100))
    poll_until(reader, lambda _: reader.state == "reconnecting", 10)
    assert reader.io_errors == {"desync_reconnect": 1}
    later = time.time() + 2
    while reader.state != "connected" and time.time() < later + 20:
        reader.poll(max(time.time(), later))
    assert reader.state == "connected" and fake.connections == 2
    fake.send(report(fake, TagReport(EPCS[0], 1, -50)))
    assert [r.epc for r in poll_until(reader, bool)] == [EPCS[0]]
    reader.close()


def test_another_client_holds_the_reader() -> None:
    busy = FakeLlrpReader(greeting_status=2)
    try:
        reader = LlrpReader(llrp_config(busy.port, connect_timeout_s=120))
        clock = SimClock(step_s=1.0)
        while reader.failed_attempts < 5 and clock.now < 1_760_000_200:
            reader.poll(clock.tick())
        assert reader.state == "failed" and reader.io_errors == {"refused": 5}
        assert "another client is connected" in (reader.last_error or "")
        assert llrp.SET_READER_CONFIG not in busy.received_types()
    finally:
        busy.close()


@pytest.mark.parametrize(
    ("rejected", "connects"), [(llrp.ADD_ROSPEC, False), (llrp.DELETE_ROSPEC, True)]
)
def test_configuration_rejected_by_the_reader(rejected: int, connects: bool) -> None:
    picky = FakeLlrpReader(reject={rejected: 101})
    try:
        reader = LlrpReader(llrp_config(picky.port))
        poll_until(reader, lambda _: reader.state == "connected" or reader.failed_attempts > 0)
        if connects:  # "nothing to delete" must not stop the connection
            assert reader.state == "connected" and reader.io_errors == {}
        else:
            assert reader.io_errors == {"config_rejected": 1} and reader.state == "connecting"
            assert reader.last_error == "ADD_ROSPEC rejected: 101 ADD_ROSPEC not accepted"
            assert not reader.is_open
        reader.close()
    finally:
        picky.close()


def test_reader_that_never_greets_times_out() -> None:
    mute = FakeLlrpReader(greeting_status=None)
    try:
        reader = LlrpReader(llrp_config(mute.port, connect_timeout_s=3))
        clock = SimClock(step_s=0.5)
        while not reader.failed_attempts and clock.now < 1_760_000_060:
            reader.poll(clock.tick())
        assert reader.io_errors == {"response_timeout": 1}
        assert reader.last_error == "no greeting (READER_EVENT_NOTIFICATION) within 3 s"
        reader.close()
    finally:
        mute.close()


def test_silent_reader_goes_stale_then_is_reconnected(fake: FakeLlrpReader) -> None:
    cfg = llrp_config(fake.port, presence=PresenceConfig(stale_after_s=10), connect_timeout_s=120)
    reader = LlrpReader(cfg)
    connect(reader)
    clock = SimClock(step_s=1.0, start=time.time())
    seen = []
    for _ in range(35):  # no keepalive, no report: the link is dead without saying so
        reader.poll(clock.tick())
        seen.append(reader.state)
    assert seen[0] == "connected" and "stale" in seen and seen[-1] == "reconnecting"
    assert reader.io_errors == {"silent_reconnect": 1}
    for _ in range(60):
        reader.poll(clock.tick())
        if reader.state == "connected":
            break
    assert reader.state == "connected" and fake.connections == 2
    reader.close()


def test_nobody_listening_backs_off_and_reports_failed() -> None:
    with socket.socket() as s:  # a port nothing listens on once this closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reader = LlrpReader(llrp_config(port), read_timeout_s=0.01)
    attempts_at = []
    for t in range(0, 100):
        before = reader.io_errors.get("connect_failed", 0)
        assert reader.poll(float(t)) == []
        for _ in range(100):  # the refusal may only show on the next look at the socket
            if not reader.is_open:
                break
            reader.poll(float(t))
        if reader.io_errors.get("connect_failed", 0) > before:
            attempts_at.append(t)
    assert attempts_at == [0, 1, 3, 7, 15, 31, 61, 91]  # 1, 2, 4, 8, 16, 30, 30 s
    assert reader.state == "failed"
    assert "refused" in (reader.last_error or "").lower()


def test_make_reader_picks_the_kind() -> None:
    net = make_reader(llrp_config(5084))
    assert isinstance(net, LlrpReader) and net.port == 5084 and not net.is_open


def test_reader_worker_feeds_the_aggregator_from_an_llrp_reader(fake: FakeLlrpReader) -> None:
    out: queue.Queue[Item] = queue.Queue(maxsize=256)
    stop = threading.Event()
    worker = ReaderWorker(llrp_config(fake.port), out, stop)
    worker.start()
    try:
        assert fake.running.wait(20)
        reads: list[TagRead] = []
        healthy = []
        deadline = time.monotonic() + 20
        while len(reads) < 3 and time.monotonic() < deadline:
            fake.send(report(fake, TagReport(EPCS[0], 2, -49)))
            try:
                item = out.get(timeout=0.5)
            except queue.Empty:
                continue
            assert isinstance(item, ReaderBatch) and item.reader_id == "shelf-net"
            reads += item.reads
            healthy.append(item.healthy)
        assert len(reads) >= 3 and {(r.epc, r.antenna) for r in reads} == {(EPCS[0], 2)}
        assert healthy[-1] and worker.state == "connected"
        assert worker.health()["errors"] == {}
    finally:
        stop.set()
        worker.join(timeout=10)
    assert fake.client_closed.wait(10)  # teardown said goodbye


def test_tcp_connect_that_never_completes_times_out() -> None:
    # A listener whose accept backlog is full drops further SYNs: the connect hangs, as it
    # does towards a reader that is switched off behind a switch.
    srv = socket.socket()
    fillers: list[socket.socket] = []
    try:
        srv.bind(("127.0.0.1", 0))
        srv.listen(0)
        port = srv.getsockname()[1]
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.2)
        reader = LlrpReader(llrp_config(port, connect_timeout_s=2), read_timeout_s=0.01)
        clock = SimClock(step_s=0.5)
        phases = []
        while not reader.failed_attempts and len(phases) < 20:
            reader.poll(clock.tick())
            phases.append(reader.phase)
        assert phases[:4] == ["connecting"] * 4 and phases[-1] == "idle"
        assert reader.io_errors == {"connect_failed": 1}
        assert reader.last_error == f"127.0.0.1:{port}: no TCP connection within 2 s"
        assert reader.state == "connecting" and not reader.is_open
    finally:
        for filler in fillers:
            filler.close()
        srv.close()
