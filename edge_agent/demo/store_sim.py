"""Synthetic shoppers for the demo: who walks where, when, what they take and what they buy.

A store day's arrival profile (09:00-21:00, busier at lunch and after work) is compressed into
the simulated duration, but everything a shopper does runs at real speed: walking at ~1.2 m/s,
browsing a shelf for tens of seconds, queueing at the till. So dwell times, track lengths and
RFID timeouts stay realistic while a "day" takes minutes of simulated time.

The result is the ground truth: per-frame feet positions of everyone in view, the items taken
from the RFID shelves (and when a product truly ran out), and the till transactions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge_agent.demo import floor_plan as fp

F32 = npt.NDArray[np.float32]

# Relative arrivals per opening hour 09..20 (lunch and after-work peaks).
HOURLY_PROFILE = (0.4, 0.6, 0.8, 1.2, 1.3, 0.9, 0.8, 0.9, 1.2, 1.4, 1.1, 0.6)
OPENING_HOUR = 9
WALK_SPEED_M_S = (1.25, 0.2)  # mean, sd
LAST_ARRIVAL_BEFORE_END_S = 180.0  # shoppers arriving later might still be inside at the end
SHELF_VISIT_P = 0.6  # each RFID shelf is browsed by this share of shoppers...
# ...plus half of those who picked neither (they browse one at random).
ZONE_VISIT_P = SHELF_VISIT_P + (1 - SHELF_VISIT_P) ** 2 / 2


@dataclass(frozen=True, slots=True)
class SimParams:
    duration_s: float = 1200.0
    fps: float = 5.0
    visitors: float = 110.0  # expected shoppers over the simulated day
    passers_per_visitor: float = 1.0  # people walking past the storefront without entering
    buy_without_item: float = 0.35  # shoppers who buy untagged goods
    refill_after_s: float = 180.0  # staff refill an empty shelf this long after it empties
    seed: int = 7


@dataclass(frozen=True, slots=True)
class Take:
    """A shopper took one tagged item off its shelf (it leaves antenna range at once)."""

    ts_s: float
    epc_index: int
    gtin: str
    zone: str
    person_id: int


@dataclass(frozen=True, slots=True)
class Sale:
    ts_s: float
    transaction_id: str
    amount: float


@dataclass(slots=True)
class Person:
    """One person in view; `feet` holds the anchor (bottom centre) per frame from start_frame."""

    id: int
    kind: str  # "shopper" or "passer"
    start_frame: int
    feet: F32
    visits: list[str] = field(default_factory=list)
    wants: list[tuple[float, str]] = field(default_factory=list)  # (ts_s, gtin) intents
    checkout_end_s: float | None = None

    @property
    def end_frame(self) -> int:
        return self.start_frame + int(self.feet.shape[0])


@dataclass(frozen=True, slots=True)
class Item:
    epc_index: int  # index into the tag list (the EPC itself is made by rfid_sim)
    gtin: str
    zone: str
    serial: int
    stocked_s: float = 0.0  # when it was put on the shelf (0: there at opening)


@dataclass(frozen=True, slots=True)
class StockOutSpan:
    """A product's shelf was truly empty from `start_s` until `end_s` (None: still at close)."""

    gtin: str
    zone: str
    start_s: float
    end_s: float | None


@dataclass(slots=True)
class StoreDay:
    params: SimParams
    people: list[Person]
    items: list[Item]
    takes: list[Take]
    sales: list[Sale]
    stockouts: list[StockOutSpan]
    missed_wants: int  # shoppers who found the product gone
    n_frames: int

    @property
    def shoppers(self) -> list[Person]:
        return [p for p in self.people if p.kind == "shopper"]


def _walk(p: F32, q: F32, speed_px_s: float, dt: float, rng: np.random.Generator) -> F32:
    dist = float(np.hypot(*(q - p)))
    n = max(1, math.ceil(dist / (speed_px_s * dt)))
    t = np.arange(1, n + 1, dtype=np.float32) / n
    pts = p[None, :] + (q - p)[None, :] * t[:, None]
    # Gait sway perpendicular to the direction of travel, a couple of pixels.
    if dist > 0:
        normal = np.array([-(q - p)[1], (q - p)[0]], dtype=np.float32) / dist
        phase = rng.uniform(0, 2 * np.pi)
        sway = 1.5 * np.sin(phase + np.arange(n, dtype=np.float32) * 1.7)
        pts = pts + sway[:, None] * normal[None, :]
    return pts.astype(np.float32)


def _stand(p: F32, dur_s: float, dt: float, rng: np.random.Generator) -> F32:
    n = max(1, round(dur_s / dt))
    steps = rng.normal(0.0, 0.8, size=(n, 2))
    pos = np.clip(np.cumsum(steps, axis=0), -4.0, 4.0)
    return (p[None, :] + pos).astype(np.float32)


