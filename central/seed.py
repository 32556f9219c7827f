"""A deterministic generator of realistic fleet data, for the dashboard test, the benchmark
and the demo.

Each store has one counting device (``edge-1``: two door cameras with one line each, and a
floor camera with four zones), one RFID device (``rfid-1``) and a POS export. Footfall follows
opening hours, a lunch and an after-work peak, a weekday pattern (Saturday busiest; stores in
Germany closed on Sunday), a December peak, a slow trend per store, day-to-day weather noise
and Poisson noise per interval. Exits trail entries by the in-store dwell, zone visits and
dwell times follow per-zone distributions, shoppers move between zones, a share of visitors
buy something (POS rows), and each product on the RFID shelf is sold item by item and
restocked in the morning.

Seeded faults (all relative to the end of the range, so a short range still contains them):

* a holiday (every store closed all day), ``holiday_days_before_end`` days before the end;
* a stock-out of one product in the first store that lasts about two days, then is restocked,
  and one still open at the end in the second store;
* the counting device of the third store goes offline 6 hours before the end (its last
  status says offline);
* the side-door camera of the first store is blocked for 4 hours two days before the end;
* the second store's counting device loses 3 summaries in transit (a ``seq`` gap).

Same spec, same bytes: every random draw comes from one seeded ``numpy`` generator per store
and message ids are hashes of (seed, store, device, seq).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from central.storage.base import PosRow, Received, Storage
from edge_agent.wire import PosTransaction, SourceHealth, Status, StockEventMsg, Summary

DEFAULT_END = datetime(2026, 11, 23, tzinfo=UTC)
TIMEZONES = ("Europe/Berlin", "Europe/London", "America/New_York", "Europe/Madrid")
CURRENCY = {
    "Europe/Berlin": "EUR",
    "Europe/London": "GBP",
    "America/New_York": "USD",
    "Europe/Madrid": "EUR",
}
COUNTER = "edge-1"
READER = "rfid-1"
LINES = (("cam-door", "main", 0.7), ("cam-side", "side", 0.3))
FLOOR_CAMERA = "cam-floor"
# zone id, share of visitors entering it, median dwell (s), lognormal sigma
ZONES = (
    ("entrance", 0.9, 25.0, 0.5),
    ("apparel", 0.45, 240.0, 0.7),
    ("shoes", 0.25, 180.0, 0.6),
    ("checkout", 0.3, 110.0, 0.5),
)
DWELL_EDGES_S = [0.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 7200.0]
# (from, to, share of the from-zone's visits)
TRANSITIONS = (
    ("entrance", "apparel", 0.4),
    ("entrance", "shoes", 0.15),
    ("apparel", "shoes", 0.25),
    ("apparel", "checkout", 0.35),
    ("shoes", "checkout", 0.4),
    ("entrance", "checkout", 0.08),
)
COMPANY_PREFIX = "4012345"  # 7 digits, SGTIN-96 partition 5
PRODUCTS = (  # item reference (5 digits), shelf zone, typical daily sales, starting stock
    ("10001", "apparel", 3.0, 12),
    ("10002", "apparel", 2.0, 9),
    ("20001", "shoes", 1.5, 8),
)
# Hourly shape of an opening day (local hour -> weight); zero outside the opening hours.
_DAY_SHAPE = {
    9: 0.45, 10: 0.7, 11: 0.9, 12: 1.25, 13: 1.2, 14: 0.9, 15: 0.85,
    16: 1.0, 17: 1.3, 18: 1.35, 19: 0.9,
}  # fmt: skip
_WEEKDAY = (0.85, 0.85, 0.9, 1.0, 1.2, 1.55, 0.6)  # Monday..Sunday
_SUNDAY_HOURS = range(11, 18)


@dataclass(frozen=True)
class SeedSpec:
    stores: int = 3
    days: int = 35
    end: datetime = DEFAULT_END
    interval_s: int = 3600
    seed: int = 42
    pos: bool = True
    stock: bool = True
    faults: bool = True
    holiday_days_before_end: int = 9
    store_prefix: str = "store-"

    def __post_init__(self) -> None:
        if self.stores < 1 or self.days < 1:
            raise ValueError("stores and days must be at least 1")
        if 3600 % self.interval_s:
            raise ValueError("interval_s must divide an hour")
        if self.end.tzinfo is None:
            raise ValueError("end must be timezone-aware")

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)

    def store_id(self, index: int) -> str:
        return f"{self.store_prefix}{index + 1:03d}"


@dataclass(frozen=True)
class SeededFault:
    kind: str  # holiday, stock_out, device_offline, camera_blocked, seq_gap
    store_id: str
    start: datetime
    end: datetime | None
    detail: str


@dataclass
class StoreData:
    store_id: str
    timezone: str
    messages: list[Received]
    pos: list[PosRow]
    visitors: int


@dataclass
class SeedResult:
    spec: SeedSpec
    stores: dict[str, str] = field(default_factory=dict)  # store id -> timezone
    holidays: list[date] = field(default_factory=list)
    faults: list[SeededFault] = field(default_factory=list)
    messages: dict[str, int] = field(default_factory=dict)
    pos_rows: int = 0
    visitors: int = 0
    generate_s: float = 0.0
    write_s: float = 0.0

    def faults_of(self, kind: str) -> list[SeededFault]:
        return [f for f in self.faults if f.kind == kind]


def _msg_id(seed: int, *parts: object) -> str:
    return hashlib.blake2b("/".join(map(str, (seed, *parts))).encode(), digest_size=16).hexdigest()


def gtin14(item_ref: str) -> str:
    body = "0" + COMPANY_PREFIX + item_ref  # indicator digit 0
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def sgtin96(item_ref: str, serial: int) -> str:
    """SGTIN-96 EPC (header 0x30, filter 1 = point-of-sale item, partition 5) as 24 hex digits."""
    value = 0x30
    value = (value << 3) | 1
    value = (value << 3) | 5
    value = (value << 24) | int(COMPANY_PREFIX)
    value = (value << 20) | int("0" + item_ref)
    value = (value << 38) | serial
    return f"{value:024X}"


def _holiday(spec: SeedSpec, tz: ZoneInfo) -> date:
    return (spec.end - timedelta(days=spec.holiday_days_before_end)).astimezone(tz).date()


def _hourly_intensity(
    spec: SeedSpec, index: int, tz: ZoneInfo, hours: list[datetime], rng: np.random.Generator
) -> np.ndarray:
    """Expected visitors per UTC hour of the range for one store."""
    base_per_day = float(rng.lognormal(math.log(700.0), 0.45))
    growth_per_year = float(rng.uniform(-0.05, 0.12))
    closed_sunday = str(tz) == "Europe/Berlin"
    day_noise: dict[date, float] = {}
    # A refit that lifts the second store by 25% two thirds into the range: a level shift.
    shift_at = spec.start + timedelta(days=spec.days * 2 // 3) if index == 1 else None
    holiday = _holiday(spec, tz) if spec.faults else None
    shape_sum = sum(_DAY_SHAPE.values())
    out = np.zeros(len(hours))
    for i, h in enumerate(hours):
        local = h.astimezone(tz)
        d = local.date()
        if d == holiday:
            continue
        wd = local.weekday()
        if wd == 6 and (closed_sunday or local.hour not in _SUNDAY_HOURS):
            continue
        w = _DAY_SHAPE.get(local.hour, 0.0)
        if w == 0.0:
            continue
        if d not in day_noise:
            day_noise[d] = float(rng.lognormal(0.0, 0.12))
        doy = d.timetuple().tm_yday
        season = (
            1.0
            + 0.35 * math.exp(-(((doy - 350) / 14.0) ** 2))
            - 0.1 * math.exp(-(((doy - 35) / 20.0) ** 2))
        )
        years = (h - spec.start).total_seconds() / (365.25 * 86400)
        level = base_per_day * (1.0 + growth_per_year * years) * season * day_noise[d]
        if shift_at is not None and h >= shift_at:
            level *= 1.25
        out[i] = level * _WEEKDAY[wd] * w / shape_sum
    return out


def _status(
    spec: SeedSpec, store_id: str, device_id: str, *, seq: int, at: datetime, state: str, kind: str
) -> Received:
    if kind == "camera":
        sources = [
            SourceHealth(id=cam, kind="camera", state="connected", rate_hz=8.0, inference_ms=41.0)
            for cam in ("cam-door", "cam-side", FLOOR_CAMERA)
        ]
    else:
        sources = [SourceHealth(id="reader-1", kind="reader", state="connected", rate_hz=12.0)]
    msg = Status(
        msg_id=_msg_id(spec.seed, store_id, device_id, "status", at.isoformat()),
        store_id=store_id,
        device_id=device_id,
        seq=max(seq, 1),
        created_at=at,
        state="online" if state == "online" else "offline",
        version="0.1.0",
        uptime_s=float((at - spec.start).total_seconds() % (30 * 86400)),
        sources=sources if state == "online" else [],
    )
    return Received(msg, at.timestamp() + 0.2)


def _zones_and_transitions(
    total_in: int, interval_s: int, rng: np.random.Generator
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    zones: list[dict[str, Any]] = []
    visits_of: dict[str, int] = {}
    for zone_id, share, median_s, sigma in ZONES:
        visits = int(rng.binomial(total_in, share)) if total_in else 0
        visits_of[zone_id] = visits
        z: dict[str, Any] = {"camera_id": FLOOR_CAMERA, "zone_id": zone_id, "visits": visits}
        if visits == 0:
            z.update(occupancy_mean=0.0, occupancy_max=0, dwell_count=0)
        else:
            # Sample statistics wobble around the distribution's with 1/sqrt(n).
            wobble = 1.0 + float(rng.normal(0.0, 0.15)) / math.sqrt(visits)
            med = median_s * wobble
            mean = med * math.exp(sigma**2 / 2)
            p90 = med * math.exp(1.2816 * sigma)
            occ = visits * mean / interval_s
            cdf = [
                0.5 * (1 + math.erf((math.log(e) - math.log(med)) / (sigma * math.sqrt(2))))
                if e > 0
                else 0.0
                for e in DWELL_EDGES_S
            ]
            probs = np.diff(np.array(cdf))
            probs = probs / probs.sum()
            counts = rng.multinomial(visits, probs)
            z.update(
                occupancy_mean=round(occ, 3),
                occupancy_max=math.ceil(occ + 2 * math.sqrt(occ)),
                dwell_count=visits,
                dwell_mean_s=round(mean, 1),
                dwell_median_s=round(med, 1),
                dwell_p90_s=round(p90, 1),
                dwell_hist={"edges_s": DWELL_EDGES_S, "counts": [int(c) for c in counts]},
            )
        zones.append(z)
    transitions = []
    for a, b, share in TRANSITIONS:
        n = int(rng.binomial(visits_of[a], share)) if visits_of[a] else 0
        if n:
            transitions.append(
                {"camera_id": FLOOR_CAMERA, "from_zone": a, "to_zone": b, "count": n}
            )
    return zones, transitions


def _stock(
    spec: SeedSpec,
    index: int,
    store_id: str,
    *,
    tz: ZoneInfo,
    hours: list[datetime],
    intensity: np.ndarray,
    rng: np.random.Generator,
    seq0: int,
) -> tuple[list[Received], list[SeededFault]]:
    """Item-level RFID events: sales during opening hours, restock at 07:00 local."""
    msgs: list[Received] = []
    faults: list[SeededFault] = []
    seq = seq0
    daily_visitors = max(float(intensity.sum()) / max(spec.days, 1), 1.0)
    end_local_day = (spec.end - timedelta(seconds=1)).astimezone(tz).date()
    # Store 1: deliveries skipped from 4 to 2 days before the end -> a closed stock-out.
    # Store 2: deliveries stop 2 days before the end -> a stock-out still open at the end.
    skip: dict[int, tuple[date, date]] = {}
    if spec.faults and index == 0:
        skip[0] = (end_local_day - timedelta(days=4), end_local_day - timedelta(days=2))
    if spec.faults and index == 1:
        skip[1] = (end_local_day - timedelta(days=2), end_local_day + timedelta(days=1))

    def emit(ts: datetime, **kw: Any) -> None:
        nonlocal seq
        seq += 1
        msg = StockEventMsg(
            msg_id=_msg_id(spec.seed, store_id, READER, seq),
            store_id=store_id,
            device_id=READER,
            seq=seq,
            created_at=ts + timedelta(seconds=2),
            ts=ts,
            reader_id="reader-1",
            **kw,
        )
        msgs.append(Received(msg, ts.timestamp() + 2.5))

    serial = 1000 * (index + 1)
    for p, (item_ref, zone, sales_per_day, full) in enumerate(PRODUCTS):
        gtin = gtin14(item_ref)
        threshold = max(2, full // 4)
        on_shelf: list[str] = []
        out_since: datetime | None = None
        low_sent = False
        for k, h in enumerate(hours):
            local = h.astimezone(tz)
            skipping = p in skip and skip[p][0] <= local.date() <= skip[p][1]
            first = k == 0
            # A daily delivery at 07:00 refills the shelf, except while deliveries are skipped.
            if first or (local.hour == 7 and len(on_shelf) < full and not skipping):
                for _ in range(full - len(on_shelf)):
                    serial += 1
                    epc = sgtin96(item_ref, serial)
                    on_shelf.append(epc)
                    emit(h + timedelta(minutes=5), event_type="item_arrived", zone=zone,
                         epc=epc, gtin=gtin, count=len(on_shelf))  # fmt: skip
                if out_since is not None:
                    emit(h + timedelta(minutes=6), event_type="stock_restored", zone=zone,
                         gtin=gtin, count=len(on_shelf), threshold=threshold)  # fmt: skip
                    faults.append(SeededFault("stock_out", store_id, out_since, h, f"GTIN {gtin}"))
                    out_since = None
                low_sent = False
            if intensity[k] <= 0 or not on_shelf:
                continue
            # A promotion quadruples sales while the deliveries are skipped: a sure stock-out.
            lam = sales_per_day * intensity[k] / daily_visitors * (4.0 if skipping else 1.0)
            for _ in range(int(rng.poisson(lam))):
                if not on_shelf:
                    break
                epc = on_shelf.pop(int(rng.integers(len(on_shelf))))
                ts = h + timedelta(seconds=int(rng.integers(60, 3540)))
                emit(ts, event_type="item_removed", zone=zone, epc=epc, gtin=gtin,
                     count=len(on_shelf))  # fmt: skip
                if len(on_shelf) <= threshold and not low_sent and on_shelf:
                    emit(ts, event_type="stock_low", zone=zone, gtin=gtin,
                         count=len(on_shelf), threshold=threshold)  # fmt: skip
                    low_sent = True
                if not on_shelf:
                    emit(ts, event_type="stock_out", zone=zone, gtin=gtin, count=0,
                         threshold=threshold)  # fmt: skip
                    out_since = ts
        if out_since is not None:
            faults.append(
                SeededFault("stock_out", store_id, out_since, None, f"GTIN {gtin} (open)")
            )
    msgs.sort(key=lambda r: r.received_ts)
    return msgs, faults


def generate_store(spec: SeedSpec, index: int) -> tuple[StoreData, list[SeededFault]]:
    store_id = spec.store_id(index)
    tz_name = TIMEZONES[index % len(TIMEZONES)]
    tz = ZoneInfo(tz_name)
    rng = np.random.default_rng([spec.seed, index])
    n_hours = spec.days * 24
    hours = [spec.start + timedelta(hours=i) for i in range(n_hours)]
    intensity = _hourly_intensity(spec, index, tz, hours, rng)
    faults: list[SeededFault] = []
    per_hour = 3600 // spec.interval_s
    lam = np.repeat(intensity / per_hour, per_hour)
    starts = [spec.start + timedelta(seconds=spec.interval_s * j) for j in range(len(lam))]
    ins = {line: rng.poisson(lam * share) for _, line, share in LINES}

    blocked: tuple[datetime, datetime] | None = None
    offline_at: datetime | None = None
    lost: set[int] = set()
    if spec.faults and index == 0:
        day = (spec.end - timedelta(days=2)).astimezone(tz).date()
        b0 = datetime(day.year, day.month, day.day, 11, tzinfo=tz).astimezone(UTC)
        blocked = (b0, b0 + timedelta(hours=4))
        faults.append(SeededFault("camera_blocked", store_id, *blocked, "cam-side/side"))
    if spec.faults and index == min(2, spec.stores - 1) and spec.stores >= 3:
        offline_at = spec.end - timedelta(hours=6)
        faults.append(SeededFault("device_offline", store_id, offline_at, None, COUNTER))
    if spec.faults and index == 1:
        day = (spec.end - timedelta(days=5)).astimezone(tz).date()
        g0 = datetime(day.year, day.month, day.day, 14, tzinfo=tz).astimezone(UTC)
        j0 = int((g0 - spec.start).total_seconds() // spec.interval_s)
        lost = {j0, j0 + 1, j0 + 2}
        faults.append(
            SeededFault(
                "seq_gap", store_id, g0, g0 + 3 * timedelta(seconds=spec.interval_s), COUNTER
            )
        )
    if blocked is not None:
        for j, s in enumerate(starts):
            if blocked[0] <= s < blocked[1]:
                ins["side"][j] = 0

    # Exits trail entries by the in-store dwell; cumulative flooring keeps exits <= entries.
    kernel_h = np.array([0.5, 0.4, 0.1])
    k = np.repeat(kernel_h / per_hour, per_hour)
    outs = {}
    for line, arr in ins.items():
        cum = np.floor(np.cumsum(np.convolve(arr.astype(float), k)[: len(arr)]) + 1e-9)
        outs[line] = np.diff(np.concatenate([[0.0], cum])).astype(int)

    messages: list[Received] = []
    seq = 0
    next_status = spec.start
    for j, s in enumerate(starts):
        e = s + timedelta(seconds=spec.interval_s)
        if offline_at is not None and e > offline_at:
            break
        if s >= next_status:
            messages.append(
                _status(spec, store_id, COUNTER, seq=seq, at=s, state="online", kind="camera")
            )
            messages.append(
                _status(spec, store_id, READER, seq=1, at=s, state="online", kind="reader")
            )
            next_status = s + timedelta(days=1)
        seq += 1
        if j in lost:
            continue
        total_in = int(ins["main"][j] + ins["side"][j])
        zones, transitions = _zones_and_transitions(total_in, spec.interval_s, rng)
        doc = {
            "msg_id": _msg_id(spec.seed, store_id, COUNTER, seq),
            "store_id": store_id,
            "device_id": COUNTER,
            "seq": seq,
            "created_at": e + timedelta(seconds=1),
            "interval_start": s,
            "interval_end": e,
            "timezone": tz_name,
            "lines": [
                {
                    "camera_id": cam,
                    "line_id": line,
                    "in": int(ins[line][j]),
                    "out": int(outs[line][j]),
                }
                for cam, line, _ in LINES
            ],
            "zones": zones,
            "transitions": transitions,
        }
        messages.append(Received(Summary.model_validate(doc), e.timestamp() + 1.5))
    final = spec.end - timedelta(minutes=2)
    if offline_at is not None:
        messages.append(
            _status(spec, store_id, COUNTER, seq=seq, at=offline_at, state="offline", kind="camera")
        )
    else:
        messages.append(
            _status(spec, store_id, COUNTER, seq=seq, at=final, state="online", kind="camera")
        )

    if spec.stock:
        stock_msgs, stock_faults = _stock(
            spec, index, store_id, tz=tz, hours=hours, intensity=intensity, rng=rng, seq0=0
        )
        messages.extend(stock_msgs)
        faults.extend(stock_faults)
    messages.append(_status(spec, store_id, READER, seq=1, at=final, state="online", kind="reader"))

    pos: list[PosRow] = []
    if spec.pos:
        pos = _pos_rows(
            spec, store_id, tz_name=tz_name, hours=hours, ins=ins, per_hour=per_hour, rng=rng
        )
    visitors = int(sum(int(a.sum()) for a in ins.values()))
    return StoreData(store_id, tz_name, messages, pos, visitors), faults


def _pos_rows(
    spec: SeedSpec,
    store_id: str,
    *,
    tz_name: str,
    hours: list[datetime],
    ins: dict[str, np.ndarray],
    per_hour: int,
    rng: np.random.Generator,
) -> list[PosRow]:
    conversion = float(rng.uniform(0.18, 0.34))
    visitors_h = (ins["main"] + ins["side"]).reshape(-1, per_hour).sum(axis=1)
    tx_h = rng.binomial(visitors_h, conversion)
    rows: list[PosRow] = []
    currency = CURRENCY[tz_name]
    n = 0
    for i, count in enumerate(tx_h):
        if not count:
            continue
        offsets = np.sort(rng.integers(300, 3600 + 600, size=int(count)))
        amounts = rng.lognormal(math.log(32.0), 0.6, size=int(count))
        for off, amount in zip(offsets, amounts, strict=True):
            n += 1
            rows.append(
                PosRow(
                    store_id=store_id,
                    transaction_id=f"T{n:08d}",
                    ts=hours[i] + timedelta(seconds=int(off)),
                    amount=round(float(amount), 2),
                    currency=currency,
                    source="csv",
                )
            )
    return rows


def generate(spec: SeedSpec) -> Iterator[tuple[StoreData, list[SeededFault]]]:
    """Yield every store's data in store order (one store in memory at a time)."""
    for index in range(spec.stores):
        yield generate_store(spec, index)


