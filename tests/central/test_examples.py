"""The annotated central config in examples/ must stay valid as the config model changes."""

from __future__ import annotations

from pathlib import Path

from central.config import CentralConfig, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "central" / "central.yaml"


def test_example_central_config_is_valid() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.mqtt.client_id == "central-1"
    assert cfg.mqtt.tls is not None and cfg.mqtt.tls.ca_file == Path("/etc/footfall/ca.pem")
    assert cfg.storage.url == "sqlite:///var/lib/footfall-central/central.db"
    # The default storage path is the one the unit's StateDirectory= makes writable.
    assert CentralConfig().storage.url == "sqlite:///var/lib/footfall-central/central.db"
    # The password is a file reference, never a value in the YAML.
    assert cfg.mqtt.password_file is not None
