"""The dashboard's JSON API: one function per ``/api/<name>`` endpoint.

Each takes the storage, the parsed query and ``now`` and returns a JSON-ready dict. They call
the same library functions as ``footfall-central report`` (``central.analytics``,
``central.quality``, ``central.report``) and only reshape the result for the charts, so the
dashboard and the CLI cannot disagree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from central import analytics, quality, report
from central.forecast import HOURS_PER_WEEK, footfall_series, forecast_hourly, local_hour_floor
from central.storage.base import FIRST_DAY, LAST_DAY, Storage
from edge_agent.wire import ID_PATTERN

MAX_RANGE_DAYS = 400
FORECAST_HISTORY = timedelta(weeks=12)
ACTUAL_SHOWN = timedelta(days=14)
_ID_RE = re.compile(ID_PATTERN)


class ApiError(Exception):
    """A request the API refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Query:
    store_id: str
    first_day: date
    last_day: date


def parse_query(storage: Storage, params: Mapping[str, str]) -> Query:
    store = params.get("store", "")
    if not _ID_RE.match(store):
        raise ApiError(400, "store must be a store id (letters, digits, _ . -)")
    if store not in {s.store_id for s in storage.stores()}:
        raise ApiError(404, f"unknown store {store!r}")
    try:
        first = date.fromisoformat(params.get("from", ""))
        last = date.fromisoformat(params.get("to", ""))
    except ValueError:
        raise ApiError(400, "from and to must be dates (YYYY-MM-DD)") from None
    if not (FIRST_DAY <= first <= LAST_DAY and FIRST_DAY <= last <= LAST_DAY):
        raise ApiError(
            400, f"from and to must be within {FIRST_DAY.isoformat()}..{LAST_DAY.isoformat()}"
        )
    if last < first:
        raise ApiError(400, "to is before from")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise ApiError(400, f"a range may span at most {MAX_RANGE_DAYS} days")
    return Query(store, first, last)


def _range(storage: Storage, q: Query) -> analytics.ReportRange:
    return analytics.report_range(storage, q.store_id, q.first_day, q.last_day)


def stores(storage: Storage, now: datetime) -> dict[str, Any]:
    """Stores, and a default view: the last 14 days with data of the first store."""
    infos = storage.stores()
    default: dict[str, str] | None = None
    if infos:
        first = infos[0]
        seen = [d.last_seen for d in storage.devices(first.store_id)]
        latest = min(max(seen), now) if seen else now
        # Default to the day before when the latest day has barely begun (nothing to show yet).
        last_day = (latest - timedelta(hours=6)).astimezone(ZoneInfo(first.timezone)).date()
        default = {
            "store": first.store_id,
            "from": (last_day - timedelta(days=13)).isoformat(),
            "to": last_day.isoformat(),
        }
    return {
        "stores": [{"store_id": s.store_id, "timezone": s.timezone} for s in infos],
        "default": default,
    }


def footfall(storage: Storage, q: Query, now: datetime) -> dict[str, Any]:
    rng = _range(storage, q)
    ff = analytics.footfall(storage, rng)
    doc = ff.to_dict(rng)
    tz = rng.tz
    days = len(rng.days())
    per_hod = [0] * 24
    for h, (n_in, _) in ff.hours.items():
        per_hod[h.astimezone(tz).hour] += n_in
    lines = []
    for key, v in doc["lines"].items():
        camera_id, _, line_id = key.partition("/")
        lines.append({"camera_id": camera_id, "line_id": line_id, "in": v["in"], "out": v["out"]})
    return {
        "timezone": rng.timezone,
        "visitors": ff.total_in,
        "total_in": ff.total_in,
        "total_out": ff.total_out,
        "days": days,
        "lines": lines,
        "by_day": doc["by_day"],
        "by_hour_of_day": [
            {"hour": h, "visitors": per_hod[h], "visitors_per_day": round(per_hod[h] / days, 2)}
            for h in range(24)
        ],
        "by_hour": doc["by_hour"],
    }


def occupancy(storage: Storage, q: Query, now: datetime) -> dict[str, Any]:
    rng = _range(storage, q)
    ff = analytics.footfall(storage, rng)
    occ = analytics.occupancy(storage, rng, ff)
    return {
        "method": occ["method"],
        "points": [{"t": r["hour"], "occupancy": r["in_store"]} for r in occ["by_hour"]],
        "hour_of_day_mean": occ["hour_of_day_mean"],
    }


def _pct(ratio: float | None) -> float | None:
    return None if ratio is None else round(100.0 * ratio, 2)


def conversion(storage: Storage, q: Query, now: datetime) -> dict[str, Any]:
    rng = _range(storage, q)
    ff = analytics.footfall(storage, rng)
    conv = analytics.conversion(storage, rng, ff)
    currency = conv["currency"] if isinstance(conv["currency"], str) else None
    return {
        "visitors": conv["visitors"],
        "transactions": conv["transactions"],
        "transactions_without_footfall": conv["transactions_without_footfall"],
        "revenue": conv["revenue"],
        "conversion_pct": _pct(conv["conversion"]),
        "avg_basket": conv["average_basket"],
        "visitors_per_transaction": conv["visitors_per_transaction"],
        "currency": currency,
        "has_pos_data": conv["has_pos_data"],
        "by_day": [
            {
                "date": d["date"],
                "visitors": d["visitors"],
                "transactions": d["transactions"],
                "transactions_without_footfall": d["transactions_without_footfall"],
                "conversion_pct": _pct(d["conversion"]),
                "avg_basket": d["average_basket"],
            }
            for d in conv["by_day"]
        ],
    }


