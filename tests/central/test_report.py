"""Report numbers against hand-computed expectations, on both storage backends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from central.analytics import histogram_quantile, weighted_quantile
from central.report import build_report, report_csv, report_text
from central.storage import PosRow, Storage
from tests.central.factory import received, stock, summary

NY = "America/New_York"
# 2026-11-01: US daylight saving ends, 01:00-02:00 local happens twice (EDT, then EST).
DAY = date(2026, 11, 1)
HIST = {"edges_s": [0, 10, 30, 60], "counts": [2, 6, 2]}


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def seed_ny(storage: Storage) -> None:
    def s(seq: int, start: datetime, door: int, side: int = 0, **kw: object) -> object:
        return summary(seq, start, tz=NY, lines={"door/main": (door, door - 1 if door else 0),
                                                 "side/l": (side, 0)}, **kw)  # type: ignore[arg-type]  # fmt: skip

    zone = {"zone_id": "z1", "visits": 10, "occupancy_mean": 2.0, "occupancy_max": 4,
            "dwell_count": 10, "dwell_mean_s": 25.0, "dwell_hist": HIST}  # fmt: skip
    storage.write_batch(
        received(
            s(1, utc(2026, 11, 1, 3, 59), 100),  # 23:59 EDT on Oct 31: not in the report
            s(2, utc(2026, 11, 1, 4, 0), 10, 1, zones=[zone], transitions=[("z1", "z2", 3)]),
            s(3, utc(2026, 11, 1, 5, 30), 20, transitions=[("z1", "z3", 1)]),  # 01:30 EDT
            s(4, utc(2026, 11, 1, 6, 30), 30),  # 01:30 EST, the repeated hour
            s(5, utc(2026, 11, 2, 4, 59), 5),  # 23:59 EST on Nov 1: last minute of the day
            s(6, utc(2026, 11, 2, 5, 0), 1000),  # 00:00 EST on Nov 2: not in the report
        )
    )
    storage.add_pos_transactions(
        [
            PosRow("s1", "t0", utc(2026, 11, 1, 3, 59, 59), 99.0, "USD", "csv"),  # Oct 31 local
            PosRow("s1", "t1", utc(2026, 11, 1, 4, 10), 10.0, "USD", "csv"),
            PosRow("s1", "t2", utc(2026, 11, 1, 4, 50), 20.0, "USD", "csv"),
            PosRow("s1", "t3", utc(2026, 11, 1, 6, 45), 6.0, "USD", "csv"),
        ]
    )


def test_footfall_conversion_dwell_on_a_dst_day(storage: Storage) -> None:
    seed_ny(storage)
    now = utc(2026, 11, 3)
    doc = build_report(storage, "s1", DAY, DAY, now=now)
    assert doc["timezone"] == NY
    assert doc["range_utc"] == {
        "start": "2026-11-01T04:00:00+00:00",
        "end": "2026-11-02T05:00:00+00:00",
    }
    ff = doc["footfall"]
    assert ff["total_in"] == 10 + 1 + 20 + 30 + 5
    assert ff["total_out"] == 9 + 19 + 29 + 4
    assert ff["lines"] == {"door/main": {"in": 65, "out": 61}, "side/l": {"in": 1, "out": 0}}
    hours = ff["by_hour"]
    assert len(hours) == 25  # the long day
    assert [(h["hour"], h["in"]) for h in hours[:3]] == [
        ("2026-11-01T00:00:00-04:00", 11),
        ("2026-11-01T01:00:00-04:00", 20),
        ("2026-11-01T01:00:00-05:00", 30),
    ]
    assert (hours[-1]["hour"], hours[-1]["in"]) == ("2026-11-01T23:00:00-05:00", 5)
    assert sum(h["reported"] for h in hours) == 4
    assert ff["by_day"] == [{"date": "2026-11-01", "in": 66, "out": 61}]

    conv = doc["conversion"]
    assert (conv["visitors"], conv["transactions"], conv["revenue"]) == (66, 3, 36.0)
    assert conv["conversion"] == round(3 / 66, 4)
    assert conv["average_basket"] == 12.0
    assert conv["visitors_per_transaction"] == 22.0
    by_hour = {h["hour"]: h for h in conv["by_hour"]}
    assert by_hour["2026-11-01T00:00:00-04:00"]["transactions"] == 2
    assert by_hour["2026-11-01T00:00:00-04:00"]["conversion"] == round(2 / 11, 4)
    assert by_hour["2026-11-01T01:00:00-05:00"]["transactions"] == 1
    assert by_hour["2026-11-01T01:00:00-04:00"]["transactions"] == 0

    occ = doc["occupancy"]["by_hour"]
    # in - out since local midnight: 11-9=2, +20-19 -> 3, +30-29 -> 4, ..., last hour +5-4 -> 5
    assert [o["in_store"] for o in occ[:3]] == [2, 3, 4]
    assert occ[-1]["in_store"] == 5
    assert occ[0]["zones"] == {"cam/z1": 2.0}

    z = doc["dwell"]["zones"]["cam/z1"]
    # merged histogram 2 | 6 | 2 over [0,10,30,60): median at 10 + 20 * 3/6, p90 at 30 + 30 * 1/2
    assert (z["median_s"], z["p90_s"], z["mean_s"], z["method"]) == (20.0, 45.0, 25.0, "histogram")
    assert doc["transitions"] == [
        {"camera_id": "cam", "from": "z1", "to": "z2", "count": 3, "share_of_from": 0.75},
        {"camera_id": "cam", "from": "z1", "to": "z3", "count": 1, "share_of_from": 0.25},
    ]
    assert "data_quality" in doc and "findings" in doc["data_quality"]
    lines = report_csv(doc).splitlines()
    assert lines[0].startswith("hour,in,out")
    assert len(lines) == 26
    assert "Footfall: 66 in, 61 out" in report_text(doc)


def test_stock_outs_durations_low_stock_and_lost_units(storage: Storage) -> None:
    g1, g2, g3 = "09506000134352", "09506000134369", "09506000134376"
    day0 = utc(2026, 6, 1)
    # Open hours: 10:00-14:00 UTC each day (footfall > 0); closed otherwise.
    msgs: list[object] = []
    seq = 0
    for d in range(3):
        for h in range(10, 14):
            seq += 1
            msgs.append(summary(seq, day0 + timedelta(days=d, hours=h), minutes=60,
                                lines={"door/main": (5, 5)}))  # fmt: skip
    # Four units of g1 sold the day before the stock-out: 4 units / 4 open hours = 1 per hour.
    ev = [stock(i + 1, day0 + timedelta(hours=10 + i, minutes=5), "item_removed", gtin=g1,
                epc=f"30340000000000000000{i:04d}", count=10 - i) for i in range(4)]  # fmt: skip
    ev += [
        stock(10, day0 + timedelta(days=1, hours=10), "stock_out", gtin=g1, count=0),
        stock(11, day0 + timedelta(days=1, hours=12), "stock_restored", gtin=g1, count=8),
        stock(12, day0 + timedelta(days=2, hours=12, minutes=30), "stock_out", gtin=g2, count=0),
        stock(13, day0 + timedelta(days=2, hours=9), "stock_low", gtin=g3, count=2, threshold=3),
    ]
    storage.write_batch(received(*msgs, *ev))
    now = day0 + timedelta(days=2, hours=20)
    doc = build_report(storage, "s1", date(2026, 6, 2), date(2026, 6, 3), now=now)
    st = doc["stock"]
    outs = {o["gtin"]: o for o in st["stock_outs"]}
    assert outs[g1]["duration_s"] == 2 * 3600
    assert outs[g1]["open"] is False
    assert outs[g1]["open_hours_out_in_range"] == 2.0
    assert outs[g1]["typical_units_per_open_hour"] == 1.0
    assert outs[g1]["lost_units"] == 2.0
    # g2 is still out at `now` (20:00): 7.5 h so far, 1.5 of them in open hours (12:30-14:00).
    assert outs[g2]["open"] is True and outs[g2]["end"] is None
    assert outs[g2]["duration_s"] == 7.5 * 3600
    assert outs[g2]["open_hours_out_in_range"] == 1.5
    assert outs[g2]["lost_units"] is None and "no item_removed" in outs[g2]["lost_units_reason"]
    assert st["open_stock_outs"] == 1
    assert st["lost_units_estimate"] == 2.0
    counts = {(c["gtin"], c["zone"]): c["count"] for c in st["counts"]}
    assert counts == {(g1, "shelf1"): 8, (g2, "shelf1"): 0, (g3, "shelf1"): 2}
    assert [c["gtin"] for c in st["low_stock"]] == [g3]


@pytest.mark.parametrize(
    ("bins", "q", "expected"),
    [
        ([(0, 10, 1)], 0.5, 5.0),
        ([(0, 10, 2), (10, 30, 6), (30, 60, 2)], 0.9, 45.0),
        # Overlapping bins from different edge sets: [0,20) x 4 and [10,20) x 4 -> the CDF has
        # mass 2 on [0,10) and 2 + 4 on [10,20); the median (4) is at 10 + 10 * 2/6.
        ([(0, 20, 4), (10, 20, 4)], 0.5, 10 + 10 * 2 / 6),
        ([], 0.5, None),
    ],
)
def test_histogram_quantile(
    bins: list[tuple[float, float, float]], q: float, expected: float | None
) -> None:
    got = histogram_quantile(bins, q)
    if expected is None:
        assert got is None
    else:
        assert got is not None and not got.at_least
        assert got.value_s == pytest.approx(expected)


def test_weighted_quantile() -> None:
    assert weighted_quantile([(30.0, 1), (10.0, 5), (20.0, 1)], 0.5) == 10.0
    assert weighted_quantile([], 0.5) is None


def test_dwell_without_histograms_falls_back_and_says_so(storage: Storage) -> None:
    t0 = utc(2026, 6, 1, 10)
    zones = [
        {"zone_id": "z9", "visits": 3, "occupancy_mean": 1.0, "occupancy_max": 2,
         "dwell_count": n, "dwell_mean_s": med, "dwell_median_s": med, "dwell_p90_s": p90}
        for n, med, p90 in [(1, 100.0, 150.0), (5, 20.0, 40.0), (1, 60.0, 90.0)]
    ]  # fmt: skip
    storage.write_batch(
        received(
            *[summary(i + 1, t0 + timedelta(minutes=i), zones=[z]) for i, z in enumerate(zones)]
        )
    )
    doc = build_report(storage, "s1", date(2026, 6, 1), date(2026, 6, 1), now=utc(2026, 6, 2),
                       with_quality=False)  # fmt: skip
    z = doc["dwell"]["zones"]["cam/z9"]
    # Weighted by dwell_count: medians 20 (x5), 60, 100 -> 20; p90s 40 (x5), 90, 150 -> 40.
    assert (z["method"], z["median_s"], z["p90_s"]) == ("weighted_interval_quantiles", 20.0, 40.0)
    assert z["mean_s"] == round((100 + 5 * 20 + 60) / 7, 1)
    assert "data_quality" not in doc


def test_conversion_leaves_out_sales_of_hours_without_footfall(storage: Storage) -> None:
    # The door camera reports 10 visitors an hour at 10, 11 and 12 h and is dead at 13 h,
    # when four sales happen; one sale in each counted hour.
    t0 = utc(2026, 6, 1, 10)
    storage.write_batch(received(*[
        summary(i + 1, t0 + timedelta(hours=i), minutes=60, lines={"door/main": (10, 10)})
        for i in range(3)
    ]))  # fmt: skip
    sales = [t0 + timedelta(hours=h, minutes=m) for h, m in [(0, 5), (1, 5), (2, 5)]]
    sales += [t0 + timedelta(hours=3, minutes=m) for m in (5, 15, 25, 35)]
    storage.add_pos_transactions(
        [PosRow("s1", f"t{i}", ts, 10.0, "EUR", "csv") for i, ts in enumerate(sales)]
    )
    doc = build_report(storage, "s1", date(2026, 6, 1), date(2026, 6, 1), now=utc(2026, 6, 2),
                       with_quality=False)  # fmt: skip
    conv = doc["conversion"]
    # All 7 sales are sales (revenue, basket), but only the 3 of counted hours meet visitors.
    assert (conv["visitors"], conv["transactions"], conv["revenue"]) == (30, 7, 70.0)
    assert conv["conversion"] == 0.1
    assert conv["transactions_without_footfall"] == 4
    assert conv["visitors_per_transaction"] == 10.0
    assert conv["average_basket"] == 10.0
    (day,) = conv["by_day"]
    assert (day["transactions"], day["transactions_without_footfall"]) == (7, 4)
    assert day["conversion"] == 0.1
    dead = {h["hour"]: h for h in conv["by_hour"]}["2026-06-01T13:00:00+00:00"]
    assert (dead["visitors"], dead["transactions_without_footfall"], dead["conversion"]) == (
        0,
        4,
        None,
    )
    assert "4 transactions in hours without footfall left out" in report_text(doc)


def test_dwell_quantiles_in_the_open_last_bin_are_lower_bounds(storage: Storage) -> None:
    # 85 visits of 10-30 s and 15 of more than an hour (the edge's last bin, 3600 s up to its
    # one-day cap, holds every longer stay).
    edges = [0, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 86400]
    hist = {"edges_s": edges, "counts": [0, 0, 85, 0, 0, 0, 0, 0, 0, 15]}
    zone = {"zone_id": "z1", "visits": 100, "occupancy_mean": 1.0, "occupancy_max": 3,
            "dwell_count": 100, "dwell_mean_s": 600.0, "dwell_hist": hist}  # fmt: skip
    storage.write_batch(received(summary(1, utc(2026, 6, 1, 10), zones=[zone])))
    doc = build_report(storage, "s1", date(2026, 6, 1), date(2026, 6, 1), now=utc(2026, 6, 2),
                       with_quality=False)  # fmt: skip
    z = doc["dwell"]["zones"]["cam/z1"]
    assert z["p90_s"] == 3600.0
    assert (z["median_s"], z["median_at_least"]) == (round(10 + 20 * 50 / 85, 1), False)
    assert z["p90_at_least"] is True
    assert "p90 >= 3600.0 s" in report_text(doc)


def test_the_open_bin_is_the_edge_agents_last_bin() -> None:
    from central.analytics.dwell import OPEN_BIN_UPPER_EDGE_S
    from edge_agent.aggregate import DWELL_EDGES_S

    assert DWELL_EDGES_S[-1] == OPEN_BIN_UPPER_EDGE_S


@pytest.mark.parametrize(
    ("bins", "q", "expected"),
    [
        # Half the stays are an hour or longer: the median is only known to be >= 3600 s.
        ([(0, 3600, 50), (3600, 86400, 50)], 0.9, (3600.0, True)),
        ([(0, 3600, 50), (3600, 86400, 50)], 0.5, (3600.0, False)),
        # Edges changed: an older histogram's open bin starts where a newer one has [3600,
        # 7200). The open stays may be above 7200 s, so the median read off the closed bin is
        # only a lower bound.
        ([(3600, 86400, 10), (3600, 7200, 90)], 0.5, (3600 + 3600 * 40 / 90, True)),
    ],
)
def test_histogram_quantile_in_the_open_last_bin(
    bins: list[tuple[float, float, float]], q: float, expected: tuple[float, bool]
) -> None:
    got = histogram_quantile(bins, q)
    assert got is not None
    assert (got.value_s, got.at_least) == (pytest.approx(expected[0]), expected[1])
