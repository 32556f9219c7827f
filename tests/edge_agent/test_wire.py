"""The wire format: round trips, and central's rejections with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar, get_args
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from edge_agent import wire

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
M = TypeVar("M", bound=BaseModel)


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


def test_wire_timestamps_with_an_offset_are_normalised_to_utc() -> None:
    doc = json.loads(wire.encode(summary()))
    doc["interval_start"] = "2026-11-23T11:00:00+01:00"
    doc["interval_end"] = "2026-11-23T05:01:00-05:00"
    doc["created_at"] = "2026-11-23T15:46:00+05:45"
    msg = wire.decode(json.dumps(doc).encode())
    assert isinstance(msg, wire.Summary)
    for ts, expected in (
        (msg.interval_start, T0),
        (msg.interval_end, T0 + timedelta(minutes=1)),
        (msg.created_at, T0 + timedelta(minutes=1)),
    ):
        assert ts == expected
        assert ts.utcoffset() == timedelta(0)
    # Re-encoded, every timestamp is written in UTC.
    assert json.loads(wire.encode(msg))["created_at"] == "2026-11-23T10:01:00Z"


@pytest.mark.parametrize("field", ["created_at", "interval_start", "interval_end"])
@pytest.mark.parametrize("value", ["2026-11-23T10:00:00", "yesterday", None, "2026-11-23"])
def test_rejects_naive_or_malformed_timestamps(field: str, value: str | None) -> None:
    doc = json.loads(wire.encode(summary()))
    doc[field] = value
    with pytest.raises(wire.WireError) as exc:
        wire.decode(json.dumps(doc).encode())
    assert field in exc.value.reason


def test_rejects_bad_intervals_and_histograms() -> None:
    doc = json.loads(wire.encode(summary()))
    for mutate, reason in (
        (lambda d: d.update(interval_end="2026-11-23T09:59:00Z"), "interval_end must be after"),
        (lambda d: d.update(interval_end="2026-11-24T10:00:01Z"), "exceed one day"),
        (lambda d: d["zones"][0]["dwell_hist"].update(counts=[0]), "one more entry"),
        (lambda d: d["zones"][0]["dwell_hist"].update(edges_s=[0, 30, 10]), "strictly increasing"),
        (lambda d: d["zones"][0]["dwell_hist"].update(edges_s=[0, 10, 10]), "strictly increasing"),
        (lambda d: d["zones"][0]["dwell_hist"].update(edges_s=[-1, 10, 30]), "edges_s.0"),
        (lambda d: d["zones"][0].update(occupancy_mean=-0.1), "occupancy_mean"),
        (lambda d: d["transitions"][0].update(count=0), "count"),
        (lambda d: d.update(msg_id="XYZ"), "msg_id"),
        (lambda d: d.update(kind="bogus"), "tag"),
    ):
        bad = json.loads(json.dumps(doc))
        mutate(bad)
        with pytest.raises(wire.WireError) as exc:
            wire.decode(json.dumps(bad).encode())
        assert reason in exc.value.reason, exc.value.reason


def test_topic_mismatch_reason_names_the_payload() -> None:
    payload = wire.encode(summary())
    with pytest.raises(wire.WireError) as exc:
        wire.decode(payload, "footfall/v1/store-1/door-pi/stock")
    assert "does not match payload" in exc.value.reason
    with pytest.raises(wire.WireError) as exc:
        wire.decode(payload, "footfall/v1/store-1/door+pi/summary")
    assert "invalid store or device segment" in exc.value.reason


# --- property-based: every valid message round trips; nothing else gets through --------------

_ID_FIRST = "ABCXYZabcxyz0189"
_ID_REST = _ID_FIRST + "_.-"
ids = st.builds(
    lambda a, b: a + b,
    st.sampled_from(_ID_FIRST),
    st.text(alphabet=_ID_REST, max_size=63),
)
nonneg = st.integers(min_value=0, max_value=2**63)
nonneg_f = st.floats(min_value=0, allow_nan=False, allow_infinity=False)
zones = st.sampled_from(
    [UTC, ZoneInfo("Europe/Paris"), ZoneInfo("Asia/Kathmandu"), timezone(timedelta(hours=-11))]
)
aware = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=zones
)


def model(cls: type[M], **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[M]:
    # Not st.builds(): it reads pydantic signatures itself and adds fields of its own choosing.
    return st.fixed_dictionaries(fields).map(cls.model_validate)


@st.composite
def histograms(draw: st.DrawFn) -> wire.DwellHistogram:
    edges = sorted(set(draw(st.lists(nonneg_f, min_size=1, max_size=12))))
    counts = draw(st.lists(nonneg, min_size=len(edges) - 1, max_size=len(edges) - 1))
    return wire.DwellHistogram(edges_s=edges, counts=counts)


@st.composite
def summaries(draw: st.DrawFn) -> wire.Summary:
    start = draw(aware)
    length = draw(st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=1)))
    zone_stats = model(
        wire.ZoneStats,
        camera_id=ids,
        zone_id=ids,
        visits=nonneg,
        occupancy_mean=nonneg_f,
        occupancy_max=nonneg,
        dwell_count=nonneg,
        dwell_mean_s=st.none() | nonneg_f,
        dwell_median_s=st.none() | nonneg_f,
        dwell_p90_s=st.none() | nonneg_f,
        dwell_hist=st.none() | histograms(),
    )
    return wire.Summary(
        store_id=draw(ids),
        device_id=draw(ids),
        seq=draw(st.integers(min_value=1, max_value=2**63)),
        created_at=draw(aware),
        interval_start=start,
        # Elapsed time, not wall-clock time: a DST change may fall inside the interval.
        interval_end=(start.astimezone(UTC) + length).astimezone(start.tzinfo),
        timezone=draw(st.text(max_size=40)),
        lines=draw(
            st.lists(
                model(wire.LineCount, camera_id=ids, line_id=ids, **{"in": nonneg, "out": nonneg}),
                max_size=4,
            )
        ),
        zones=draw(st.lists(zone_stats, max_size=4)),
        transitions=draw(
            st.lists(
                model(
                    wire.Transition,
                    camera_id=ids,
                    from_zone=ids,
                    to_zone=ids,
                    count=st.integers(min_value=1, max_value=2**63),
                ),
                max_size=4,
            )
        ),
    )


@st.composite
def stock_events(draw: st.DrawFn) -> wire.StockEventMsg:
    event_type: wire.StockEventKind = draw(st.sampled_from(get_args(wire.StockEventKind)))
    item = event_type in ("item_arrived", "item_removed", "item_moved")
    gtin = st.from_regex(r"\A[0-9]{14}\Z")
    return wire.StockEventMsg(
        store_id=draw(ids),
        device_id=draw(ids),
        seq=draw(st.integers(min_value=1, max_value=2**40)),
        created_at=draw(aware),
        event_type=event_type,
        ts=draw(aware),
        reader_id=draw(st.none() | ids),
        zone=draw(ids),
        from_zone=draw(ids if event_type == "item_moved" else st.none() | ids),
        epc=draw(st.from_regex(r"\A[0-9A-F]{4,124}\Z") if item else st.none()),
        gtin=draw(st.none() | gtin if item else gtin),
        count=draw(st.none() if item else nonneg),
        threshold=draw(st.none() | nonneg),
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=10,
)

statuses = model(
    wire.Status,
    store_id=ids,
    device_id=ids,
    seq=st.integers(min_value=1, max_value=2**40),
    created_at=aware,
    state=st.sampled_from(["online", "offline"]),
    version=st.text(max_size=20),
    uptime_s=nonneg_f,
    sources=st.lists(
        model(
            wire.SourceHealth,
            id=ids,
            kind=st.sampled_from(["camera", "reader"]),
            state=st.text(max_size=20),
            rate_hz=nonneg_f,
            last_data_age_s=st.none() | nonneg_f,
            errors=st.dictionaries(st.text(max_size=10), nonneg, max_size=3),
            inference_ms=st.none() | nonneg_f,
        ),
        max_size=3,
    ),
    outbox_depth=nonneg,
    outbox_oldest_age_s=st.none() | nonneg_f,
    outbox_dropped=nonneg,
    extra=st.dictionaries(st.text(max_size=10), json_values, max_size=4),
)

pos_transactions = model(
    wire.PosTransaction,
    store_id=ids,
    device_id=ids,
    seq=st.integers(min_value=1, max_value=2**40),
    created_at=aware,
    transaction_id=st.text(min_size=1, max_size=128),
    ts=aware,
    amount=st.floats(allow_nan=False, allow_infinity=False),
    currency=st.none() | st.from_regex(r"\A[A-Z]{3}\Z"),
)

messages = summaries() | stock_events() | statuses | pos_transactions


@settings(max_examples=300, deadline=None)
@given(messages)
def test_property_every_valid_message_round_trips(msg: Any) -> None:
    payload = wire.encode(msg)
    topic = wire.topic_for(msg.store_id, msg.device_id, msg.kind)
    back = wire.decode(payload, topic)
    assert back == msg
    assert type(back) is type(msg)
    # Decoding normalises nothing further: the bytes are stable from the first encoding on.
    assert wire.encode(back) == payload
    for ts in (back.created_at, getattr(back, "interval_start", back.created_at)):
        assert ts.utcoffset() == timedelta(0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048) | json_values.map(lambda v: json.dumps(v).encode()))
def test_property_arbitrary_input_is_rejected_with_a_reason(payload: bytes) -> None:
    with pytest.raises(wire.WireError) as exc:
        wire.decode(payload)
    assert exc.value.reason


@settings(max_examples=200, deadline=None)
@given(summaries(), st.data())
def test_property_invalid_utf8_anywhere_is_rejected(msg: wire.Summary, data: st.DataObject) -> None:
    payload = wire.encode(msg)
    at = data.draw(st.integers(min_value=0, max_value=len(payload)))
    bad = data.draw(
        st.sampled_from(
            # a lone continuation byte, a truncated sequence, an overlong '/', a UTF-16
            # surrogate, a code point above U+10FFFF, bytes that never occur in UTF-8
            [
                b"\x80",
                b"\xc3",
                b"\xe2\x82",
                b"\xc0\xaf",
                b"\xed\xa0\x80",
                b"\xf4\x90\x80\x80",
                b"\xff",
            ]
        )
    )
    with pytest.raises(wire.WireError) as exc:
        wire.decode(payload[:at] + bad + payload[at:])
    assert "not UTF-8" in exc.value.reason


@settings(max_examples=200, deadline=None)
@given(summaries(), st.data())
def test_property_shape_and_order_violations_are_rejected(
    msg: wire.Summary, data: st.DataObject
) -> None:
    doc = json.loads(wire.encode(msg))
    breakage = data.draw(st.sampled_from(["order", "too_long", "edges", "counts", "naive"]))
    if breakage in ("edges", "counts") and not any("dwell_hist" in z for z in doc["zones"]):
        doc["zones"].append(
            {
                "camera_id": "c", "zone_id": "z", "visits": 0, "occupancy_mean": 0.0,
                "occupancy_max": 0, "dwell_count": 0,
                "dwell_hist": {"edges_s": [0.0, 1.0], "counts": [0]},
            }
        )  # fmt: skip
    start = datetime.fromisoformat(doc["interval_start"])
    if breakage == "order":
        end = start - data.draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=9)))
        doc["interval_end"] = end.isoformat()
        reason = "interval_end must be after"
    elif breakage == "too_long":
        length = data.draw(
            st.timedeltas(min_value=timedelta(days=1, microseconds=1), max_value=timedelta(days=99))
        )
        doc["interval_end"] = (start + length).isoformat()
        reason = "exceed one day"
    elif breakage == "naive":
        field = data.draw(st.sampled_from(["created_at", "interval_start", "interval_end"]))
        doc[field] = datetime.fromisoformat(doc[field]).replace(tzinfo=None).isoformat()
        reason = field
    else:
        hist = next(z["dwell_hist"] for z in doc["zones"] if "dwell_hist" in z)
        if breakage == "counts":
            hist["counts"] = (
                hist["counts"] + [0] if data.draw(st.booleans()) else hist["counts"][:-1] or [0, 0]
            )
            reason = "one more entry"
        else:
            # A last edge not above the one before it (and still >= 0, a separate rule).
            repeat = max(0.0, hist["edges_s"][-1] - data.draw(st.floats(0, 10)))
            hist["edges_s"] = hist["edges_s"] + [repeat]
            hist["counts"] = hist["counts"] + [0]
            reason = "strictly increasing"
    with pytest.raises(wire.WireError) as exc:
        wire.decode(json.dumps(doc).encode())
    assert reason in exc.value.reason, exc.value.reason
