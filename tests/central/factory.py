"""Build wire messages for central tests (the edge publishes these with wire.encode)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from central.storage import Received
from edge_agent import wire


def summary(
    seq: int,
    start: datetime,
    *,
    store: str = "s1",
    device: str = "d1",
    minutes: int = 1,
    tz: str = "UTC",
    lines: dict[str, tuple[int, int]] | None = None,
    zones: list[dict[str, Any]] | None = None,
    transitions: list[tuple[str, str, int]] | None = None,
) -> wire.Summary:
    """`lines` maps "camera/line" to (in, out); `zones` are ZoneStats fields (camera "cam")."""
    return wire.Summary(
        store_id=store,
        device_id=device,
        seq=seq,
        interval_start=start,
        interval_end=start + timedelta(minutes=minutes),
        timezone=tz,
        lines=[
            wire.LineCount.model_validate(
                {"camera_id": k.split("/")[0], "line_id": k.split("/")[1], "in": i, "out": o}
            )
            for k, (i, o) in (lines or {}).items()
        ],
        zones=[wire.ZoneStats.model_validate({"camera_id": "cam", **z}) for z in zones or []],
        transitions=[
            wire.Transition(camera_id="cam", from_zone=a, to_zone=b, count=n)
            for a, b, n in transitions or []
        ],
    )


def stock(
    seq: int,
    ts: datetime,
    event_type: str,
    *,
    store: str = "s1",
    device: str = "d1",
    zone: str = "shelf1",
    gtin: str | None = None,
    count: int | None = None,
    epc: str | None = None,
    from_zone: str | None = None,
    threshold: int | None = None,
) -> wire.StockEventMsg:
    return wire.StockEventMsg.model_validate(
        {
            "store_id": store,
            "device_id": device,
            "seq": seq,
            "ts": ts,
            "event_type": event_type,
            "zone": zone,
            "gtin": gtin,
            "count": count,
            "epc": epc,
            "from_zone": from_zone,
            "threshold": threshold,
        }
    )


def received(*msgs: Any) -> list[Received]:
    now = time.time()
    return [Received(m, now) for m in msgs]
