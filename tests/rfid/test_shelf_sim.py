"""An hour on a simulated shelf: 65 % per-cycle reads, cross-reads, takes, moves and restocks.

Zero false "removed" events, every real removal within the configured expiry, moves reported
once each (no storms from cross-reads), and the final stock matches the ground truth.
"""

from __future__ import annotations

import random

import pytest

from rfid.events import ItemArrived, ItemMoved, ItemRemoved, StockEvent, StockLow, StockOut
from rfid.stock import StockEngine, gtin_of
from tests.rfid.shelf_sim import GTINS, READER_ID, ShelfSim, shelf_reader_config

T0 = 1_750_000_000.0
HOUR_S = 3600


@pytest.mark.parametrize(("seed", "adaptive"), [(1, True), (2, True), (3, False)])
def test_an_hour_on_the_shelf(seed: int, adaptive: bool) -> None:
    cfg = shelf_reader_config()
    cfg = cfg.model_copy(
        update={"presence": cfg.presence.model_copy(update={"adaptive": adaptive})}
    )
    expiry_s = cfg.presence.absence_timeout_s
    sim = ShelfSim(seed=seed)
    sim.stock(per_shelf=12)
    engine = StockEngine([cfg], dict.fromkeys(GTINS, 3))
    rng = random.Random(seed * 101)
    taken: dict[str, float] = {}
    moved: dict[str, tuple[str, str, float]] = {}
    added: dict[str, float] = {}
    events: list[StockEvent] = []
    low_since: dict[tuple[str, str], float] = {}
    due_low: set[tuple[str, str]] = set()
    counts: dict[tuple[str, str], int] = {}
    change_times = {t for t in range(120, HOUR_S, 150)} | {600, 1500, 2400, 900, 2000}
    for t in range(HOUR_S):
        now = T0 + t
        if t >= 120 and t % 150 == 0:  # a shopper takes an item
            e = rng.choice(sorted(set(sim.items) - set(moved)))
            del sim.items[e]
            taken[e] = now
        if t in (600, 1500, 2400):  # staff move an item two shelves along
            e = rng.choice(sorted(set(sim.items) - set(moved)))
            src = sim.items[e]
            dst = (src + 2) % sim.n_shelves
            sim.items[e] = dst
            moved[e] = (f"shelf-{src + 1}", f"shelf-{dst + 1}", now)
        if t in (900, 2000):  # restocking
            added[sim.add_item(GTINS[0], t % sim.n_shelves)] = now
        if t == 0 or t in change_times:
            counts = _true_counts(sim)
        for key, n in counts.items():
            if n <= 3:
                low_since.setdefault(key, now)
                if now - low_since[key] > expiry_s + cfg.presence.low_stock_hold_s + 5:
                    due_low.add(key)
            else:
                low_since.pop(key, None)
        reads = sim.cycle(now)
        engine.set_reader_health(READER_ID, True, now)
        engine.ingest(reads)
        events += engine.tick(now)

    removed = [e for e in events if isinstance(e, ItemRemoved)]
    assert {e.epc for e in removed} == set(taken)  # no false removal, none missed
    for e in removed:
        assert e.ts > taken[e.epc]
        assert e.ts - taken[e.epc] <= expiry_s  # within the configured expiry
    moves = [e for e in events if isinstance(e, ItemMoved)]
    assert {e.epc: (e.from_zone, e.zone) for e in moves} == {
        k: (v[0], v[1]) for k, v in moved.items()
    }
    assert len(moves) == len(moved)  # exactly one event per real move: no storm
    arrivals = [e for e in events if isinstance(e, ItemArrived)]
    assert len(arrivals) == 48 + len(added)
    assert {e.epc for e in arrivals} >= set(added)
    assert engine.present_items() == sim.truth()
    truth: dict[str, dict[str, int]] = {}
    for e, zone in sim.truth().items():
        gtin = gtin_of(e)
        assert gtin in GTINS
        truth.setdefault(zone, {}).setdefault(gtin, 0)
        truth[zone][gtin] += 1
    assert engine.snapshot() == truth
    # Every product/shelf whose true count stayed at or below the threshold for longer than
    # expiry + hold (+ slack for the removal window) has been reported low (or out).
    lows = {(e.gtin, e.zone) for e in events if isinstance(e, (StockLow, StockOut))}
    assert due_low <= lows
    assert due_low, "the scenario should bring some product down to its threshold"


def _true_counts(sim: ShelfSim) -> dict[tuple[str, str], int]:
    counts = {(g, f"shelf-{z + 1}"): 0 for g in GTINS for z in range(sim.n_shelves)}
    for e, zone in sim.truth().items():
        counts[(gtin_of(e) or "", zone)] += 1
    return counts


def test_reader_outage_on_the_shelf() -> None:
    """Five minutes offline with an item taken meanwhile: nothing is removed while the reader
    is down, the taken item goes one full window after the reconnect, the others stay."""
    cfg = shelf_reader_config()
    window_s = cfg.presence.absence_timeout_s
    sim = ShelfSim(seed=9)
    sim.stock(per_shelf=6)
    engine = StockEngine([cfg], {})
    events: list[StockEvent] = []
    gone = sorted(sim.items)[5]
    back_at = T0 + 700
    for t in range(900):
        now = T0 + t
        sim.online = not 400 <= t < 700
        if t == 500:
            del sim.items[gone]
        reads = sim.cycle(now)
        engine.set_reader_health(READER_ID, sim.online, now)
        engine.ingest(reads)
        out = engine.tick(now)
        if not sim.online:
            assert not [e for e in out if isinstance(e, (ItemRemoved, ItemMoved))]
        events += out
    removed = [e for e in events if isinstance(e, ItemRemoved)]
    assert [e.epc for e in removed] == [gone]
    assert window_s <= removed[0].ts - back_at <= window_s + 1
    assert engine.present_items() == sim.truth()
