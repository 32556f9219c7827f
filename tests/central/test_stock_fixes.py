"""Stock counts after the last threshold event, and the lost-sales history of stock-outs that
began before the report range, on both storage backends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from central.analytics import report_range, stock
from central.storage import Storage
from tests.central.factory import received, summary
from tests.central.factory import stock as stock_msg

G1 = "09506000134352"
G2 = "09506000134369"
DAY0 = datetime(2026, 6, 1, tzinfo=UTC)


def epc(i: int) -> str:
    return f"3034{i:020X}"


def counts_of(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["gtin"], c["zone"]): c for c in doc["counts"]}


def test_items_after_the_last_threshold_event_change_the_count(storage: Storage) -> None:
    t = DAY0 + timedelta(hours=9)
    seq = iter(range(1, 1000))
    msgs: list[object] = []
    # g1 on shelf1: low at 2 (threshold 3), restored at 5 ...
    msgs.append(stock_msg(next(seq), t, "stock_low", gtin=G1, count=2, threshold=3))
    msgs.append(stock_msg(next(seq), t + timedelta(minutes=5), "stock_restored", gtin=G1,
                          count=5, threshold=3))  # fmt: skip
    # ... then 35 more arrive, 3 are sold and 2 move to shelf2: 5 + 35 - 3 - 2 = 35 on shelf1.
    for i in range(35):
        msgs.append(stock_msg(next(seq), t + timedelta(minutes=10, seconds=i), "item_arrived",
                              gtin=G1, epc=epc(i)))  # fmt: skip
    for i in range(3):
        msgs.append(stock_msg(next(seq), t + timedelta(minutes=20, seconds=i), "item_removed",
                              gtin=G1, epc=epc(i)))  # fmt: skip
    for i in range(3, 5):
        msgs.append(stock_msg(next(seq), t + timedelta(minutes=30, seconds=i), "item_moved",
                              gtin=G1, epc=epc(i), zone="shelf2", from_zone="shelf1"))  # fmt: skip
    # An item counted before the restore and sold afterwards (central never saw it arrive).
    msgs.append(stock_msg(next(seq), t + timedelta(minutes=40), "item_removed", gtin=G1,
                          epc=epc(900)))  # fmt: skip
    # A tag read again in the zone it is already in (an edge restart re-announces it): no change.
    msgs.append(stock_msg(next(seq), t + timedelta(minutes=50), "item_arrived", gtin=G1,
                          epc=epc(10)))  # fmt: skip
    # g2 on shelf1 has no threshold event at all: four arrive, one leaves -> 3.
    for i in range(4):
        msgs.append(stock_msg(next(seq), t + timedelta(minutes=10, seconds=i), "item_arrived",
                              gtin=G2, epc=epc(100 + i)))  # fmt: skip
    msgs.append(stock_msg(next(seq), t + timedelta(minutes=15), "item_removed", gtin=G2,
                          epc=epc(100)))  # fmt: skip
    storage.write_batch(received(*msgs))

    rng = report_range(storage, "s1", date(2026, 6, 1), date(2026, 6, 1))
    doc = stock(storage, rng, now=DAY0 + timedelta(hours=12))
    counts = counts_of(doc)
    g1 = counts[(G1, "shelf1")]
    assert g1["count"] == 5 + 35 - 3 - 2 - 1
    assert g1["source"] == "stock_engine"
    assert g1["net_items_since"] == 35 - 3 - 2 - 1
    assert g1["last_event"] == "stock_restored"
    assert g1["as_of"] == (t + timedelta(minutes=40)).isoformat()
    # shelf2 never had a threshold event: the two tags that moved there are counted.
    assert (counts[(G1, "shelf2")]["count"], counts[(G1, "shelf2")]["source"]) == (2, "tags")
    assert (counts[(G2, "shelf1")]["count"], counts[(G2, "shelf1")]["source"]) == (3, "tags")
    assert doc["low_stock"] == []


def test_low_stock_follows_the_current_count(storage: Storage) -> None:
    t = DAY0 + timedelta(hours=9)
    msgs: list[object] = [
        stock_msg(1, t, "stock_low", gtin=G1, count=2, threshold=3),
        stock_msg(2, t, "stock_low", gtin=G2, count=3, threshold=3),
    ]
    # g1: ten arrive after the low event (12, no longer low although the edge has not yet sent
    # stock_restored); g2: one arrives (4 = threshold + 1: still low by the edge's hysteresis).
    msgs += [stock_msg(10 + i, t + timedelta(minutes=1, seconds=i), "item_arrived", gtin=G1,
                       epc=epc(i)) for i in range(10)]  # fmt: skip
    msgs.append(stock_msg(30, t + timedelta(minutes=2), "item_arrived", gtin=G2, epc=epc(50)))
    storage.write_batch(received(*msgs))
    rng = report_range(storage, "s1", date(2026, 6, 1), date(2026, 6, 1))
    doc = stock(storage, rng, now=DAY0 + timedelta(hours=12))
    counts = counts_of(doc)
    assert counts[(G1, "shelf1")]["count"] == 12
    assert counts[(G2, "shelf1")]["count"] == 4
    assert [c["gtin"] for c in doc["low_stock"]] == [G2]


def test_lost_sales_of_a_stock_out_that_began_before_the_range(storage: Storage) -> None:
    msgs: list[object] = []
    seq = 0
    # Open 10:00-14:00 UTC every day (footfall > 0) for 40 days.
    for d in range(40):
        for h in range(10, 14):
            seq += 1
            msgs.append(summary(seq, DAY0 + timedelta(days=d, hours=h), minutes=60,
                                lines={"door/main": (5, 5)}))  # fmt: skip
    # One unit sold per day on days 2..29: the 28 days before the stock-out on day 30 10:00
    # hold 28 units over 28 x 4 open hours = 0.25 units per open hour.
    for d in range(2, 30):
        seq += 1
        msgs.append(stock_msg(seq, DAY0 + timedelta(days=d, hours=10, minutes=5), "item_removed",
                              gtin=G1, epc=epc(d)))  # fmt: skip
    seq += 1
    out_start = DAY0 + timedelta(days=30, hours=10)
    msgs.append(stock_msg(seq, out_start, "stock_out", gtin=G1, count=0))
    storage.write_batch(received(*msgs))
    # The report covers days 35 and 36 only; the product is still out.
    rng = report_range(storage, "s1", date(2026, 7, 6), date(2026, 7, 7))
    assert rng.start == DAY0 + timedelta(days=35)
    doc = stock(storage, rng, now=DAY0 + timedelta(days=36, hours=20))
    (out,) = doc["stock_outs"]
    assert out["start"] == out_start.isoformat()
    assert out["open"] is True
    assert out["open_hours_out_in_range"] == 8.0
    assert out["typical_units_per_open_hour"] == 0.25
    assert out["lost_units"] == 2.0
    assert doc["lost_units_estimate"] == 2.0


def test_lost_sales_use_the_zones_own_sales_rate(storage: Storage) -> None:
    msgs: list[object] = []
    seq = iter(range(1, 10_000))
    # Open 10:00-14:00 UTC on days 0..2 (footfall > 0).
    for d in range(3):
        for h in range(10, 14):
            msgs.append(summary(next(seq), DAY0 + timedelta(days=d, hours=h), minutes=60,
                                lines={"door/main": (5, 5)}))  # fmt: skip
    # Day 0: g1 sells 4 units from shelf1 and 12 from the promotion end cap over 4 open hours:
    # 1 and 3 units per open hour; the store as a whole sells 4.
    for i in range(4):
        msgs.append(stock_msg(next(seq), DAY0 + timedelta(hours=10, minutes=i), "item_removed",
                              gtin=G1, epc=epc(i), zone="shelf1"))  # fmt: skip
    for i in range(12):
        msgs.append(stock_msg(next(seq), DAY0 + timedelta(hours=11, minutes=i), "item_removed",
                              gtin=G1, epc=epc(100 + i), zone="endcap"))  # fmt: skip
    # Day 1: both zones out at 10:00 and restocked at 12:00 (two open hours each).
    for zone in ("shelf1", "endcap"):
        msgs.append(stock_msg(next(seq), DAY0 + timedelta(days=1, hours=10), "stock_out",
                              gtin=G1, count=0, zone=zone))  # fmt: skip
        msgs.append(stock_msg(next(seq), DAY0 + timedelta(days=1, hours=12), "stock_restored",
                              gtin=G1, count=6, zone=zone))  # fmt: skip
    storage.write_batch(received(*msgs))
    rng = report_range(storage, "s1", date(2026, 6, 2), date(2026, 6, 2))
    doc = stock(storage, rng, now=DAY0 + timedelta(days=2))
    outs = {o["zone"]: o for o in doc["stock_outs"]}
    assert outs["shelf1"]["typical_units_per_open_hour"] == 1.0
    assert outs["shelf1"]["lost_units"] == 2.0
    assert outs["endcap"]["typical_units_per_open_hour"] == 3.0
    assert outs["endcap"]["lost_units"] == 6.0
    assert doc["lost_units_estimate"] == 8.0
