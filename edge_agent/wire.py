"""The versioned JSON messages the edge publishes and central consumes.

This module is the only thing central imports from the edge side, so it depends on nothing but
pydantic and the standard library. Every message shares one envelope: `schema`, `kind`,
`msg_id` (unique, central drops duplicates by it), `store_id`, `device_id`, `seq` (per device,
strictly increasing, so central can see gaps) and `created_at` (UTC).

Topics: ``footfall/v1/<store>/<device>/<kind>``. See docs/wire-format.md.
"""

from __future__ import annotations

import operator
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetPydanticSchema,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import core_schema

SCHEMA = "footfall.v1"
TOPIC_PREFIX = "footfall/v1"
# Topic segments must not contain MQTT wildcards or separators; ids are also used as file and
# SQL keys, so keep them to a conservative alphabet.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)
MAX_PAYLOAD_BYTES = 256 * 1024
_ZERO = timedelta(0)
_ONE_DAY = timedelta(days=1)

Kind = Literal["summary", "stock", "status", "pos"]
KINDS: tuple[Kind, ...] = ("summary", "stock", "status", "pos")

Id = Annotated[str, Field(pattern=ID_PATTERN, description="identifier: letters, digits, _ . -")]
NonNeg = Annotated[int, Field(ge=0)]
NonNegF = Annotated[float, Field(ge=0)]


def _to_utc(v: datetime) -> datetime:
    try:
        return v.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is in year 0 in UTC
        # A ValueError makes it a validation error (an OverflowError escaped pydantic).
        raise ValueError("the time in UTC is outside the years 1-9999") from None


# Timestamps are timezone-aware and normalised to UTC. Built in Python, any aware datetime is
# converted. On the wire (JSON), an offset-0 timestamp ("Z", as `encode` writes them) is taken
# by pydantic-core alone, with no Python call; only another offset takes the converting branch,
# and a naive or malformed one fails both. Decoded offset-0 values therefore carry
# pydantic-core's fixed-offset `TzInfo(0)` rather than `datetime.UTC`: the same instant, the
# same arithmetic, the same encoding.
_AWARE_TO_UTC = core_schema.no_info_after_validator_function(
    _to_utc, core_schema.datetime_schema(tz_constraint="aware")
)
_UTC_SCHEMA = core_schema.json_or_python_schema(
    json_schema=core_schema.union_schema(
        [core_schema.datetime_schema(tz_constraint=0), _AWARE_TO_UTC],
        mode="left_to_right",
        custom_error_type="datetime_utc",
        # One message for every way a timestamp fails (the union hides its members' own):
        # no timezone, not a date, or a year 0 or 10000 once converted to UTC.
        custom_error_message="Input should be an ISO 8601 datetime with a timezone (Z for UTC), "
        "within the years 1-9999 in UTC",
    ),
    python_schema=_AWARE_TO_UTC,
)
UtcDatetime = Annotated[datetime, GetPydanticSchema(lambda _source, _handler: _UTC_SCHEMA)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LineCount(_Strict):
    camera_id: Id
    line_id: Id
    in_count: NonNeg = Field(alias="in", description="people crossing in the line's 'in' sense")
    out_count: NonNeg = Field(alias="out", description="people crossing in the 'out' sense")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DwellHistogram(_Strict):
    """Visit counts per dwell bin; `edges_s` has one more entry than `counts`."""

    edges_s: list[NonNegF]
    counts: list[NonNeg]

    @model_validator(mode="after")
    def _shape(self) -> DwellHistogram:
        edges = self.edges_s
        if len(edges) != len(self.counts) + 1:
            raise ValueError("edges_s must have exactly one more entry than counts")
        # map() over operator.lt runs the comparison loop in C (this runs for every zone of
        # every summary central receives).
        if not all(map(operator.lt, edges, edges[1:])):
            raise ValueError("edges_s must be strictly increasing")
        return self


class ZoneStats(_Strict):
    camera_id: Id
    zone_id: Id
    visits: NonNeg = Field(description="visits that started in the interval")
    occupancy_mean: NonNegF = Field(description="mean people in the zone over the interval")
    occupancy_max: NonNeg = Field(description="most people in the zone at one time")
    dwell_count: NonNeg = Field(description="visits that ended in the interval")
    dwell_mean_s: NonNegF | None = None
    dwell_median_s: NonNegF | None = None
    dwell_p90_s: NonNegF | None = None
    dwell_hist: DwellHistogram | None = None


class Transition(_Strict):
    camera_id: Id
    from_zone: Id
    to_zone: Id
    count: Annotated[int, Field(ge=1)]


class _Envelope(_Strict):
    schema_: Literal["footfall.v1"] = Field(default="footfall.v1", alias="schema")
    msg_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] = Field(
        default_factory=lambda: uuid.uuid4().hex
    )
    store_id: Id
    device_id: Id
    seq: Annotated[int, Field(ge=1)]
    created_at: UtcDatetime = Field(default_factory=lambda: datetime.now(UTC))

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Summary(_Envelope):
    """Counts for one aggregation interval of one device. Zero intervals are sent too."""

    kind: Literal["summary"] = "summary"
    interval_start: UtcDatetime
    interval_end: UtcDatetime
    timezone: str = Field(description="IANA zone of the store, for local-time reports")
    lines: list[LineCount] = Field(default_factory=list)
    zones: list[ZoneStats] = Field(default_factory=list)
    transitions: list[Transition] = Field(default_factory=list)

    @model_validator(mode="after")
    def _order(self) -> Summary:
        length = self.interval_end - self.interval_start
        if length <= _ZERO:
            raise ValueError("interval_end must be after interval_start")
        if length > _ONE_DAY:
            raise ValueError("an interval may not exceed one day")
        return self


