"""SerialReader against pseudo-terminals: real frames with noise, byte-by-byte delivery, a polled
reader answering its inventory commands, unplug/replug through a by-id style symlink, a silent
reader, a missing port. Time is passed in, so outages of minutes take a second or two."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rfid.config import PresenceConfig, ReaderConfig
from rfid.crc import mcrf4xx_residue_ok
from rfid.events import ItemRemoved, StockEvent, TagRead
from rfid.protocols import chafon, m100
from rfid.serial_port import SerialReader
from rfid.stock import StockEngine
from tests.rfid.pty_sim import PtyPort
from tests.rfid.test_protocols import antennas_for, sample_stream


def config(port: Path, protocol: str, **kw: object) -> ReaderConfig:
    return ReaderConfig(
        id="shelf",
        port=str(port),
        protocol=protocol,  # type: ignore[arg-type]
        antennas=antennas_for(protocol),
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture()
def pty(tmp_path: Path):  # type: ignore[no-untyped-def]
    port = PtyPort(tmp_path / "usb-Chafon_UHF-if00-port0")
    yield port
    port.close()


def poll_until(
    reader: SerialReader, done: Callable[[list[TagRead]], bool], timeout_s: float = 10.0
) -> list[TagRead]:
    reads: list[TagRead] = []
    deadline = time.monotonic() + timeout_s
    while not done(reads) and time.monotonic() < deadline:
        reads += reader.poll(time.time())
    return reads


@pytest.mark.parametrize("protocol", ["rdm6300", "chafon18", "chafon288", "m100"])
@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_noisy_stream_split_into_small_writes(pty: PtyPort, protocol: str, chunk: int) -> None:
    stream, epcs = sample_stream(protocol)
    # A generous frame timeout: this machine is loaded, and a scheduler pause between two
    # 1-byte writes must not count as the silence that drops a half frame (tested in-process).
    reader = SerialReader(config(pty.link, protocol), frame_timeout_s=5.0)
    reads = reader.poll(time.time())  # opens the port (pyserial flushes older input on open)
    assert reader.is_open and reads == []
    for i in range(0, len(stream), chunk):
        pty.write(stream[i : i + chunk])
        reads += reader.poll(time.time())
        pty.drain()
    reads += poll_until(reader, lambda r: len(reads) + len(r) >= len(epcs), 5.0)
    assert [r.epc for r in reads] == epcs
    assert all(r.reader_id == "shelf" for r in reads)
    assert reader.state == "connected"
    assert sum(reader.parser.rejects.values()) >= 6
    assert reader.health(time.time()).errors == reader.parser.rejects
    reader.close()


def command_frames(data: bytearray) -> list[bytes]:
    frames = []
    while data:
        n = data[0] + 1
        if len(data) < n:
            break
        frames.append(bytes(data[:n]))
        del data[:n]
    return frames


def test_polled_chafon288_answers_each_antenna(pty: PtyPort) -> None:
    cfg = config(pty.link, "chafon288", poll_interval_s=0.05)
    reader = SerialReader(cfg, frame_timeout_s=5.0)
    pending = bytearray()
    answered = {1: 0, 2: 0}
    reads: list[TagRead] = []
    deadline = time.monotonic() + 10
    while min(answered.values()) < 5 and time.monotonic() < deadline:
        reads += reader.poll(time.time())
        pending += pty.drain()
        for cmd in command_frames(pending):
            assert mcrf4xx_residue_ok(cmd) and cmd[2] == chafon.CMD_INVENTORY
            antenna = cmd[10] - 0x80 + 1
            answered[antenna] += 1
            tag = bytes([0x30, antenna]) + bytes(10)
            noise = b"\x99\x01\x02" if answered[antenna] % 2 else b""
            pty.write(
                noise + chafon.build_inventory_response([(tag, 60 + antenna)], antenna=antenna)
            )
    reads += poll_until(reader, lambda r: False, 0.3)
    assert min(answered.values()) >= 5
    by_antenna = {(r.antenna, r.epc, r.rssi_raw) for r in reads}
    assert by_antenna == {(1, "3001" + "00" * 10, 61), (2, "3002" + "00" * 10, 62)}
    # The noise 99 01 02 looks like the header of a 153-byte frame: abandoned as "truncated"
    # as soon as a whole valid frame is found inside it, so no answer is delayed.
    assert set(reader.parser.rejects) <= {"truncated"} and reader.parser.discarded_bytes > 0
    reader.close()


class SimClock:
    """Simulated seconds advance by `step_s` per poll while the pty runs in real time."""

    def __init__(self, step_s: float = 0.5):
        self.now = 1_760_000_000.0
        self.step_s = step_s

    def tick(self) -> float:
        self.now += self.step_s
        return self.now


def test_unplug_replug_reconnects_without_false_removals(pty: PtyPort) -> None:
    cfg = config(pty.link, "m100", presence=PresenceConfig())
    reader = SerialReader(cfg, frame_timeout_s=5.0)
    engine = StockEngine([cfg], {})
    clock = SimClock()
    tags = [bytes([0x30, 0, i]) + bytes(9) for i in range(3)]
    events: list[StockEvent] = []
    states: list[str] = []

    def run(seconds: float, tags_on_shelf: list[bytes], plugged: bool = True) -> None:
        end = clock.now + seconds
        while clock.now < end:
            now = clock.tick()
            if plugged and pty.master_fd >= 0:
                pty.drain()
                pty.write(b"".join(m100.build_notification(t, -58) for t in tags_on_shelf))
            reads = reader.poll(now)
            engine.set_reader_health(reader.reader_id, reader.state == "connected", now)
            engine.ingest(reads)
            out = engine.tick(now)
            events.extend(out)
            if not states or states[-1] != reader.state:
                states.append(reader.state)

    run(60, tags)
    assert len(engine.present_items()) == 3
    assert m100.encode_start() in bytes(pty.received)  # stop + multi-poll on open

    half = m100.build_notification(bytes([0x30, 0xBB, 0x7E]) + bytes(9), -50)[:12]
    pty.write(half)  # the cable goes mid-frame
    run(0.5, [])
    pty.unplug()  # the USB cable is pulled: the by-id link disappears
    run(120, [], plugged=False)
    assert reader.state in ("reconnecting", "failed")
    assert not [e for e in events if isinstance(e, ItemRemoved)]
    assert len(engine.present_items()) == 3

    pty.replug()  # plugged back in (a new tty behind the same by-id name); one item was taken
    run(90, tags[:2])
    assert states[0] == "connected" and "reconnecting" in states and states[-1] == "connected"
    removed = [e for e in events if isinstance(e, ItemRemoved)]
    assert [e.epc for e in removed] == [tags[2].hex().upper()]
    assert set(engine.present_items()) == {t.hex().upper() for t in tags[:2]}  # no half frame
    health = reader.health(clock.now)
    assert health.errors["disconnects"] >= 1 and health.errors["open_failed"] >= 1
    assert health.last_frame_age_s is not None and health.last_frame_age_s < 5
    reader.close()


def test_silent_reader_goes_stale_then_is_reopened(pty: PtyPort) -> None:
    cfg = config(pty.link, "chafon18", presence=PresenceConfig(stale_after_s=10))
    reader = SerialReader(cfg, read_timeout_s=0.01)
    clock = SimClock(step_s=1.0)
    seen = []
    for _ in range(45):  # the reader never answers its inventory commands
        reader.poll(clock.tick())
        pty.drain()
        seen.append(reader.state)
    assert seen[0] == "connected" and "stale" in seen
    assert reader.io_errors.get("silent_reopen") == 1
    for _ in range(10):  # now it answers: connected again
        reader.poll(clock.tick())
        if pty.drain():
            pty.write(chafon.build_no_tag_response())
        reader.poll(clock.tick())
    assert reader.state == "connected"
    reader.close()


def test_missing_port_backs_off_and_reports_failed(tmp_path: Path) -> None:
    reader = SerialReader(config(tmp_path / "no-such-reader", "rdm6300"))
    attempts_at = []
    for t in range(0, 100):
        before = reader.io_errors.get("open_failed", 0)
        assert reader.poll(float(t)) == []
        if reader.io_errors.get("open_failed", 0) > before:
            attempts_at.append(t)
    assert attempts_at == [0, 1, 3, 7, 15, 31, 61, 91]  # 1, 2, 4, 8, 16, 30, 30 s
    assert reader.state == "failed"
    assert "could not open port" in (reader.last_error or "")


def test_one_inventory_command_in_flight(pty: PtyPort) -> None:
    cfg = config(pty.link, "chafon18", poll_interval_s=0.2)
    reader = SerialReader(cfg, read_timeout_s=0.01)
    clock = SimClock(step_s=0.1)
    for _ in range(70):  # 7 s of a reader that does not answer
        reader.poll(clock.tick())
    silent = command_frames(bytearray(pty.drain()))
    # Unanswered: the next command waits for the response timeout (0.2 + 0.5 s).
    assert 9 <= len(silent) <= 11
    for _ in range(70):  # now every command is answered at once: one per poll interval
        reader.poll(clock.tick())
        for _cmd in command_frames(bytearray(pty.drain())):
            pty.write(chafon.build_no_tag_response())
    assert reader.parser.frames_ok >= 30
    reader.close()


def test_backoff_restarts_after_a_stable_connection(tmp_path: Path) -> None:
    link = tmp_path / "usb-RDM6300-if00"
    reader = SerialReader(config(link, "rdm6300"), read_timeout_s=0.01)
    clock = SimClock(step_s=1.0)
    for _ in range(4):  # not plugged in yet: attempts at +0, +1, +3 (backoff 1, 2, then 4 s)
        reader.poll(clock.tick())
    assert reader.io_errors["open_failed"] == 3
    port = PtyPort(link)
    try:
        for _ in range(40):  # plugged in, no card in front of it: silent but healthy
            reader.poll(clock.tick())
        assert reader.state == "connected"
        port.unplug()
        reader.poll(clock.tick())
        assert reader.state == "reconnecting"
        lost_at = clock.now
        port.replug()
        while not reader.is_open and clock.now < lost_at + 30:
            reader.poll(clock.tick())
        assert reader.is_open and clock.now - lost_at == 1.0  # 1 s, not the 8 s it had grown to
    finally:
        port.close()
        reader.close()
