"""The central configuration (one YAML file), declared once as pydantic models.

Every field has a description: they are the operator's reference. The broker password never
sits in the YAML: it comes from `password_file` or `password_env`. Example:

    mqtt:
      host: broker.example.com
      port: 8883
      tls: {ca_file: /etc/footfall/ca.pem}
      username: central
      password_file: mqtt-password  # relative: in $CREDENTIALS_DIRECTORY (systemd)
      client_id: central-1        # unique per instance
      group: footfall-central     # instances in one group share the load
      # protocol: "3.1.1"          # only for a broker without MQTT 5, then also:
      # shared_subscription: false
    storage:
      url: postgresql://footfall@db.example.com/footfall
    ingest:
      batch_max_messages: 1000
      dead_letter_max_rows: 100000
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from configfile import EX_CONFIG, Check, ConfigError, PathKey, load_file, missing_files

DEFAULT_CONFIG_PATH = Path("/etc/footfall/central.yaml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    tls: TlsConfig | None = Field(default=None, description="TLS settings; omit for plain TCP")
    username: str | None = Field(default=None, description="broker user name")
    password_file: Path | None = Field(
        default=None,
        description="file holding the broker password; a relative path is taken inside "
        "$CREDENTIALS_DIRECTORY when systemd sets it (LoadCredential=: the same name works "
        "for every instance of a templated unit), else from the working directory",
    )
    password_env: str | None = Field(
        default=None, description="environment variable holding the broker password"
    )
    client_id: str = Field(
        default_factory=lambda: f"footfall-central-{socket.gethostname()}",
        min_length=1,
        max_length=128,
        description="MQTT client id; must differ between instances (the session is kept by it)",
    )
    group: str = Field(
        default="footfall-central",
        pattern=r"^[A-Za-z0-9_.\-]{1,64}$",
        description="shared-subscription group: instances in one group split the messages",
    )
    topic_filter: str = Field(
        default="footfall/v1/#", description="what to subscribe to (inside $share/<group>/)"
    )
    protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description='MQTT protocol version: "5" (default) or "3.1.1" for brokers without MQTT 5 '
        "(3.1.1 has no shared subscriptions: set shared_subscription: false and run one instance)",
    )
    shared_subscription: bool = Field(
        default=True,
        description="subscribe as $share/<group>/<topic_filter> so instances in one group split "
        "the stream (needs MQTT 5); false: a plain subscription, for a single instance",
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive")
    session_expiry_s: int = Field(
        default=3600,
        ge=0,
        description="broker keeps this instance's session this long after a disconnect, so "
        "a restarted instance (same client_id) gets what arrived meanwhile. The broker keeps "
        "routing this instance's share of the shared subscription to the offline session "
        "until then (seen with mosquitto 2.0.11): to retire an instance, run it once more with "
        "session_expiry_s: 0 so it drains its backlog and the broker drops the session. "
        "MQTT 3.1.1 has no expiry: any value above 0 is a persistent session (clean_session "
        "false) that the broker keeps until its own limit, 0 a clean session",
    )
    receive_maximum: int = Field(
        default=2000,
        ge=1,
        le=65535,
        description="unacknowledged messages the broker may send at once; messages are "
        "acknowledged only after they are committed to storage, so this bounds the batch size "
        "(mosquitto also caps it with max_inflight_messages)",
    )
    reconnect_min_s: float = Field(default=1.0, gt=0, description="first reconnect delay")
    reconnect_max_s: float = Field(default=60.0, gt=0, description="longest reconnect delay")

    @model_validator(mode="after")
    def _protocol(self) -> MqttConfig:
        if self.protocol == "3.1.1" and self.shared_subscription:
            raise ValueError(
                'shared_subscription needs protocol "5" ($share/<group>/... is MQTT 5): with '
                'protocol "3.1.1" set shared_subscription: false (one instance per broker)'
            )
        return self

    @model_validator(mode="after")
    def _password(self) -> MqttConfig:
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("give password_file or password_env, not both")
        if (self.password_file or self.password_env) and not self.username:
            raise ValueError("a password needs a username")
        return self

    def password_path(self) -> Path | None:
        p = self.password_file
        if p is None or p.is_absolute():
            return p
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        return Path(creds) / p if creds else p

    def password(self) -> str | None:
        """The secret, read at connect time so a rotated credential is picked up."""
        path = self.password_path()
        if path is not None:
            return path.read_text().strip()
        if self.password_env is not None:
            return os.environ.get(self.password_env)
        return None


class StorageConfig(_Section):
    url: str = Field(
        default="sqlite:///var/lib/footfall-central/central.db",
        pattern=r"^(sqlite://.+|postgres(ql)?://.*)$",
        description="sqlite:///ABSOLUTE/PATH.db or postgresql://user@host:port/db",
    )


class IngestConfig(_Section):
    batch_max_messages: int = Field(
        default=1000, ge=1, le=100_000, description="most messages committed in one transaction"
    )
    batch_max_wait_s: float = Field(
        default=0.2,
        gt=0,
        le=10,
        description="longest a message waits for its batch to fill before it is committed",
    )
    queue_max_messages: int = Field(
        default=20_000,
        ge=100,
        description="received but uncommitted messages held in memory; when full the MQTT "
        "client stops reading (the broker keeps the rest)",
    )
    dead_letter_max_payload_bytes: int = Field(
        default=4096, ge=0, description="raw bytes kept per rejected payload (the rest is cut)"
    )
    dead_letter_max_rows: int = Field(
        default=100_000, ge=1, description="dead letters kept; the oldest are deleted past this"
    )
    stats_interval_s: float = Field(default=60.0, gt=0, description="how often stats are logged")
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="ingest processes of this instance, each with its own connection in the "
        "shared-subscription group (client ids <client_id>, <client_id>-w2, ...): one process "
        "uses about one core; needs shared_subscription",
    )


class CentralConfig(_Section):
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="the broker to ingest from")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="where data goes")
    ingest: IngestConfig = Field(default_factory=IngestConfig, description="batching and caps")

    @model_validator(mode="after")
    def _workers(self) -> CentralConfig:
        if self.ingest.workers > 1 and not self.mqtt.shared_subscription:
            # Each worker would receive every message: all work done N times.
            raise ValueError(
                "ingest.workers above 1 needs mqtt.shared_subscription (MQTT 5), so the "
                "workers split the stream instead of each receiving all of it"
            )
        return self

    def worker(self, index: int) -> CentralConfig:
        """The config of worker `index` (0-based): worker 0 keeps the client id, so the
        persistent session of a single-process instance carries over to worker 0."""
        if index == 0:
            return self
        mqtt = self.mqtt.model_copy(update={"client_id": f"{self.mqtt.client_id}-w{index + 1}"})
        return self.model_copy(update={"mqtt": mqtt})


# Errors name the file, line and key: `FILE:LINE KEY: message`, one per line.
CentralConfigError = ConfigError


def systemd_credential(cfg: CentralConfig) -> bool:
    """The password file is a systemd credential: it exists only while the unit runs."""
    pw = cfg.mqtt.password_file
    if pw is None or "CREDENTIALS_DIRECTORY" in os.environ:
        return False
    return not pw.is_absolute() or pw.is_relative_to("/run/credentials")


def check_files(cfg: CentralConfig, at_start: bool = False) -> list[tuple[PathKey, str]]:
    """What the config points at must exist: the password file and the TLS files. From a
    shell (`check-config`) a systemd credential cannot be seen, so it is left to `serve`,
    which checks every file when it starts (`at_start`), where systemd has put them."""
    issues: list[tuple[PathKey, str]] = []
    pw = cfg.mqtt.password_path()
    if pw is not None and (at_start or not systemd_credential(cfg)) and not pw.is_file():
        issues.append((("mqtt", "password_file"), f"file {pw} not found"))
    if cfg.mqtt.tls is not None:
        tls = cfg.mqtt.tls
        issues += missing_files([(("mqtt", "tls", name), getattr(tls, name))
                                 for name in ("ca_file", "cert_file", "key_file")])  # fmt: skip
    return issues


def load_config(path: Path, check: bool = False, at_start: bool = False) -> CentralConfig:
    """The config in `path`; raises CentralConfigError listing every mistake. A file with
    nothing in it means every default. `check`: also verify the files it points at
    (`check-config`; `serve` with `at_start`, before it connects)."""
    checks: list[Check[CentralConfig]] = [lambda cfg: check_files(cfg, at_start)] if check else []
    return load_file(path, CentralConfig, checks, allow_empty=True)


__all__ = [
    "DEFAULT_CONFIG_PATH",
    "EX_CONFIG",
    "CentralConfig",
    "CentralConfigError",
    "IngestConfig",
    "MqttConfig",
    "StorageConfig",
    "TlsConfig",
    "check_files",
    "load_config",
    "systemd_credential",
]