StockEventKind = Literal[
    "item_arrived", "item_removed", "item_moved", "stock_low", "stock_out", "stock_restored"
]


class StockEventMsg(_Envelope):
    """One stock event from the RFID engine, sent as it happens."""

    kind: Literal["stock"] = "stock"
    event_type: StockEventKind
    ts: UtcDatetime = Field(description="when the event happened (UTC)")
    reader_id: Id | None = None
    zone: Id = Field(description="zone the item is in (or was in, for item_removed)")
    from_zone: Id | None = Field(default=None, description="previous zone, item_moved only")
    epc: Annotated[str, Field(pattern=r"^[0-9A-F]{4,124}$")] | None = None
    gtin: Annotated[str, Field(pattern=r"^[0-9]{14}$")] | None = None
    count: NonNeg | None = Field(default=None, description="items of the GTIN now in the zone")
    threshold: NonNeg | None = None

    @model_validator(mode="after")
    def _fields(self) -> StockEventMsg:
        item = self.event_type in ("item_arrived", "item_removed", "item_moved")
        if item and self.epc is None:
            raise ValueError(f"{self.event_type} needs epc")
        if not item and (self.gtin is None or self.count is None):
            raise ValueError(f"{self.event_type} needs gtin and count")
        if self.event_type == "item_moved" and self.from_zone is None:
            raise ValueError("item_moved needs from_zone")
        return self


class SourceHealth(_Strict):
    id: Id
    kind: Literal["camera", "reader"]
    state: str = Field(description="connected, reconnecting, ended, failed, ...")
    rate_hz: NonNegF = Field(default=0.0, description="frames/s (camera) or reads/s (reader)")
    last_data_age_s: NonNegF | None = None
    errors: dict[str, NonNeg] = Field(default_factory=dict)
    inference_ms: NonNegF | None = None


class Status(_Envelope):
    """Device status: sent retained on change and periodically; the will says offline."""

    kind: Literal["status"] = "status"
    state: Literal["online", "offline"]
    version: str = ""
    uptime_s: NonNegF = 0.0
    sources: list[SourceHealth] = Field(default_factory=list)
    outbox_depth: NonNeg = 0
    outbox_oldest_age_s: NonNegF | None = None
    outbox_dropped: NonNeg = 0
    extra: dict[str, Any] = Field(default_factory=dict)


class PosTransaction(_Envelope):
    """A point-of-sale transaction from a live POS feed (device = the till or POS bridge)."""

    kind: Literal["pos"] = "pos"
    transaction_id: Annotated[str, Field(min_length=1, max_length=128)]
    ts: UtcDatetime
    amount: float
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None


Message = Annotated[Summary | StockEventMsg | Status | PosTransaction, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[Summary | StockEventMsg | Status | PosTransaction] = TypeAdapter(Message)
# The compiled validator itself: decode() runs for every message central receives, and the
# TypeAdapter method in front of it is a Python-level wrapper with nothing to add here.
_VALIDATE_JSON = _ADAPTER.validator.validate_json


class WireError(ValueError):
    """A payload or topic that does not match the wire format; `reason` is for the dead letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def topic_for(store_id: str, device_id: str, kind: Kind) -> str:
    for name, value in (("store_id", store_id), ("device_id", device_id)):
        if not _ID_RE.match(value):
            raise WireError(f"{name} {value!r} is not a valid topic segment")
    return f"{TOPIC_PREFIX}/{store_id}/{device_id}/{kind}"


def parse_topic(topic: str) -> tuple[str, str, Kind]:
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != TOPIC_PREFIX:
        raise WireError(f"topic {topic!r} is not footfall/v1/<store>/<device>/<kind>")
    store, device, kind = parts[2], parts[3], parts[4]
    if not _ID_RE.match(store) or not _ID_RE.match(device):
        raise WireError(f"topic {topic!r} has an invalid store or device segment")
    if kind not in KINDS:
        raise WireError(f"topic {topic!r} has unknown kind {kind!r}")
    return store, device, kind


def encode(msg: Summary | StockEventMsg | Status | PosTransaction) -> bytes:
    # The serializer makes bytes; model_dump_json() would decode them to str for us to re-encode.
    return msg.__pydantic_serializer__.to_json(msg, by_alias=True, exclude_none=True)


def decode(
    payload: bytes, topic: str | None = None
) -> Summary | StockEventMsg | Status | PosTransaction:
    """Validate a payload (and, when given, that it agrees with its topic).

    Raises WireError with a one-line reason for anything that does not match.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError(f"payload is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        msg = _VALIDATE_JSON(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "<root>"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise WireError(f"{loc}: {first['msg']}{more}") from None
    # The payload's ids and kind are validated, so a topic built from them is a valid topic:
    # parse_topic() is only needed to say what is wrong with one that differs.
    if topic is not None and topic != f"{TOPIC_PREFIX}/{msg.store_id}/{msg.device_id}/{msg.kind}":
        parse_topic(topic)
        raise WireError(
            f"topic {topic!r} does not match payload "
            f"store={msg.store_id} device={msg.device_id} kind={msg.kind}"
        )
    return msg


__all__ = [
    "KINDS",
    "SCHEMA",
    "TOPIC_PREFIX",
    "DwellHistogram",
    "Kind",
    "LineCount",
    "PosTransaction",
    "SourceHealth",
    "Status",
    "StockEventMsg",
    "Summary",
    "Transition",
    "WireError",
    "ZoneStats",
    "decode",
    "encode",
    "parse_topic",
    "topic_for",
]
