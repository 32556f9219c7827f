"""The device configuration (one YAML file per device), declared once as pydantic models.

Every field has a description: they are the technicians' reference (`check-config --schema`).
Secrets never sit in the YAML: the MQTT password comes from `password_file` or `password_env`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from rfid.config import ReaderConfig
from rfid.epc import gtin_check_digit
from vision.config import CameraConfig

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
DEFAULT_CONFIG_PATH = Path("/etc/footfall/agent.yaml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreConfig(_Section):
    id: str = Field(pattern=ID_PATTERN, description="store identifier, shared by its devices")
    timezone: str = Field(
        default="UTC", description="IANA time zone of the store, e.g. Europe/London"
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name like Europe/Paris)"
            ) from None
        return v


class DeviceConfig(_Section):
    id: str = Field(pattern=ID_PATTERN, description="device identifier, unique in the store")


class TlsConfig(_Section):
    ca_file: Path | None = Field(default=None, description="CA bundle to verify the broker")
    cert_file: Path | None = Field(default=None, description="client certificate (mutual TLS)")
    key_file: Path | None = Field(default=None, description="client private key (mutual TLS)")

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class MqttConfig(_Section):
    host: str = Field(default="localhost", min_length=1, description="broker host name or IP")
    port: int = Field(default=1883, ge=1, le=65535, description="broker TCP port")
    protocol: Literal["5", "3.1.1"] = Field(default="5", description="MQTT protocol version")
    tls: TlsConfig | None = Field(default=None, description="TLS settings; omit for plain TCP")
    username: str | None = Field(default=None, description="broker user name")
    password_file: Path | None = Field(
        default=None, description="file holding the broker password (e.g. systemd credential)"
    )
    password_env: str | None = Field(
        default=None, description="environment variable holding the broker password"
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive")
    session_expiry_s: int = Field(
        default=7 * 86400, ge=0, description="broker keeps our session this long (MQTT 5)"
    )
    max_inflight: int = Field(
        default=64, ge=1, le=65535, description="unacknowledged QoS 1 messages at once"
    )
    reconnect_min_s: float = Field(default=1.0, gt=0, description="first reconnect delay")
    reconnect_max_s: float = Field(default=60.0, gt=0, description="longest reconnect delay")

    @model_validator(mode="after")
    def _password(self) -> MqttConfig:
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("give password_file or password_env, not both")
        if (self.password_file or self.password_env) and not self.username:
            raise ValueError("a password needs a username")
        return self

    def password(self) -> str | None:
        """The secret, read at connect time so a rotated credential is picked up."""
        if self.password_file is not None:
            return self.password_file.read_text().strip()
        if self.password_env is not None:
            return os.environ.get(self.password_env)
        return None


class OutboxConfig(_Section):
    path: Path = Field(
        default=Path("/var/lib/footfall/outbox.db"), description="SQLite outbox file"
    )
    max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024 * 1024,
        description="outbox size cap; past it the oldest summaries are dropped (never stock)",
    )
    max_age_s: float = Field(
        default=30 * 86400,
        gt=0,
        description="undelivered messages that have waited this long are dropped; the wait is "
        "counted in time the device ran, so a clock that NTP sets, or days switched off, do "
        "not age them",
    )


class AggregationConfig(_Section):
    interval_s: int = Field(
        default=60,
        ge=1,
        le=3600,
        description="summary interval, aligned to wall-clock boundaries in the store's zone",
    )

    @field_validator("interval_s")
    @classmethod
    def _divides(cls, v: int) -> int:
        if 3600 % v != 0:
            raise ValueError("interval_s must divide an hour (e.g. 60, 300, 900)")
        return v


class HealthConfig(_Section):
    status_interval_s: float = Field(
        default=60.0, gt=0, description="how often the status message is published"
    )


class ProductConfig(_Section):
    name: str = Field(min_length=1, description="product name shown in reports")
    low_stock_threshold: int = Field(
        default=2, ge=0, description="stock_low when the zone count falls to this or below"
    )


def _valid_gtin(v: str) -> str:
    if len(v) != 14 or not v.isdigit():
        raise ValueError(f"product key {v!r} must be a 14-digit GTIN (quote it in YAML)")
    if gtin_check_digit(v[:13]) != int(v[13]):
        raise ValueError(f"GTIN {v} has a wrong check digit (expected {gtin_check_digit(v[:13])})")
    return v


Gtin = Annotated[str, AfterValidator(_valid_gtin)]


class AgentConfig(_Section):
    store: StoreConfig = Field(description="the store this device belongs to")
    device: DeviceConfig = Field(description="this device")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="broker connection")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig, description="durable outbox")
    aggregation: AggregationConfig = Field(
        default_factory=AggregationConfig, description="interval summaries"
    )
    health: HealthConfig = Field(default_factory=HealthConfig, description="status reporting")
    cameras: list[CameraConfig] = Field(default_factory=list, description="cameras to count")
    readers: list[ReaderConfig] = Field(default_factory=list, description="RFID readers")
    products: dict[Gtin, ProductConfig] = Field(
        default_factory=dict, description="products by GTIN-14: name and low-stock threshold"
    )

    @model_validator(mode="after")
    def _consistent(self) -> AgentConfig:
        # Raised as a ValidationError with each problem's own location, so check-config points
        # at the offending entry's line instead of the top of the file.
        issues: list[tuple[tuple[str | int, ...], str, object]] = []
        for kind, ids in (
            ("cameras", [c.id for c in self.cameras]),
            ("readers", [r.id for r in self.readers]),
        ):
            first: dict[str, int] = {}
            for i, ident in enumerate(ids):
                if ident in first:
                    issues.append(
                        (
                            (kind, i, "id"),
                            f"duplicate id {ident!r} (already used by {kind}[{first[ident]}])",
                            ident,
                        )
                    )
                first.setdefault(ident, i)
        if issues:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    {
                        "type": PydanticCustomError("consistency", message),
                        "loc": loc,
                        "input": value,
                    }
                    for loc, message, value in issues
                ],
            )
        return self


__all__ = [
    "DEFAULT_CONFIG_PATH",
    "AgentConfig",
    "AggregationConfig",
    "DeviceConfig",
    "HealthConfig",
    "MqttConfig",
    "OutboxConfig",
    "ProductConfig",
    "StoreConfig",
    "TlsConfig",
]