def dwell(storage: Storage, q: Query, now: datetime) -> dict[str, Any]:
    rng = _range(storage, q)
    zones = []
    for key, z in analytics.dwell(storage, rng)["zones"].items():
        camera_id, _, zone_id = key.partition("/")
        zones.append(
            {
                "camera_id": camera_id,
                "zone_id": zone_id,
                "visits": z["visits"],
                "mean_s": z["mean_s"],
                "median_s": z["median_s"],
                "median_at_least": z["median_at_least"],
                "p90_s": z["p90_s"],
                "p90_at_least": z["p90_at_least"],
                "method": z["method"],
            }
        )
    return {"zones": zones, "transitions": analytics.transitions(storage, rng)}


def stock(storage: Storage, q: Query, now: datetime) -> dict[str, Any]:
    rng = _range(storage, q)
    st = analytics.stock(storage, rng, now)
    return {
        "as_of": st["as_of"],
        "stockouts": [
            {
                "gtin": s["gtin"],
                "zone": s["zone"],
                "start": s["start"],
                "end": s["end"],
                "open": s["open"],
                "duration_h": round(s["duration_s"] / 3600, 2),
                "lost_sales": s["lost_units"],
            }
            for s in st["stock_outs"]
        ],
        "low": st["low_stock"],
        "counts": st["counts"],
        "lost_units_estimate": st["lost_units_estimate"],
    }


def devices(storage: Storage, q: Query, now: datetime) -> dict[str, Any]:
    rng = _range(storage, q)
    rep = quality.assess(storage, q.store_id, rng.start, rng.end, now=now)
    issues: dict[str, int] = {}
    for f in rep.findings:
        dev = getattr(f, "device_id", "")
        if dev and f.severity != "info":
            issues[dev] = issues.get(dev, 0) + 1
    return {
        "devices": [
            {
                "device_id": d.device_id,
                "state": d.state,
                "last_seen": d.last_seen.isoformat(),
                "status_at": None if d.status_at is None else d.status_at.isoformat(),
                "version": d.version,
                "outbox_depth": d.outbox_depth,
                "last_seq": d.last_seq,
                "issues": issues.get(d.device_id, 0),
            }
            for d in storage.devices(q.store_id)
        ]
    }


def quality_findings(storage: Storage, q: Query, now: datetime) -> dict[str, Any]:
    rng = _range(storage, q)
    return quality.assess(storage, q.store_id, rng.start, rng.end, now=now).to_dict()


def _points(start: datetime, values: np.ndarray) -> list[dict[str, Any]]:
    return [
        {
            "t": (start + timedelta(hours=i)).isoformat(),
            "v": None if math.isnan(float(v)) else round(float(v), 2),
        }
        for i, v in enumerate(values)
    ]


def _finite(doc: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: an undefined metric (e.g. WAPE of an all-zero week) becomes null."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in doc.items()}


def forecast(storage: Storage, q: Query, now: datetime) -> dict[str, Any]:
    """A 7-day forecast from the end of the range, the actual counts of the last 14 days of
    the range and (when the range lies in the past) of the forecast week, and the backtest."""
    rng = _range(storage, q)
    # Forecast from the last complete local hour: a running hour would read as a dip.
    origin = local_hour_floor(min(rng.end, now), rng.timezone)
    history = footfall_series(storage, q.store_id, origin - FORECAST_HISTORY, origin)
    shown_end = min(origin + timedelta(hours=HOURS_PER_WEEK), now)
    actual = footfall_series(storage, q.store_id, origin - ACTUAL_SHOWN, max(shown_end, origin))
    doc: dict[str, Any] = {"actual": _points(actual.start, actual.counts), "forecast": []}
    try:
        fc = forecast_hourly(history)
    except ValueError as exc:
        doc.update(note=f"no forecast: {exc}", backtest=None, beats_baseline=None)
        return doc
    bt = fc.backtest
    doc.update(
        forecast=_points(fc.start, fc.values),
        note=fc.note,
        beats_baseline=fc.beats_baseline,
        level_per_h=round(fc.level_per_h, 2),
        closures_excluded=[d.isoformat() for d in fc.closures],
        backtest=None
        if bt is None
        else {
            "horizon_h": bt.horizon_h,
            "origins": [o.isoformat() for o in bt.origins],
            "model": _finite(vars(bt.model)),
            "baseline": _finite(vars(bt.baseline)),
            "improvement_pct": round(bt.improvement_pct, 1),
        },
    )
    return doc


def full_report(storage: Storage, q: Query, now: datetime) -> dict[str, Any]:
    """Exactly the document ``footfall-central report --json`` prints."""
    return report.build_report(storage, q.store_id, q.first_day, q.last_day, now=now)


Endpoint = Callable[[Storage, Query, datetime], dict[str, Any]]
ENDPOINTS: dict[str, Endpoint] = {
    "footfall": footfall,
    "occupancy": occupancy,
    "conversion": conversion,
    "dwell": dwell,
    "stock": stock,
    "devices": devices,
    "quality": quality_findings,
    "forecast": forecast,
    "report": full_report,
}


def handle(storage: Storage, name: str, params: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """Dispatch ``/api/<name>``; raises ApiError for a bad request."""
    if name == "stores":
        return stores(storage, now)
    endpoint = ENDPOINTS.get(name)
    if endpoint is None:
        raise ApiError(404, f"no API endpoint {name!r}")
    return endpoint(storage, parse_query(storage, params), now.astimezone(UTC))


__all__ = ["ENDPOINTS", "ApiError", "Query", "handle", "parse_query"]