def _point_in(area: tuple[float, float, float, float], rng: np.random.Generator) -> F32:
    x1, y1, x2, y2 = area
    return np.array([rng.uniform(x1, x2), rng.uniform(y1, y2)], dtype=np.float32)


def _arrival_times(n: int, span_s: float, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """n times in [0, span_s) drawn from the compressed hourly profile."""
    w = np.asarray(HOURLY_PROFILE, dtype=np.float64)
    hours = rng.choice(len(w), size=n, p=w / w.sum())
    frac = (hours + rng.uniform(0, 1, size=n)) / len(w)
    return np.sort(frac * span_s)


def _sidewalk_end(rng: np.random.Generator) -> F32:
    x = -30.0 if rng.uniform() < 0.5 else fp.FRAME_W_PX + 30.0
    return np.array([x, rng.uniform(*fp.SIDEWALK_Y_PX)], dtype=np.float32)


def _want_p(product: fp.Product, params: SimParams) -> float:
    """Chance a shopper browsing the product's shelf wants one, so that the day's expected
    demand is `demand_ratio` times the stock whatever the number of visitors."""
    browsers = max(1.0, params.visitors * ZONE_VISIT_P)
    return min(0.9, product.demand_ratio * product.initial / browsers)


def _shopper(
    pid: int, t0_s: float, params: SimParams, rng: np.random.Generator
) -> tuple[Person, bool]:
    dt = 1.0 / params.fps
    speed = max(0.6, rng.normal(*WALK_SPEED_M_S)) * fp.PX_PER_M
    door_x = fp.OUTSIDE_DOOR_PX[0] + rng.uniform(-30, 30)
    outside = np.array([door_x, fp.OUTSIDE_DOOR_PX[1]], dtype=np.float32)
    inside = np.array([door_x + rng.uniform(-10, 10), fp.INSIDE_DOOR_PX[1]], dtype=np.float32)
    start = _sidewalk_end(rng)
    segs = [
        start[None, :],
        _walk(start, outside, speed, dt, rng),
        _walk(outside, inside, speed, dt, rng),
    ]
    here = inside
    shelves = [z for z in fp.RFID_ZONES if rng.uniform() < SHELF_VISIT_P]
    if not shelves:
        shelves = [fp.RFID_ZONES[int(rng.integers(len(fp.RFID_ZONES)))]]
    rng.shuffle(shelves)
    person = Person(pid, "shopper", 0, np.zeros((0, 2), np.float32))
    wants_item = False

    def elapsed() -> float:
        return t0_s + sum(s.shape[0] for s in segs) * dt

    for zone in shelves:
        spot = _point_in(fp.BROWSE_AREA_PX[zone], rng)
        segs.append(_walk(here, spot, speed, dt, rng))
        dwell_s = float(np.clip(rng.lognormal(math.log(25.0), 0.6), 6.0, 150.0))
        # The shopper reaches for a product halfway through browsing.
        for product in fp.PRODUCTS:
            if product.zone == zone and rng.uniform() < _want_p(product, params):
                person.wants.append((elapsed() + dwell_s / 2, product.gtin))
                wants_item = True
        segs.append(_stand(spot, dwell_s, dt, rng))
        person.visits.append(zone)
        here = spot
    buys = wants_item or rng.uniform() < params.buy_without_item
    if buys:
        spot = _point_in(fp.BROWSE_AREA_PX["checkout"], rng)
        segs.append(_walk(here, spot, speed, dt, rng))
        segs.append(
            _stand(spot, float(np.clip(rng.lognormal(math.log(30.0), 0.4), 10, 90)), dt, rng)
        )
        person.visits.append("checkout")
        person.checkout_end_s = elapsed()
        here = spot
    exit_inside = np.array(
        [fp.INSIDE_DOOR_PX[0] + rng.uniform(-30, 30), fp.INSIDE_DOOR_PX[1]], np.float32
    )
    exit_outside = np.array(
        [exit_inside[0] + rng.uniform(-10, 10), fp.OUTSIDE_DOOR_PX[1]], np.float32
    )
    end = _sidewalk_end(rng)
    segs += [
        _walk(here, exit_inside, speed, dt, rng),
        _walk(exit_inside, exit_outside, speed, dt, rng),
        _walk(exit_outside, end, speed, dt, rng),
    ]
    person.start_frame = round(t0_s / dt)
    person.feet = np.concatenate(segs).astype(np.float32)
    return person, buys


def _passer(pid: int, t0_s: float, params: SimParams, rng: np.random.Generator) -> Person:
    dt = 1.0 / params.fps
    speed = max(0.6, rng.normal(*WALK_SPEED_M_S)) * fp.PX_PER_M
    a = _sidewalk_end(rng)
    b = np.array([fp.FRAME_W_PX - a[0], rng.uniform(*fp.SIDEWALK_Y_PX)], dtype=np.float32)
    return Person(
        pid, "passer", round(t0_s / dt), np.concatenate([a[None, :], _walk(a, b, speed, dt, rng)])
    )


def simulate_day(params: SimParams) -> StoreDay:
    """Plan everyone's day, then replay the shelf intents in time order against the stock."""
    rng = np.random.default_rng(params.seed)
    span_s = max(60.0, params.duration_s - LAST_ARRIVAL_BEFORE_END_S)
    people: list[Person] = []
    buyers: list[Person] = []
    for t in _arrival_times(int(rng.poisson(params.visitors)), span_s, rng):
        person, buys = _shopper(len(people) + 1, float(t), params, rng)
        people.append(person)
        if buys:
            buyers.append(person)
    n_pass = int(rng.poisson(params.visitors * params.passers_per_visitor))
    for t in _arrival_times(n_pass, params.duration_s - 30.0, rng):
        people.append(_passer(len(people) + 1, float(t), params, rng))

    items: list[Item] = []
    for product in fp.PRODUCTS:
        for serial in range(1, product.initial + 1):
            items.append(Item(len(items), product.gtin, product.zone, 1000 + serial))
    on_shelf: dict[str, list[Item]] = {
        p.gtin: [i for i in items if i.gtin == p.gtin] for p in fp.PRODUCTS
    }
    products = {p.gtin: p for p in fp.PRODUCTS}
    takes: list[Take] = []
    empty_since: dict[str, float] = {}
    stockouts: list[StockOutSpan] = []
    missed = 0
    serials = dict.fromkeys(products, 2000)

    def refill_due(until_s: float) -> None:
        """Staff refill shelves empty for `refill_after_s` with a fresh case (new tags)."""
        for g, since in sorted(empty_since.items(), key=lambda kv: kv[1]):
            at_s = since + params.refill_after_s
            if at_s > until_s:
                continue
            product = products[g]
            fresh = [
                Item(len(items) + k, g, product.zone, serials[g] + k, at_s)
                for k in range(product.initial)
            ]
            serials[g] += product.initial
            items.extend(fresh)
            on_shelf[g] = fresh
            stockouts.append(StockOutSpan(g, product.zone, since, at_s))
            del empty_since[g]

    intents = sorted((ts, gtin, p.id) for p in people for ts, gtin in p.wants)
    for ts, gtin, pid in intents:
        refill_due(ts)
        stock = on_shelf[gtin]
        if not stock:
            missed += 1
            continue
        item = stock.pop(int(rng.integers(len(stock))))
        takes.append(Take(ts, item.epc_index, gtin, item.zone, pid))
        if not stock:
            empty_since[gtin] = ts
    refill_due(params.duration_s)
    stockouts += [StockOutSpan(g, products[g].zone, t, None) for g, t in empty_since.items()]
    stockouts.sort(key=lambda so: so.start_s)

    sales: list[Sale] = []
    prices = {p.gtin: p.price for p in fp.PRODUCTS}
    spent: dict[int, float] = {}
    for take in takes:
        spent[take.person_id] = spent.get(take.person_id, 0.0) + prices[take.gtin]
    for n, person in enumerate(sorted(buyers, key=lambda p: p.checkout_end_s or 0.0), start=1):
        assert person.checkout_end_s is not None
        amount = float(rng.lognormal(math.log(14.0), 0.5)) + spent.get(person.id, 0.0)
        sales.append(Sale(person.checkout_end_s, f"T{n:05d}", round(amount, 2)))

    n_frames = max([p.end_frame for p in people] + [round(params.duration_s * params.fps)])
    people.sort(key=lambda p: p.start_frame)
    return StoreDay(params, people, items, takes, sales, stockouts, missed, n_frames)


def frame_ts(day: StoreDay, frame_index: int) -> float:
    """Seconds since the simulated opening for a frame (frame 0 = opening)."""
    return frame_index / day.params.fps


class FrameStream:
    """Who is in view at each frame: feet positions and person ids, in frame order."""

    def __init__(self, day: StoreDay) -> None:
        self.day = day
        self._next = 0
        self._active: list[Person] = []

    def at(self, frame_index: int) -> tuple[F32, npt.NDArray[np.int64]]:
        """Call with increasing frame indices."""
        people = self.day.people
        while self._next < len(people) and people[self._next].start_frame <= frame_index:
            self._active.append(people[self._next])
            self._next += 1
        self._active = [p for p in self._active if p.end_frame > frame_index]
        feet = [p.feet[frame_index - p.start_frame] for p in self._active]
        ids = [p.id for p in self._active]
        if not feet:
            return np.zeros((0, 2), np.float32), np.zeros(0, np.int64)
        xy = np.asarray(feet, dtype=np.float32)
        visible = (xy[:, 0] >= 0) & (xy[:, 0] <= fp.FRAME_W_PX)
        return xy[visible], np.asarray(ids, dtype=np.int64)[visible]


__all__ = [
    "FrameStream",
    "Item",
    "Person",
    "Sale",
    "SimParams",
    "StockOutSpan",
    "StoreDay",
    "Take",
    "frame_ts",
    "simulate_day",
]
