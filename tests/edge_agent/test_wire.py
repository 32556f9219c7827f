"""The wire format: round trips, and central's rejections with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from edge_agent import wire

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def summary(**over: object) -> wire.Summary:
    base: dict[str, object] = {
        "store_id": "store-1",
        "device_id": "door-pi",
        "seq": 7,
        "interval_start": T0,
        "interval_end": T0 + timedelta(minutes=1),
        "timezone": "Europe/London",
        "lines": [wire.LineCount(camera_id="door", line_id="entrance", in_count=3, out_count=1)],
        "zones": [
            wire.ZoneStats(
                camera_id="door",
                zone_id="till",
                visits=2,
                occupancy_mean=0.4,
                occupancy_max=2,
                dwell_count=1,
                dwell_mean_s=12.5,
                dwell_median_s=12.5,
                dwell_p90_s=12.5,
                dwell_hist=wire.DwellHistogram(edges_s=[0, 10, 30], counts=[0, 1]),
            )
        ],
        "transitions": [wire.Transition(camera_id="door", from_zone="a", to_zone="till", count=1)],
    }
    base.update(over)
    return wire.Summary.model_validate(base)


def test_summary_round_trip_through_topic() -> None:
    msg = summary()
    topic = wire.topic_for(msg.store_id, msg.device_id, msg.kind)
    assert topic == "footfall/v1/store-1/door-pi/summary"
    back = wire.decode(wire.encode(msg), topic)
    assert back == msg
    doc = json.loads(wire.encode(msg))
    assert doc["schema"] == "footfall.v1"
    assert doc["lines"][0] == {"camera_id": "door", "line_id": "entrance", "in": 3, "out": 1}
    assert len(doc["msg_id"]) == 32


def test_every_kind_round_trips() -> None:
    msgs: list[wire.Summary | wire.StockEventMsg | wire.Status | wire.PosTransaction] = [
        summary(),
        wire.StockEventMsg(
            store_id="s",
            device_id="d",
            seq=1,
            event_type="item_moved",
            ts=T0,
            zone="shelf-b",
            from_zone="shelf-a",
            epc="3074257BF7194E4000001A85",
            gtin="80614141123458",
            reader_id="r1",
        ),
        wire.StockEventMsg(
            store_id="s",
            device_id="d",
            seq=2,
            event_type="stock_out",
            ts=T0,
            zone="shelf-b",
            gtin="80614141123458",
            count=0,
            threshold=2,
        ),
        wire.Status(store_id="s", device_id="d", seq=3, state="online", uptime_s=5.0),
        wire.PosTransaction(
            store_id="s",
            device_id="till-1",
            seq=1,
            transaction_id="T-1",
            ts=T0,
            amount=12.5,
            currency="EUR",
        ),
    ]
    for msg in msgs:
        topic = wire.topic_for(msg.store_id, msg.device_id, msg.kind)
        assert wire.decode(wire.encode(msg), topic) == msg


def test_timestamps_are_normalised_to_utc() -> None:
    paris = datetime(2026, 6, 1, 12, 0, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Paris")
    )
    msg = summary(interval_start=paris, interval_end=paris + timedelta(minutes=1))
    assert msg.interval_start.utcoffset() == timedelta(0)
    assert msg.interval_start.hour == 12


@pytest.mark.parametrize(
    ("payload", "topic", "reason"),
    [
        (b"\xff\xfe not utf8", None, "not UTF-8"),
        (b"{", None, "Invalid JSON"),
        (b"[]", None, "<root>"),
        (b'{"kind": "summary"}', None, "store_id"),
        (b"x" * (wire.MAX_PAYLOAD_BYTES + 1), None, "exceeds"),
    ],
)
def test_rejects_malformed_payloads(payload: bytes, topic: str | None, reason: str) -> None:
    with pytest.raises(wire.WireError) as exc:
        wire.decode(payload, topic)
    assert reason in exc.value.reason


def test_rejects_wrong_schema_version_and_types() -> None:
    doc = json.loads(wire.encode(summary()))
    for mutate, reason in (
        (lambda d: d.update(schema="footfall.v0"), "schema"),
        (lambda d: d.update(seq="seven"), "seq"),
        (lambda d: d.update(seq=0), "seq"),
        (lambda d: d["lines"][0].update({"in": -1}), "lines.0.in"),
        (lambda d: d.update(extra_field=1), "extra_field"),
        (lambda d: d.update(interval_end=d["interval_start"]), "interval_end"),
        (lambda d: d.update(created_at="2026-11-23T10:00:00"), "created_at"),
        (lambda d: d.update(store_id="a/b"), "store_id"),
    ):
        bad = json.loads(json.dumps(doc))
        mutate(bad)
        with pytest.raises(wire.WireError) as exc:
            wire.decode(json.dumps(bad).encode())
        assert reason in exc.value.reason, exc.value.reason


def test_rejects_topic_payload_mismatch() -> None:
    payload = wire.encode(summary())
    for topic in (
        "footfall/v1/other-store/door-pi/summary",
        "footfall/v1/store-1/other/summary",
        "footfall/v1/store-1/door-pi/stock",
        "footfall/v2/store-1/door-pi/summary",
        "footfall/v1/store-1/door-pi",
        "footfall/v1/store-1/door-pi/bogus",
    ):
        with pytest.raises(wire.WireError):
            wire.decode(payload, topic)


def test_stock_event_field_rules() -> None:
    with pytest.raises(ValueError, match="needs epc"):
        wire.StockEventMsg(
            store_id="s", device_id="d", seq=1, event_type="item_arrived", ts=T0, zone="z"
        )
    with pytest.raises(ValueError, match="from_zone"):
        wire.StockEventMsg(
            store_id="s",
            device_id="d",
            seq=1,
            event_type="item_moved",
            ts=T0,
            zone="z",
            epc="30AB",
        )
    with pytest.raises(ValueError, match="gtin and count"):
        wire.StockEventMsg(
            store_id="s", device_id="d", seq=1, event_type="stock_low", ts=T0, zone="z"
        )


def test_topic_segments_are_validated() -> None:
    with pytest.raises(wire.WireError):
        wire.topic_for("store/1", "d", "summary")
    with pytest.raises(wire.WireError):
        wire.topic_for("s", "+", "summary")
