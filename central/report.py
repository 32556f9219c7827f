"""The store report: one document with footfall, occupancy, conversion, dwell, transitions,
stock and data quality for local dates `first_day..last_day` of one store.

`build_report` returns plain JSON-ready data (the CLI prints it with --json, the dashboard
serves it); `report_csv` flattens the hourly part to a table; `report_text` is for humans.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

from central import analytics, quality
from central.storage.base import Storage


def build_report(
    storage: Storage,
    store_id: str,
    first_day: date,
    last_day: date,
    *,
    now: datetime | None = None,
    timezone: str | None = None,
    with_quality: bool = True,
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    rng = analytics.report_range(storage, store_id, first_day, last_day, timezone)
    ff = analytics.footfall(storage, rng)
    doc: dict[str, Any] = {
        "store": store_id,
        "from": first_day.isoformat(),
        "to": last_day.isoformat(),
        "timezone": rng.timezone,
        "range_utc": {"start": rng.start.isoformat(), "end": rng.end.isoformat()},
        "generated_at": now.isoformat(),
        "footfall": ff.to_dict(rng),
        "occupancy": analytics.occupancy(storage, rng, ff),
        "conversion": analytics.conversion(storage, rng, ff),
        "dwell": analytics.dwell(storage, rng),
        "transitions": analytics.transitions(storage, rng),
        "stock": analytics.stock(storage, rng, now),
    }
    if with_quality:
        doc["data_quality"] = quality.assess(
            storage, store_id, rng.start, rng.end, now=now
        ).to_dict()
    return doc


CSV_COLUMNS = (
    "hour", "in", "out", "reported", "in_store", "transactions", "revenue", "conversion",
)  # fmt: skip


def report_csv(doc: dict[str, Any]) -> str:
    """One row per local hour: footfall, occupancy and conversion."""
    conv = {r["hour"]: r for r in doc["conversion"]["by_hour"]}
    occ = {r["hour"]: r for r in doc["occupancy"]["by_hour"]}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for h in doc["footfall"]["by_hour"]:
        c = conv.get(h["hour"], {})
        w.writerow(
            [
                h["hour"], h["in"], h["out"], int(h["reported"]),
                occ.get(h["hour"], {}).get("in_store", ""), c.get("transactions", 0),
                c.get("revenue", 0.0), "" if c.get("conversion") is None else c["conversion"],
            ]
        )  # fmt: skip
    return buf.getvalue()


def _quantile_text(zone: dict[str, Any], name: str) -> str:
    """`>= 3600.0 s` when the quantile is in the open-ended last dwell bin (a lower bound)."""
    at_least = ">= " if zone.get(f"{name}_at_least") else ""
    return f"{at_least}{zone[f'{name}_s']} s"


def report_text(doc: dict[str, Any]) -> str:
    ff, conv, st = doc["footfall"], doc["conversion"], doc["stock"]
    lines = [
        f"Store {doc['store']}  {doc['from']} .. {doc['to']}  ({doc['timezone']})",
        f"Footfall: {ff['total_in']} in, {ff['total_out']} out",
    ]
    lines += [f"  {k}: {v['in']} in, {v['out']} out" for k, v in ff["lines"].items()]
    if conv["has_pos_data"]:
        left_out = conv["transactions_without_footfall"]
        counted = conv["transactions"] - left_out
        note = f" ({left_out} transactions in hours without footfall left out)" if left_out else ""
        lines.append(
            f"Conversion: {counted} transactions / {conv['visitors']} visitors = "
            f"{conv['conversion']}{note}; average basket {conv['average_basket']}"
        )
    else:
        lines.append("Conversion: no POS data in range")
    for zone, d in doc["dwell"]["zones"].items():
        lines.append(
            f"Dwell {zone}: {d['dwell_count']} visits, mean {d['mean_s']} s, "
            f"median {_quantile_text(d, 'median')}, p90 {_quantile_text(d, 'p90')} "
            f"({d['method']})"
        )
    lines.append(
        f"Stock-outs: {st['stock_out_count']} ({st['open_stock_outs']} open), "
        f"low stock: {len(st['low_stock'])}, lost units estimate {st['lost_units_estimate']}"
    )
    for o in st["stock_outs"]:
        lines.append(
            f"  {o['gtin']} in {o['zone']}: {o['start']} -> {o['end'] or 'still out'} "
            f"({o['duration_s'] / 3600:.1f} h)"
        )
    dq = doc.get("data_quality")
    if dq is not None:
        lines.append(f"Data quality: {'OK' if dq['ok'] else 'problems'} {dq['counts']}")
        lines += [f"  [{f['severity']}] {f['message']}" for f in dq["findings"]]
    return "\n".join(lines) + "\n"


__all__ = ["CSV_COLUMNS", "build_report", "report_csv", "report_text"]