def seed_storage(
    storage: Storage,
    spec: SeedSpec,
    *,
    batch_size: int = 5000,
    progress: Callable[[str], None] | None = None,
) -> SeedResult:
    """Generate ``spec`` and write it through the storage interface (write_batch, POS rows)."""
    result = SeedResult(spec=spec)
    for data, faults in _timed(generate(spec), result):
        t0 = time.perf_counter()
        storage.set_store_timezone(data.store_id, data.timezone)
        for i in range(0, len(data.messages), batch_size):
            res = storage.write_batch(data.messages[i : i + batch_size])
            for kind, n in res.stored.items():
                result.messages[kind] = result.messages.get(kind, 0) + n
            if res.statuses:
                result.messages["status"] = result.messages.get("status", 0) + res.statuses
        for i in range(0, len(data.pos), batch_size * 4):
            new, _ = storage.add_pos_transactions(data.pos[i : i + batch_size * 4])
            result.pos_rows += new
        result.write_s += time.perf_counter() - t0
        result.stores[data.store_id] = data.timezone
        result.visitors += data.visitors
        result.faults.extend(faults)
        if progress:
            progress(f"{data.store_id}: {len(data.messages)} messages, {len(data.pos)} POS rows")
    tzs = {ZoneInfo(tz) for tz in result.stores.values()}
    if spec.faults:
        result.holidays = sorted({_holiday(spec, tz) for tz in tzs})
        for store_id, tz_name in result.stores.items():
            d = _holiday(spec, ZoneInfo(tz_name))
            day0 = datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(tz_name)).astimezone(UTC)
            result.faults.append(
                SeededFault("holiday", store_id, day0, day0 + timedelta(days=1), str(d))
            )
    return result


