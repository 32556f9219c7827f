"""Footfall, occupancy and conversion for one store over a range of local dates.

Everything is grouped in the store's own time zone: an hour is a local wall-clock hour (the
rollup key, see `central.storage.base`), a day is a local calendar day. Visitors are the sum of
`in` over all of the store's lines (every counted line is taken to be a door).

Lines and zones are keyed `camera/line` and `camera/zone`. Camera ids are unique only per
device: when two devices of the store both have a camera `door` in the range, each is keyed
with its device, `edge-1:door/main` and `edge-2:door/main`, so neither is merged into the other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from central.storage.base import DwellBin, FootfallHour, Storage, TransitionHour, ZoneHour

HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ReportRange:
    """Local dates `first_day..last_day` (inclusive) of one store, as a UTC range [start, end)."""

    store_id: str
    first_day: date
    last_day: date
    timezone: str
    start: datetime
    end: datetime

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_hours(self) -> list[datetime]:
        """Every local hour start in the range, as UTC instants (23 or 25 on DST days)."""
        out: list[datetime] = []
        t = self.start
        tz = self.tz
        while t < self.end:
            local = t.astimezone(tz)
            floor = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
            if not out or floor != out[-1]:
                out.append(floor)
            t = floor + HOUR
        return out

    def days(self) -> list[date]:
        n = (self.last_day - self.first_day).days + 1
        return [self.first_day + timedelta(days=i) for i in range(n)]


def report_range(
    storage: Storage, store_id: str, first_day: date, last_day: date, timezone: str | None = None
) -> ReportRange:
    """The range for local dates first_day..last_day; the zone comes from the store's
    summaries unless given (UTC when central has never heard of the store)."""
    if last_day < first_day:
        raise ValueError(f"--to {last_day} is before --from {first_day}")
    tz_name = timezone or storage.store_timezone(store_id) or "UTC"
    tz = ZoneInfo(tz_name)
    start = datetime.combine(first_day, time(0), tz).astimezone(UTC)
    end = datetime.combine(last_day + timedelta(days=1), time(0), tz).astimezone(UTC)
    return ReportRange(store_id, first_day, last_day, tz_name, start, end)


def local_iso(instant: datetime, tz: ZoneInfo) -> str:
    return instant.astimezone(tz).isoformat()


def shared_cameras(
    rows: Iterable[FootfallHour | ZoneHour | DwellBin | TransitionHour],
) -> set[str]:
    """Camera ids that more than one device uses in `rows`."""
    devices: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        devices[r.camera_id].add(r.device_id)
    return {c for c, d in devices.items() if len(d) > 1}


def camera_key(camera_id: str, device_id: str, shared: set[str]) -> str:
    return f"{device_id}:{camera_id}" if camera_id in shared else camera_id


@dataclass
class Footfall:
    total_in: int = 0
    total_out: int = 0
    lines: dict[str, dict[str, int]] = field(default_factory=dict)
    # per local hour (UTC instant) -> [in, out]; hours without any summary are absent
    hours: dict[datetime, list[int]] = field(default_factory=dict)
    days: dict[date, list[int]] = field(default_factory=dict)

    def to_dict(self, rng: ReportRange) -> dict[str, Any]:
        tz = rng.tz
        return {
            "total_in": self.total_in,
            "total_out": self.total_out,
            "lines": self.lines,
            "by_hour": [
                {
                    "hour": local_iso(h, tz),
                    "in": self.hours[h][0] if h in self.hours else 0,
                    "out": self.hours[h][1] if h in self.hours else 0,
                    "reported": h in self.hours,
                }
                for h in rng.local_hours()
            ],
            "by_day": [
                {"date": d.isoformat(), "in": v[0], "out": v[1]}
                for d, v in ((d, self.days.get(d, [0, 0])) for d in rng.days())
            ],
        }


def footfall(storage: Storage, rng: ReportRange) -> Footfall:
    out = Footfall()
    tz = rng.tz
    rows = storage.footfall_hours(rng.store_id, rng.start, rng.end)
    shared = shared_cameras(rows)
    for row in rows:
        key = f"{camera_key(row.camera_id, row.device_id, shared)}/{row.line_id}"
        line = out.lines.setdefault(key, {"in": 0, "out": 0})
        line["in"] += row.in_count
        line["out"] += row.out_count
        out.total_in += row.in_count
        out.total_out += row.out_count
        h = out.hours.setdefault(row.hour_start, [0, 0])
        h[0] += row.in_count
        h[1] += row.out_count
        d = out.days.setdefault(row.hour_start.astimezone(tz).date(), [0, 0])
        d[0] += row.in_count
        d[1] += row.out_count
    out.lines = dict(sorted(out.lines.items()))
    return out


def occupancy(storage: Storage, rng: ReportRange, ff: Footfall) -> dict[str, Any]:
    """People in the store at the end of each local hour (entries minus exits since local
    midnight, never below zero: a store is taken to be empty at midnight), the mean of that
    per hour of day over the range, and the mean occupancy of each zone per hour."""
    tz = rng.tz
    by_hour = []
    running = 0
    day: date | None = None
    profile: dict[int, list[int]] = defaultdict(list)
    zone_by_hour: dict[datetime, dict[str, float]] = defaultdict(dict)
    zone_rows = storage.zone_hours(rng.store_id, rng.start, rng.end)
    shared = shared_cameras(zone_rows)
    for z in zone_rows:
        if z.covered_s > 0:
            mean = z.occupancy_person_s / z.covered_s
            key = f"{camera_key(z.camera_id, z.device_id, shared)}/{z.zone_id}"
            zone_by_hour[z.hour_start][key] = round(mean, 3)
    for h in rng.local_hours():
        local = h.astimezone(tz)
        if local.date() != day:
            day, running = local.date(), 0
        i, o = ff.hours.get(h, [0, 0])
        running = max(running + i - o, 0)
        profile[local.hour].append(running)
        by_hour.append({"hour": local.isoformat(), "in_store": running, "zones": zone_by_hour[h]})
    return {
        "method": "entries minus exits since local midnight, clamped at zero",
        "by_hour": by_hour,
        "hour_of_day_mean": [
            {"hour_of_day": hod, "in_store": round(sum(v) / len(v), 2)}
            for hod, v in sorted(profile.items())
        ],
    }


def _ratio(a: float, b: float, digits: int = 4) -> float | None:
    return None if b == 0 else round(a / b, digits)


def conversion(storage: Storage, rng: ReportRange, ff: Footfall) -> dict[str, Any]:
    """Transactions / visitors per local hour and day and over the range; average basket;
    visitors per sale.

    Conversion counts only the transactions of hours with footfall data: an hour in which no
    camera reported (camera offline) adds sales but no visitors, and would inflate the day.
    `transactions` and `revenue` are all sales; `transactions_without_footfall` says how many
    of them conversion leaves out.
    """
    tz = rng.tz
    tx_hour: dict[datetime, list[float]] = defaultdict(lambda: [0, 0.0])
    currencies: set[str] = set()
    for p in storage.pos_transactions(rng.store_id, rng.start, rng.end):
        hour = p.ts.astimezone(tz).replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        tx_hour[hour][0] += 1
        tx_hour[hour][1] += p.amount
        if p.currency:
            currencies.add(p.currency)

    def entry(visitors: int, tx: float, tx_uncounted: float, amount: float) -> dict[str, Any]:
        tx_counted = tx - tx_uncounted
        return {
            "visitors": visitors,
            "transactions": int(tx),
            "transactions_without_footfall": int(tx_uncounted),
            "revenue": round(amount, 2),
            "conversion": _ratio(tx_counted, visitors),
            "average_basket": _ratio(amount, tx, 2),
            "visitors_per_transaction": _ratio(visitors, tx_counted, 2),
        }

    by_hour = []
    # per local day, and the whole range: [transactions, of them in hours without footfall,
    # revenue]
    day_tx: dict[date, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    total = [0.0, 0.0, 0.0]
    for h in rng.local_hours():
        visitors = ff.hours.get(h, [0, 0])[0]
        tx, amount = tx_hour.get(h, [0, 0.0])
        uncounted = 0 if h in ff.hours else tx
        for acc in (day_tx[h.astimezone(tz).date()], total):
            acc[0] += tx
            acc[1] += uncounted
            acc[2] += amount
        if visitors or tx:
            by_hour.append({"hour": local_iso(h, tz), **entry(visitors, tx, uncounted, amount)})
    by_day = [
        {"date": d.isoformat(), **entry(ff.days.get(d, [0, 0])[0], *day_tx[d])} for d in rng.days()
    ]
    return {
        **entry(ff.total_in, *total),
        "currency": sorted(currencies)[0] if len(currencies) == 1 else sorted(currencies) or None,
        "has_pos_data": total[0] > 0,
        "by_hour": by_hour,
        "by_day": by_day,
    }


__all__ = [
    "Footfall",
    "ReportRange",
    "camera_key",
    "conversion",
    "footfall",
    "local_iso",
    "occupancy",
    "report_range",
    "shared_cameras",
]
