"""Reader configuration: serial readers need a device path, LLRP readers a host (and maybe a
TCP port); mistakes are reported with the file line and a sentence saying what to write."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import ValidationError

from edge_agent.config_report import ConfigError, parse_config_text
from rfid.config import AntennaConfig, ReaderConfig

ANT = {1: AntennaConfig(zone="a")}


def error_of(**kw: object) -> str:
    with pytest.raises(ValidationError) as info:
        ReaderConfig(id="r", antennas=ANT, **kw)  # type: ignore[arg-type]
    return str(info.value.errors()[0]["msg"]).removeprefix("Value error, ")


def test_llrp_reader_defaults_to_port_5084_and_accepts_a_numeric_string() -> None:
    cfg = ReaderConfig(id="r", protocol="llrp", host="10.0.0.5", antennas=ANT)
    assert (cfg.host, cfg.port, cfg.tcp_port, cfg.is_network) == ("10.0.0.5", 5084, 5084, True)
    assert ReaderConfig(id="r", protocol="llrp", host="h", port="5085", antennas=ANT).port == 5085
    wide = {n: AntennaConfig(zone=f"z{n}") for n in (1, 8, 32)}
    assert set(ReaderConfig(id="r", protocol="llrp", host="h", antennas=wide).antennas) == {
        1,
        8,
        32,
    }
    with pytest.raises(ValueError, match="has no serial port"):
        _ = cfg.serial_path


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"protocol": "llrp"},
            "protocol llrp is a network reader: set `host` to its IP address or name (and"
            " `port` if it is not 5084)",
        ),
        (
            {"protocol": "llrp", "host": "h", "port": "/dev/ttyUSB0"},
            "protocol llrp: `port` is the reader's TCP port number (default 5084), not a serial"
            " device like '/dev/ttyUSB0'",
        ),
        (
            {"protocol": "llrp", "host": "h", "port": 70000},
            "protocol llrp: TCP port 70000 is not in 1-65535",
        ),
        (
            {"protocol": "llrp", "host": "h", "baud": 9600},
            "protocol llrp is a network reader: `baud` applies to serial readers only",
        ),
        (
            {"protocol": "m100"},
            "protocol m100 reads a serial port: set `port` to its device path, e.g."
            " /dev/serial/by-id/usb-...",
        ),
        (
            {"protocol": "chafon288", "port": 5084},
            "protocol chafon288: `port` must be a serial device path such as"
            " /dev/serial/by-id/usb-..., not the number 5084 (TCP ports are for protocol llrp,"
            " with `host`)",
        ),
        (
            {"protocol": "rdm6300", "port": "/dev/ttyUSB0", "host": "10.0.0.5"},
            "`host` is for network readers (protocol llrp); protocol rdm6300 reads the serial"
            " port given in `port`",
        ),
    ],
)
def test_connection_mistakes_are_explained(kw: dict[str, object], message: str) -> None:
    assert error_of(**kw) == message


def test_antenna_ranges_depend_on_the_kind_of_reader() -> None:
    many = {33: AntennaConfig(zone="a")}
    with pytest.raises(ValidationError, match="llrp readers have antennas 1 to 32"):
        ReaderConfig(id="r", protocol="llrp", host="h", antennas=many)
    with pytest.raises(ValidationError, match="chafon288 readers have antennas 1 to 4"):
        ReaderConfig(id="r", protocol="chafon288", port="/dev/x", antennas={5: ANT[1]})


def test_device_config_errors_point_at_the_reader() -> None:
    text = textwrap.dedent(
        """\
        store: {id: s1, timezone: Europe/Paris}
        device: {id: d1}
        mqtt: {host: localhost}
        readers:
          - id: door
            protocol: llrp
            port: 5084
            antennas: {1: {zone: a}}
          - id: shelf
            protocol: llrp
            host: 192.168.1.40
            antennas: {1: {zone: b}, 2: {zone: c}}
          - id: till
            protocol: m100
            port: 5084
            antennas: {1: {zone: d}}
        """
    )
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, "device.yaml")
    issues = [str(i) for i in info.value.issues]
    assert len(issues) == 2
    assert issues[0].startswith("device.yaml:5 readers[0]: protocol llrp is a network reader")
    assert issues[1].startswith("device.yaml:13 readers[2]: protocol m100: `port` must be a")
    fixed = text.replace(
        "port: 5084\n    antennas: {1: {zone: a}}",
        "host: door-reader\n    antennas: {1: {zone: a}}",
    )
    cfg = parse_config_text(fixed.split("  - id: till")[0], "device.yaml")
    assert [(r.id, r.host, r.port) for r in cfg.readers] == [
        ("door", "door-reader", 5084),
        ("shelf", "192.168.1.40", 5084),
    ]