def _timed(
    it: Iterator[tuple[StoreData, list[SeededFault]]], result: SeedResult
) -> Iterator[tuple[StoreData, list[SeededFault]]]:
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        result.generate_s += time.perf_counter() - t0
        yield item


def pos_messages(spec: SeedSpec, data: StoreData, device_id: str = "pos-1") -> list[PosTransaction]:
    """The same POS rows as a live feed would publish them (for ingest tests and demos)."""
    return [
        PosTransaction(
            msg_id=_msg_id(spec.seed, data.store_id, device_id, i + 1),
            store_id=data.store_id,
            device_id=device_id,
            seq=i + 1,
            created_at=r.ts,
            transaction_id=r.transaction_id,
            ts=r.ts,
            amount=r.amount,
            currency=r.currency,
        )
        for i, r in enumerate(data.pos)
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m central.seed --db sqlite:///demo.db --stores 5 --days 60``"""
    from central.storage.base import open_storage

    ap = argparse.ArgumentParser(prog="python -m central.seed", description=__doc__.split("\n")[0])
    ap.add_argument("--db", required=True, help="storage URL (sqlite:///PATH or postgresql://...)")
    ap.add_argument("--stores", type=int, default=SeedSpec.stores)
    ap.add_argument("--days", type=int, default=SeedSpec.days)
    ap.add_argument("--interval-s", type=int, default=SeedSpec.interval_s)
    ap.add_argument("--end", default=DEFAULT_END.date().isoformat(), help="UTC date (exclusive)")
    ap.add_argument("--seed", type=int, default=SeedSpec.seed)
    ap.add_argument("--no-faults", action="store_true")
    args = ap.parse_args(argv)
    end = datetime.fromisoformat(args.end).replace(tzinfo=UTC)
    spec = SeedSpec(
        stores=args.stores,
        days=args.days,
        end=end,
        interval_s=args.interval_s,
        seed=args.seed,
        faults=not args.no_faults,
    )
    with open_storage(args.db) as storage:
        res = seed_storage(storage, spec, progress=lambda m: print(m, file=sys.stderr))
    print(
        f"seeded {len(res.stores)} stores x {spec.days} days: {res.messages} messages, "
        f"{res.pos_rows} POS rows, {res.visitors} visitors; generate {res.generate_s:.1f} s, "
        f"write {res.write_s:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "DEFAULT_END",
    "SeedResult",
    "SeedSpec",
    "SeededFault",
    "StoreData",
    "generate",
    "generate_store",
    "gtin14",
    "pos_messages",
    "seed_storage",
    "sgtin96",
]
