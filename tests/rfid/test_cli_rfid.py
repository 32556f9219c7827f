"""`footfall-agent rfid decode|listen` through the real entry point, in subprocesses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_agent.cli import main
from rfid.protocols import chafon, m100
from tests.rfid.pty_sim import PtyPort

REPO = Path(__file__).resolve().parents[2]


def agent(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def test_decode_json() -> None:
    res = agent("rfid", "decode", "3074257BF7194E4000001A85", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["scheme"] == "sgtin-96"
    assert doc["uri"] == "urn:epc:id:sgtin:0614141.812345.6789"
    assert (doc["gtin"], doc["serial"], doc["filter"]) == ("80614141123458", "6789", 3)
    assert doc["epc"] == "3074257BF7194E4000001A85"


def test_decode_sscc_and_unknown_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    # Same entry point, in-process: the subprocess tests above and below cover the wiring.
    assert main(["rfid", "decode", "3114257BF4499602D2000000", "--json"]) == 0
    sscc = json.loads(capsys.readouterr().out)
    assert sscc["sscc"] == "106141412345678908" and "gtin" not in sscc
    assert main(["rfid", "decode", "e200001d7315016521408fc6"]) == 0
    text = capsys.readouterr().out
    assert "unknown" in text and "E200001D7315016521408FC6" in text
    assert main(["rfid", "decode", "3074257BF7194E4000001A8"]) == 2
    assert "odd number of hex digits" in capsys.readouterr().err


def test_decode_malformed_hex_exits_2() -> None:
    res = agent("rfid", "decode", "30ZZ", "--json")
    assert res.returncode == 2
    assert res.stdout == ""
    assert "rfid decode:" in res.stderr and "not hex" in res.stderr


def test_listen_json_against_a_simulated_m100(tmp_path: Path) -> None:
    port = PtyPort(tmp_path / "usb-M100-if00")
    tags = [bytes.fromhex("3074257BF7194E4000001A85"), bytes.fromhex("E200001D7315016521408FC6")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "rfid", "listen", "--port", str(port.link),
         "--protocol", "m100", "--json", "--duration", "2"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            port.drain()
            port.write(b"\x00junk" + b"".join(m100.build_notification(t, -61) for t in tags))
            time.sleep(0.05)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        port.close()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines, err
    assert {d["epc"] for d in lines} == {t.hex().upper() for t in tags}
    sgtin = next(d for d in lines if d["scheme"] == "sgtin-96")
    assert sgtin["gtin"] == "80614141123458" and sgtin["antenna"] == 1 and sgtin["rssi"] == -61
    factory = next(d for d in lines if d["scheme"] == "unknown")
    assert factory["gtin"] is None
    assert all(isinstance(d["ts"], float) for d in lines)
    assert m100.encode_start() in bytes(port.received)  # it started the multi-poll
    assert "reads of 2 tags" in err


def test_listen_polls_a_chafon288_on_every_antenna(tmp_path: Path) -> None:
    port = PtyPort(tmp_path / "usb-Chafon-if00")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "rfid", "listen", "--port", str(port.link),
         "--protocol", "chafon288", "--duration", "2", "--poll-interval", "0.05"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    pending = bytearray()
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            pending += port.drain()
            while pending and len(pending) >= pending[0] + 1:
                cmd = bytes(pending[: pending[0] + 1])
                del pending[: pending[0] + 1]
                antenna = cmd[10] - 0x80 + 1
                tag = bytes([0x30, 0, 0, antenna]) + bytes(8)
                port.write(chafon.build_inventory_response([(tag, 70)], antenna=antenna))
            time.sleep(0.02)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        port.close()
    assert proc.returncode == 0, err
    antennas = {line.split()[2] for line in out.splitlines() if " ant " in line}
    assert antennas == {"1", "2", "3", "4"}  # listen maps all four antennas
    for n in range(1, 5):
        assert f"antenna {n}: " in err and "reads of 1 tags" in err


def test_listen_missing_port_fails_clearly(tmp_path: Path) -> None:
    res = agent("rfid", "listen", "--port", str(tmp_path / "nope"), "--protocol", "rdm6300")
    assert res.returncode == 69
    assert "cannot open" in res.stderr and os.fspath(tmp_path / "nope") in res.stderr


def test_listen_json_against_a_fake_llrp_reader() -> None:
    from rfid.protocols import llrp
    from tests.rfid.llrp_sim import FakeLlrpReader

    fake = FakeLlrpReader()
    tags = [
        llrp.TagReport("3074257BF7194E4000001A85", 3, -52),
        llrp.TagReport("E200001D7315016521408FC6", 7, -66),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "rfid", "listen", "--protocol", "llrp",
         "--host", "127.0.0.1", "--port", str(fake.port), "--json", "--duration", "2"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if fake.running.is_set():
                fake.send(b"\x00junk" + llrp.build_ro_access_report(fake.next_id(), tags))
            time.sleep(0.05)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        fake.close()
    assert proc.returncode == 0, err
    docs = [json.loads(line) for line in out.splitlines()]
    assert {(d["epc"], d["antenna"], d["rssi"]) for d in docs} == {
        ("3074257BF7194E4000001A85", 3, -52),
        ("E200001D7315016521408FC6", 7, -66),
    }
    assert {d["scheme"] for d in docs} == {"sgtin-96", "unknown"}
    add = next(m for m in fake.received if m.msg_type == llrp.ADD_ROSPEC)
    assert add.body == llrp.encode_add_rospec(0, 1, [0])[10:]  # antenna 0: all of them
    assert fake.received[-1].msg_type == llrp.CLOSE_CONNECTION
    assert f"listening on 127.0.0.1:{fake.port} (llrp, all antennas)" in err
    assert "reads of 2 tags" in err and "antenna 7: " in err


def test_listen_llrp_errors_are_clear() -> None:
    res = agent("rfid", "listen", "--protocol", "llrp")
    assert res.returncode == 2
    assert "rfid listen: protocol llrp is a network reader: set `host`" in res.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = agent("rfid", "listen", "--protocol", "llrp", "--host", "127.0.0.1", "--port", str(port))
    assert res.returncode == 69
    assert f"cannot connect to 127.0.0.1:{port}" in res.stderr and "refused" in res.stderr
    res = agent("rfid", "listen", "--protocol", "m100")
    assert res.returncode == 2 and "m100 reads a serial port" in res.stderr
