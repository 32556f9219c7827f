"""RFID reader configuration as technicians write it in the device YAML."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
Protocol = Literal["rdm6300", "chafon18", "chafon288", "m100", "llrp"]
# Readers whose frames carry no antenna number: every read is antenna 1.
SINGLE_ANTENNA_PROTOCOLS = frozenset({"rdm6300", "chafon18", "m100"})
# Readers on the network (host + TCP port) rather than on a serial port.
NETWORK_PROTOCOLS = frozenset({"llrp"})
DEFAULT_LLRP_PORT = 5084
MAX_SERIAL_ANTENNA = 4
MAX_LLRP_ANTENNA = 32  # LLRP antenna IDs are u16; fixed readers have 1-8 ports, 32 with hubs
DEFAULT_BAUD: dict[str, int] = {
    "rdm6300": 9600,
    "chafon18": 57600,
    "chafon288": 57600,
    "m100": 115200,
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AntennaConfig(_Section):
    zone: str = Field(pattern=ID_PATTERN, description="zone (shelf) this antenna watches")
    rssi_offset_db: float = Field(
        default=0.0, description="calibration added to this antenna's RSSI before comparing"
    )


class PresenceConfig(_Section):
    """Smoothing defaults follow the shelf column of the RFID reference (section 4)."""

    epoch_s: float = Field(default=1.0, gt=0, description="length of one read epoch")
    appear_min_reads: int = Field(
        default=2, ge=1, description="reads needed before an item counts as present"
    )
    appear_min_epochs: int = Field(
        default=2, ge=1, description="distinct epochs those reads must span"
    )
    absence_timeout_s: float = Field(
        default=30.0, gt=0, description="an item unseen this long (reader healthy) is removed"
    )
    adaptive: bool = Field(
        default=True, description="SMURF-style adaptive window per tag (bounded by the timeout)"
    )
    zone_hysteresis_db: float = Field(
        default=3.0, ge=0, description="another zone must lead by this many dB to move an item"
    )
    zone_dwell_s: float = Field(
        default=10.0, ge=0, description="...for this long before the item is moved"
    )
    rssi_alpha: float = Field(default=0.3, gt=0, le=1, description="EWMA weight of a new read")
    removal_delta: float = Field(
        default=1e-9,
        gt=0,
        lt=1,
        description="adaptive window: accepted chance that a present tag goes unread for its"
        " whole window (sets how long a well-read tag may be missed before removal)",
    )
    min_absence_s: float = Field(
        default=10.0,
        gt=0,
        description="adaptive window: never remove a tag unseen for less than this"
        " (a shopper blocking the shelf); capped by absence_timeout_s",
    )
    rssi_window_s: float = Field(
        default=5.0,
        gt=0,
        description="a zone that has not read the tag for this long drops out of the RSSI"
        " comparison (its smoothed value restarts on the next read)",
    )
    stale_after_s: float = Field(
        default=10.0, gt=0, description="a reader silent this long is stale: no removals"
    )
    low_stock_hold_s: float = Field(
        default=60.0, ge=0, description="count must stay low this long before stock_low"
    )


class ReaderConfig(_Section):
    id: str = Field(pattern=ID_PATTERN, description="reader name, unique on the device")
    port: str | int | None = Field(
        default=None,
        description="serial readers: the serial port path (required; prefer"
        " /dev/serial/by-id/... so a replug keeps its name); llrp: the TCP port (default 5084)",
    )
    protocol: Protocol = Field(
        description="reader protocol: rdm6300, chafon18, chafon288, m100 (serial readers) or"
        " llrp (network readers: Impinj, Zebra, ... over LLRP 1.0.1)"
    )
    host: str | None = Field(
        default=None,
        min_length=1,
        description="llrp only (required there): the reader's IP address or host name",
    )
    connect_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="llrp: give up a TCP connection attempt, or a configuration answer the reader"
        " owes, after this long (then retried with backoff)",
    )
    baud: int | None = Field(
        default=None, gt=0, description="baud rate; default depends on the protocol (serial only)"
    )
    address: int = Field(default=0, ge=0, le=255, description="Chafon reader address (FF = all)")
    poll_interval_s: float = Field(
        default=0.2,
        gt=0,
        description="how often to send the inventory command (polled readers; a Chafon 288"
        " inventories its configured antennas in turn, one per command)",
    )
    antennas: dict[int, AntennaConfig] = Field(
        description="antenna number (1-4; llrp 1-32) to the zone it watches", min_length=1
    )
    presence: PresenceConfig = Field(
        default_factory=PresenceConfig, description="read smoothing and stock-event timing"
    )

    @model_validator(mode="after")
    def _connection(self) -> ReaderConfig:
        if self.protocol in NETWORK_PROTOCOLS:
            if self.host is None:
                raise ValueError(
                    f"protocol {self.protocol} is a network reader: set `host` to its IP address"
                    f" or name (and `port` if it is not {DEFAULT_LLRP_PORT})"
                )
            port = self.port
            if isinstance(port, str):
                if not port.isdigit():
                    raise ValueError(
                        f"protocol {self.protocol}: `port` is the reader's TCP port number"
                        f" (default {DEFAULT_LLRP_PORT}), not a serial device like {port!r}"
                    )
                port = int(port)
            if port is not None and not 1 <= port <= 65535:
                raise ValueError(f"protocol {self.protocol}: TCP port {port} is not in 1-65535")
            self.port = DEFAULT_LLRP_PORT if port is None else port
            if self.baud is not None:
                raise ValueError(
                    f"protocol {self.protocol} is a network reader: `baud` applies to serial"
                    " readers only"
                )
            return self
        if self.host is not None:
            raise ValueError(
                f"`host` is for network readers (protocol llrp); protocol {self.protocol} reads"
                " the serial port given in `port`"
            )
        if self.port is None:
            raise ValueError(
                f"protocol {self.protocol} reads a serial port: set `port` to its device path,"
                " e.g. /dev/serial/by-id/usb-..."
            )
        if not isinstance(self.port, str):
            raise ValueError(
                f"protocol {self.protocol}: `port` must be a serial device path such as"
                f" /dev/serial/by-id/usb-..., not the number {self.port} (TCP ports are for"
                " protocol llrp, with `host`)"
            )
        return self

    @model_validator(mode="after")
    def _antenna_numbers(self) -> ReaderConfig:
        top = MAX_LLRP_ANTENNA if self.protocol in NETWORK_PROTOCOLS else MAX_SERIAL_ANTENNA
        for n in self.antennas:
            if not 1 <= n <= top:
                raise ValueError(
                    f"antenna {n} does not exist: {self.protocol} readers have antennas 1 to {top}"
                )
        if self.protocol in SINGLE_ANTENNA_PROTOCOLS and set(self.antennas) != {1}:
            raise ValueError(
                f"protocol {self.protocol} does not report antenna numbers: map antenna 1 only"
                " (use one reader per shelf, or a chafon288 for several antennas)"
            )
        return self

    @property
    def is_network(self) -> bool:
        return self.protocol in NETWORK_PROTOCOLS

    @property
    def serial_path(self) -> str:
        """The serial port path (serial protocols; validated to be a string)."""
        if not isinstance(self.port, str) or self.is_network:
            raise ValueError(f"reader {self.id} ({self.protocol}) has no serial port")
        return self.port

    @property
    def tcp_port(self) -> int:
        """The TCP port of a network reader (5084 unless configured)."""
        if not isinstance(self.port, int) or not self.is_network:
            raise ValueError(f"reader {self.id} ({self.protocol}) is not a network reader")
        return self.port

    @property
    def effective_baud(self) -> int:
        return self.baud or DEFAULT_BAUD[self.protocol]


__all__ = [
    "DEFAULT_BAUD",
    "DEFAULT_LLRP_PORT",
    "MAX_LLRP_ANTENNA",
    "NETWORK_PROTOCOLS",
    "SINGLE_ANTENNA_PROTOCOLS",
    "AntennaConfig",
    "PresenceConfig",
    "Protocol",
    "ReaderConfig",
]
