"""Stock from RFID events: counts per product and zone, stock-outs, low stock, lost sales.

- Current count of a (GTIN, zone): the `count` of the latest event that carries one (the edge's
  stock engine counts, central does not recount), plus the net item events of that pair after
  it: the engine reports a count only when a threshold is crossed (stock_low, stock_out,
  stock_restored), so a restore at 4 followed by 36 arrivals is 40, not 4. An item event
  changes a count only when it changes where its tag is: a tag announced again in the zone it
  is already in (an edge restart) adds nothing, and a removal or move of a tag central never
  saw arrive takes it from the zone the event names (the engine had counted it there). When no
  event for the pair carries a count (no threshold crossed yet, or no threshold configured),
  the count is the number of tags whose latest item event puts them in the zone.
- Low stock: 0 < count <= threshold, or still inside the engine's hysteresis band (count below
  threshold + 2) after a stock_low.
- A stock-out opens at a `stock_out` event and closes at the next event of the same
  (GTIN, zone) that reports a count above zero (normally `stock_restored`).
- Lost sales estimate (units) = hours the product was out while the store was open (hours
  with footfall) x its typical hourly sales in that zone, taken as RFID `item_removed` events
  of that GTIN from that zone per open hour over the 28 days before the stock-out. POS rows
  carry no product, so this is a shelf-depletion proxy; with no removals on record the
  estimate is null, with the reason.
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


Pair = tuple[str, str]  # (GTIN, zone)
ITEM_EVENTS = frozenset({"item_arrived", "item_removed", "item_moved"})


def current_counts(events: list[StockEventRow]) -> list[dict[str, Any]]:
    """Count per (GTIN, zone) after an ordered event list (see the module docstring)."""
    counted: dict[Pair, StockEventRow] = {}
    since: dict[Pair, int] = defaultdict(int)  # net item changes after the counted event
    changed_at: dict[Pair, datetime] = {}
    tag_at: dict[str, Pair] = {}  # where each present tag is
    for e in events:
        if e.event_type in ITEM_EVENTS and e.epc is not None:
            gtin = e.gtin or "unknown"
            prev = tag_at.pop(e.epc, None)
            if prev is None and e.event_type != "item_arrived":
                prev = (
                    gtin,
                    e.from_zone if e.event_type == "item_moved" and e.from_zone else e.zone,
                )
            new = None if e.event_type == "item_removed" else (gtin, e.zone)
            if new is not None:
                tag_at[e.epc] = new
            if prev != new:
                for pair, delta in ((prev, -1), (new, +1)):
                    if pair is not None:
                        since[pair] += delta
                        changed_at[pair] = e.ts
        if e.gtin is not None and e.count is not None:
            # The count carried already includes this event's own item change.
            counted[(e.gtin, e.zone)] = e
            since[(e.gtin, e.zone)] = 0
    present: dict[Pair, int] = defaultdict(int)
    for pair in tag_at.values():
        present[pair] += 1
    rows = []
    for key in sorted(set(counted) | set(present)):
        if key in counted:
            e = counted[key]
            net = since[key]
            as_of = max(e.ts, changed_at.get(key, e.ts))
            rows.append(
                {"gtin": key[0], "zone": key[1], "count": max((e.count or 0) + net, 0),
                 "source": "stock_engine", "net_items_since": net, "as_of": as_of.isoformat(),
                 "threshold": e.threshold, "last_event": e.event_type}
            )  # fmt: skip
        else:
            rows.append(
                {"gtin": key[0], "zone": key[1], "count": present[key], "source": "tags",
                 "net_items_since": None, "as_of": changed_at[key].isoformat(),
                 "threshold": None, "last_event": None}
            )  # fmt: skip
    return rows


def _is_low(c: dict[str, Any]) -> bool:
    count, threshold = c["count"], c["threshold"]
    if count <= 0:
        return False
    if c["last_event"] == "stock_low":
        # The engine leaves the low state only at threshold + 2 (hysteresis).
        return threshold is None or count < threshold + 2
    return threshold is not None and count <= threshold


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
    low = [c for c in counts if _is_low(c)]
    periods = [
        s for s in stock_outs(events) if s.start < rng.end and (s.end is None or s.end > rng.start)
    ]
    # A stock-out that began before the range needs the 28 days before its own start.
    first = min((s.start for s in periods), default=rng.start)
    open_hours = _open_hours(storage, rng.store_id, min(first, rng.start) - HISTORY, rng.end)
    # Per zone: a product stocked in two places that runs out in one loses only that place's
    # sales (the other shelf still sells), and two zones out at once must not count twice.
    removed: dict[Pair, list[datetime]] = defaultdict(list)
    for e in events:
        if e.event_type == "item_removed" and e.gtin is not None:
            removed[(e.gtin, e.zone)].append(e.ts)
    outs = []
    total_lost = 0.0
    for s in periods:
        hist_lo, hist_hi = s.start - HISTORY, s.start
        units = sum(1 for t in removed.get((s.gtin, s.zone), []) if hist_lo <= t < hist_hi)
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
                lost_units_reason="no item_removed history for this GTIN in this zone in the "
                "28 days before"
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
        "lost_units_method": "open hours out x item_removed from the zone per open hour "
        "(28 days before)",
    }


__all__ = ["StockOut", "current_counts", "stock", "stock_outs"]
