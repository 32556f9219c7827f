"""Central's MQTT protocol choice: MQTT 5 with a shared subscription by default, 3.1.1 only with
a plain one (3.1.1 has no $share), and the contradiction reported as a config error."""

from __future__ import annotations

from pathlib import Path

import pytest

from central.config import CentralConfigError, MqttConfig, load_config
from central.ingest import STATUS_FILTER, subscriptions


def _write(tmp_path: Path, mqtt_yaml: str) -> Path:
    path = tmp_path / "central.yaml"
    path.write_text(f"mqtt:\n{mqtt_yaml}storage:\n  url: sqlite:///tmp/c.db\n")
    return path


def test_default_is_mqtt_5_with_a_shared_subscription(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, "  group: g1\n"))
    assert (cfg.mqtt.protocol, cfg.mqtt.shared_subscription) == ("5", True)
    assert subscriptions(cfg.mqtt) == [("$share/g1/footfall/v1/#", 1), (STATUS_FILTER, 1)]


def test_mqtt_311_with_a_plain_subscription_is_accepted(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, '  protocol: "3.1.1"\n  shared_subscription: false\n'))
    assert (cfg.mqtt.protocol, cfg.mqtt.shared_subscription) == ("3.1.1", False)
    # footfall/v1/# already covers the status topics: one subscription, each status once.
    assert subscriptions(cfg.mqtt) == [("footfall/v1/#", 1)]


def test_mqtt_311_with_a_shared_subscription_is_a_config_error(tmp_path: Path) -> None:
    path = _write(tmp_path, '  protocol: "3.1.1"\n')
    with pytest.raises(CentralConfigError) as err:
        load_config(path)
    (line,) = err.value.lines
    assert line.startswith(f"{path}:1 mqtt: ")
    assert 'shared_subscription needs protocol "5"' in line
    assert "set shared_subscription: false" in line


def test_unknown_protocol_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(CentralConfigError) as err:
        load_config(_write(tmp_path, '  protocol: "3.1"\n'))
    assert err.value.lines[0].endswith(":2 mqtt.protocol: Input should be '5' or '3.1.1'")


def test_a_plain_filter_that_misses_statuses_adds_the_status_filter() -> None:
    m = MqttConfig(topic_filter="footfall/v1/+/+/summary", shared_subscription=False)
    assert subscriptions(m) == [("footfall/v1/+/+/summary", 1), (STATUS_FILTER, 1)]
    store_only = MqttConfig(topic_filter="footfall/v1/s1/#", shared_subscription=False)
    assert subscriptions(store_only) == [("footfall/v1/s1/#", 1), (STATUS_FILTER, 1)]
