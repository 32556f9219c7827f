"""Checks of what a valid config points at, run by `check-config` and before `run` starts.

Each check returns (key path, message) pairs; config_report maps them to YAML lines.
They must not touch hardware: files and hashes only.
"""

from __future__ import annotations

from collections.abc import Callable

from configfile import PathKey, missing_files
from edge_agent.config import AgentConfig


def check_mqtt_files(cfg: AgentConfig) -> list[tuple[PathKey, str]]:
    issues: list[tuple[PathKey, str]] = []
    pw = cfg.mqtt.password_file
    # systemd creates /run/credentials/<unit>/ only while the unit runs (LoadCredential=), so
    # a technician checking the config from a shell cannot see it; the daemon checks again.
    if pw is not None and not pw.is_relative_to("/run/credentials") and not pw.is_file():
        issues.append((("mqtt", "password_file"), f"file {cfg.mqtt.password_file} not found"))
    if cfg.mqtt.tls is not None:
        tls = cfg.mqtt.tls
        issues += missing_files([(("mqtt", "tls", name), getattr(tls, name))
                                 for name in ("ca_file", "cert_file", "key_file")])  # fmt: skip
    return issues


def check_camera_models(cfg: AgentConfig) -> list[tuple[PathKey, str]]:
    """Each camera's model resolves to a file whose sha256 matches the manifest."""
    from vision.models import ModelError, resolve_model

    issues: list[tuple[PathKey, str]] = []
    checked: dict[str, str | None] = {}
    for i, camera in enumerate(cfg.cameras):
        if camera.model not in checked:  # hash each file once, however many cameras use it
            try:
                resolve_model(camera.model)
                checked[camera.model] = None
            except ModelError as exc:
                checked[camera.model] = str(exc)
        message = checked[camera.model]
        if message is not None:
            issues.append((("cameras", i, "model"), message))
    return issues


RESOURCE_CHECKS: list[Callable[[AgentConfig], list[tuple[PathKey, str]]]] = [
    check_mqtt_files,
    check_camera_models,
]

__all__ = ["RESOURCE_CHECKS", "check_camera_models", "check_mqtt_files"]
