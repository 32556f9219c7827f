"""Stock from RFID events: counts per product and zone, stock-outs, low stock, lost sales.

- Current count of a (GTIN, zone): the `count` of the latest event that carries one (the edge's
  stock engine counts, central does not recount); when no event for that pair carries a
  count, the number of tags whose latest item event puts them in the zone.
- A stock-out opens at a `stock_out` event and closes at the next event of the same
  (GTIN, zone) that reports a count above zero (normally `stock_restored`).
- Lost sales estimate (units) = hours the product was out while the store was open (hours
  with footfall) x its typical hourly sales, taken as RFID `item_removed` events of that GTIN
  per open hour over the 28 days before the stock-out. POS rows carry no product, so this is
  a shelf-depletion proxy; with no removals on record the estimate is null, with the reason.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from central.analytics.footfall import ReportRange, local_iso
from central.storage.base import StockEventRow, Storage

HISTORY = timedelta(days=28)
HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class StockOut:
    gtin: str
    zone: str
    start: datetime
    end: datetime | None  # None: still out

    def duration_s(self, now: datetime) -> float:
        return ((self.end or now) - self.start).total_seconds()


def stock_outs(events: list[StockEventRow]) -> list[StockOut]:
    """Every stock-out period in an ordered event list (one per stock_out, merged while open)."""
    open_at: dict[tuple[str, str], datetime] = {}
    out: list[StockOut] = []
    for e in events:
        if e.gtin is None:
            continue
        key = (e.gtin, e.zone)
        if e.event_type == "stock_out":
            open_at.setdefault(key, e.ts)
        elif key in open_at and e.count is not None and e.count > 0:
            out.append(StockOut(e.gtin, e.zone, open_at.pop(key), e.ts))
    out += [StockOut(g, z, t, None) for (g, z), t in open_at.items()]
    out.sort(key=lambda s: (s.start, s.gtin, s.zone))
    return out


def current_counts(events: list[StockEventRow]) -> list[dict[str, Any]]:
    counted: dict[tuple[str, str], StockEventRow] = {}
    tag_at: dict[str, StockEventRow] = {}
    for e in events:
        if e.gtin is not None and e.count is not None:
            counted[(e.gtin, e.zone)] = e
        if e.epc is not None:
            tag_at[e.epc] = e
    present: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for e in tag_at.values():
        if e.event_type in ("item_arrived", "item_moved"):
            present[(e.gtin or "unknown", e.zone)].append(e.ts)
    rows = []
    for key in sorted(set(counted) | set(present)):
        if key in counted:
            e = counted[key]
            rows.append(
                {"gtin": key[0], "zone": key[1], "count": e.count, "source": "stock_engine",
                 "as_of": e.ts.isoformat(), "threshold": e.threshold, "last_event": e.event_type}
            )  # fmt: skip
        else:
            ts = max(present[key])
            rows.append(
                {"gtin": key[0], "zone": key[1], "count": len(present[key]), "source": "tags",
                 "as_of": ts.isoformat(), "threshold": None, "last_event": None}
            )  # fmt: skip
    return rows


def _open_hours(storage: Storage, store_id: str, start: datetime, end: datetime) -> set[datetime]:
    return {r.hour_start for r in storage.footfall_hours(store_id, start, end) if r.in_count > 0}


def _hours_out(s: StockOut, lo: datetime, hi: datetime, open_hours: set[datetime]) -> float:
    """Open hours (fractional at the ends) the stock-out covers inside [lo, hi)."""
    a, b = max(s.start, lo), min(s.end or hi, hi)
    total = 0.0
    for h in open_hours:
        overlap = (min(b, h + HOUR) - max(a, h)).total_seconds()
        if overlap > 0:
            total += overlap / 3600
    return total


def stock(storage: Storage, rng: ReportRange, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    as_of = min(rng.end, now)
    events = storage.stock_events(rng.store_id, None, as_of)
    counts = current_counts(events)
    low = [
        c
        for c in counts
        if c["last_event"] == "stock_low"
        or (c["threshold"] is not None and 0 < c["count"] <= c["threshold"])
    ]
    periods = [
        s for s in stock_outs(events) if s.start < rng.end and (s.end is None or s.end > rng.start)
    ]
    open_hours = _open_hours(storage, rng.store_id, rng.start - HISTORY, rng.end)
    removed: dict[str, list[datetime]] = defaultdict(list)
    for e in events:
        if e.event_type == "item_removed" and e.gtin is not None:
            removed[e.gtin].append(e.ts)
    outs = []
    total_lost = 0.0
    for s in periods:
        hist_lo, hist_hi = s.start - HISTORY, s.start
        units = sum(1 for t in removed.get(s.gtin, []) if hist_lo <= t < hist_hi)
        hist_open = sum(1 for h in open_hours if hist_lo <= h < hist_hi)
        hours = _hours_out(s, rng.start, as_of, open_hours)
        entry: dict[str, Any] = {
            "gtin": s.gtin,
            "zone": s.zone,
            "start": local_iso(s.start, rng.tz),
            "end": None if s.end is None else local_iso(s.end, rng.tz),
            "open": s.end is None or s.end > as_of,
            "duration_s": round(s.duration_s(as_of), 1),
            "open_hours_out_in_range": round(hours, 2),
        }
        if units and hist_open:
            rate = units / hist_open
            lost = rate * hours
            total_lost += lost
            entry.update(typical_units_per_open_hour=round(rate, 3), lost_units=round(lost, 1))
        else:
            entry.update(
                typical_units_per_open_hour=None,
                lost_units=None,
                lost_units_reason="no item_removed history for this GTIN in the 28 days before"
                if not units
                else "no open hours (footfall) in the 28 days before",
            )
        outs.append(entry)
    return {
        "as_of": local_iso(as_of, rng.tz),
        "counts": counts,
        "low_stock": low,
        "stock_outs": outs,
        "stock_out_count": len(outs),
        "open_stock_outs": sum(1 for o in outs if o["open"]),
        "lost_units_estimate": round(total_lost, 1),
        "lost_units_method": "open hours out x item_removed per open hour (28 days before)",
    }


__all__ = ["StockOut", "current_counts", "stock", "stock_outs"]
