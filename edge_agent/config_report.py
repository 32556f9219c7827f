"""Load the device YAML and turn every mistake into `FILE:LINE KEY.PATH: message`.

Technicians fix configs from these lines alone, so each error names the file, the line of the
offending key (or of its nearest parent when the key is missing) and the key path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from configfile import EX_CONFIG, Check, ConfigError, ConfigIssue, format_key, load_file, parse_text
from edge_agent.config import AgentConfig


def _resource_checks() -> list[Check[AgentConfig]]:
    """Checks of things the YAML points at (model files...), run by check-config and run.

    Explicit list, not plugin discovery: a check that fails to import must fail loudly.
    """
    from edge_agent.preflight import RESOURCE_CHECKS

    return list(RESOURCE_CHECKS)


def parse_config_text(text: str, file: str, check_resources: bool = False) -> AgentConfig:
    """Parse and validate; raises ConfigError listing every issue.

    With check_resources, also verify what the config points at (files, model hashes),
    still without touching hardware.
    """
    return parse_text(text, file, AgentConfig, _resource_checks() if check_resources else ())


def load_config(path: str | Path, check_resources: bool = False) -> AgentConfig:
    return load_file(path, AgentConfig, _resource_checks() if check_resources else ())


REDACTED = "***"


def redacted_dump(cfg: AgentConfig) -> dict[str, Any]:
    """The effective config as plain data, with secrets and secret locations masked."""
    data = cfg.model_dump(mode="json")
    mqtt = data.get("mqtt", {})
    # The file path and variable name are not secret (a technician needs them to debug);
    # the value is never read here, so it cannot leak.
    if cfg.mqtt.password_file is not None or cfg.mqtt.password_env is not None:
        mqtt["password"] = REDACTED
    return data


__all__ = [
    "EX_CONFIG",
    "ConfigError",
    "ConfigIssue",
    "format_key",
    "load_config",
    "parse_config_text",
    "redacted_dump",
]
