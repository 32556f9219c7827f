"""The device-hour write path against a reference model of its documented semantics: each
batch's summaries of a device-hour are summed from zero in arrival order, then merged into
the stored document. The writer's shortcuts (adding a lone summary straight into the stored
document, reusing the documents it wrote last) must store exactly the same text."""

from __future__ import annotations

import itertools
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.storage import DeadLetter, PosRow, Received, Storage, open_storage
from central.storage.rollup import HourData, local_hour_ts, rollup
from central.storage.sqlwrite import SqlWriter
from edge_agent import wire
from tests.central.factory import summary

T0 = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # Europe/London goes to summer time at 01:00
EDGES = ([0.0, 10.0, 30.0, 60.0], [0.0, 5.0, 600.0])


class RefHour:
    """The reference: zeroed accumulators, `+=` per figure, merge by key."""

    def __init__(self) -> None:
        self.summaries = 0
        self.lines: dict[str, list[Any]] = {}
        self.zones: dict[str, list[Any]] = {}
        self.bins: dict[str, dict[str, int]] = {}
        self.transitions: dict[str, int] = {}

    def add(self, s: wire.Summary) -> None:
        self.summaries += 1
        duration_s = (s.interval_end - s.interval_start).total_seconds()
        for lc in s.lines:
            acc = self.lines.setdefault(f"{lc.camera_id}/{lc.line_id}", [0, 0])
            acc[0] += lc.in_count
            acc[1] += lc.out_count
        for z in s.zones:
            key = f"{z.camera_id}/{z.zone_id}"
            za = self.zones.setdefault(key, [0, 0, 0.0, 0.0, 0.0, 0])
            za[0] += z.visits
            za[1] += z.dwell_count
            if z.dwell_mean_s is not None:
                za[2] += z.dwell_mean_s * z.dwell_count
            za[3] += z.occupancy_mean * duration_s
            za[4] += duration_s
            za[5] = max(za[5], z.occupancy_max)
            if z.dwell_hist is not None:
                edges = z.dwell_hist.edges_s
                zb = self.bins.setdefault(key, {})
                for a, b, n in zip(edges, edges[1:], z.dwell_hist.counts, strict=False):
                    if n:
                        zb[f"{a!r}|{b!r}"] = zb.get(f"{a!r}|{b!r}", 0) + n
        for t in s.transitions:
            k = f"{t.camera_id}|{t.from_zone}|{t.to_zone}"
            self.transitions[k] = self.transitions.get(k, 0) + t.count

    def merge(self, other: RefHour) -> None:
        self.summaries += other.summaries
        for k, (i, o) in other.lines.items():
            acc = self.lines.setdefault(k, [0, 0])
            acc[0] += i
            acc[1] += o
        for k, z in other.zones.items():
            za = self.zones.setdefault(k, [0, 0, 0.0, 0.0, 0.0, 0])
            for j in range(5):
                za[j] += z[j]
            za[5] = max(za[5], z[5])
        for k, bins in other.bins.items():
            zb = self.bins.setdefault(k, {})
            for b, n in bins.items():
                zb[b] = zb.get(b, 0) + n
        for k, n in other.transitions.items():
            self.transitions[k] = self.transitions.get(k, 0) + n

    def text(self) -> str:
        doc = {"l": self.lines, "z": self.zones, "b": self.bins, "t": self.transitions}
        return json.dumps(doc, separators=(",", ":"))


def ref_key(s: wire.Summary) -> tuple[str, int, str]:
    return (s.store_id, local_hour_ts(s.interval_start, s.timezone), s.device_id)


def ref_write(db: dict[tuple[str, int, str], RefHour], batch: list[wire.Summary]) -> None:
    deltas: dict[tuple[str, int, str], RefHour] = {}
    for s in batch:
        deltas.setdefault(ref_key(s), RefHour()).add(s)
    for key, delta in deltas.items():
        if key in db:
            db[key].merge(delta)
        else:
            db[key] = delta


floats = st.floats(min_value=0, max_value=1e4, allow_nan=False, allow_infinity=False)
zone_st = st.builds(
    lambda zid, visits, mean, omax, count, dmean, edges, counts: {
        "zone_id": zid,
        "visits": visits,
        "occupancy_mean": mean,
        "occupancy_max": omax,
        "dwell_count": count,
        "dwell_mean_s": dmean,
        "dwell_hist": None
        if edges is None
        else {"edges_s": edges, "counts": (counts * 4)[: len(edges) - 1]},
    },
    st.sampled_from(["z1", "z2", "z3"]),
    st.integers(0, 50),
    floats,
    st.integers(0, 20),
    st.integers(0, 50),
    st.none() | floats,
    st.none() | st.sampled_from(EDGES),
    st.lists(st.integers(0, 3), min_size=1, max_size=3),
)
summary_st = st.builds(
    lambda dev, minute, minutes, tz, lines, zones, trans: (
        dev,
        minute,
        minutes,
        tz,
        lines,
        zones,
        trans,
    ),
    st.sampled_from(["d1", "d2"]),
    st.integers(0, 150),
    st.integers(1, 3),
    st.sampled_from(["UTC", "Europe/London", "Asia/Kolkata"]),
    st.dictionaries(
        st.sampled_from(["a/l1", "b/l1", "a/l2"]),
        st.tuples(st.integers(0, 9), st.integers(0, 9)),
        max_size=2,
    ),
    st.lists(zone_st, max_size=3),
    st.lists(
        st.tuples(st.sampled_from(["z1", "z2"]), st.sampled_from(["z2", "z3"]), st.integers(1, 4)),
        max_size=2,
    ),
)
_examples = itertools.count()


def build(store: str, seq: int, spec: tuple[Any, ...]) -> wire.Summary:
    dev, minute, minutes, tz, lines, zones, trans = spec
    start = T0 + timedelta(minutes=minute)
    return summary(seq, start, store=store, device=dev, minutes=minutes, tz=tz, lines=lines,
                   zones=zones, transitions=trans)  # fmt: skip


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(st.lists(summary_st, min_size=1, max_size=8), min_size=1, max_size=5))
def test_stored_documents_equal_the_reference_merge(
    storage: Storage, batches: list[list[tuple[Any, ...]]]
) -> None:
    # One storage for all examples (a PostgreSQL database each would be slow): each example
    # writes its own store, so the writer's cached documents carry over between examples.
    store = f"s{next(_examples)}"
    seq = itertools.count(1)
    ref: dict[tuple[str, int, str], RefHour] = {}
    for specs in batches:
        batch = [build(store, next(seq), spec) for spec in specs]
        ref_write(ref, batch)
        storage.write_batch([Received(s, 0.0) for s in batch])
    assert isinstance(storage, SqlWriter)
    rows = storage._all(  # type: ignore[attr-defined]
        "SELECT hour_ts, device_id, summaries, data FROM device_hourly WHERE store_id = ?",
        (store,),
    )
    got = {(store, int(h), d): (int(n), text) for h, d, n, text in rows}
    assert got == {k: (r.summaries, r.text()) for k, r in ref.items()}


@given(specs=st.lists(summary_st, max_size=12))
def test_rollup_of_a_batch_equals_the_reference(specs: list[tuple[Any, ...]]) -> None:
    batch = [build("s1", i + 1, spec) for i, spec in enumerate(specs)]
    ref: dict[tuple[str, int, str], RefHour] = {}
    ref_write(ref, batch)
    got = rollup(batch)
    assert {k: (hd.summaries, hd.to_json()) for k, hd in got.items()} == {
        k: (r.summaries, r.text()) for k, r in ref.items()
    }
    for hd in got.values():  # and the document reads back as written
        again = HourData.from_json(hd.summaries, hd.to_json())
        assert again.to_json() == hd.to_json()


def _line_total(st_: Storage) -> tuple[int, int]:
    rows = st_.footfall_hours("s1", T0 - timedelta(days=1), T0 + timedelta(days=1))
    return sum(r.in_count for r in rows), sum(1 for _ in rows)


def test_a_row_another_writer_changed_is_read_again(storage_url: str) -> None:
    a, b = open_storage(storage_url), open_storage(storage_url)
    seq = itertools.count(1)

    def one(minute: int) -> list[Received]:
        s = summary(next(seq), T0 + timedelta(minutes=minute), lines={"c/l": (1, 0)})
        return [Received(s, 0.0)]

    for minute in range(0, 40, 4):
        a.write_batch(one(minute))  # a's cached document is stale after b's write ...
        b.write_batch(one(minute + 1))
        a.write_batch(one(minute + 2))  # ... and current again after its own
        a.write_batch(one(minute + 3))
    assert _line_total(a) == (40, 1)
    # A writer that added only empty summaries leaves the text as it was, not the count.
    empty = summary(next(seq), T0 + timedelta(minutes=50))
    b.write_batch([Received(empty, 0.0)])
    a.write_batch(one(51))
    rows = a._all("SELECT summaries FROM device_hourly")  # type: ignore[attr-defined]
    assert [int(r[0]) for r in rows] == [42]
    assert _line_total(a) == (41, 1)
    a.close()
    b.close()


def test_a_failed_batch_leaves_no_cached_document_behind(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    def one(seq: int) -> list[Received]:
        s = summary(seq, T0 + timedelta(minutes=seq), lines={"c/l": (1, 0)})
        return [Received(s, 0.0)]

    storage.write_batch(one(1))
    storage.write_batch(one(2))
    assert isinstance(storage, SqlWriter)
    original = SqlWriter._add_counters

    def fail(self: SqlWriter, counts: dict[str, int]) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(SqlWriter, "_add_counters", fail)
    with pytest.raises(RuntimeError):
        storage.write_batch(one(3))  # merged into the cached document, then rolled back
    monkeypatch.setattr(SqlWriter, "_add_counters", original)
    storage.write_batch(one(3))
    storage.write_batch(one(4))
    assert _line_total(storage) == (4, 1)


@pytest.mark.postgres
def test_concurrent_writers_on_the_same_device_hours_sum_exactly(pg_cluster: Any) -> None:
    url = pg_cluster.new_database()
    writers = [open_storage(url) for _ in range(3)]
    devices = [f"d{i}" for i in range(20)]
    per_writer_batches = 15
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(writers))

    def run(w: int) -> None:
        try:
            for b in range(per_writer_batches):
                barrier.wait(60)  # each round's transactions overlap
                seq = (w * per_writer_batches + b) + 1
                # Every writer touches every device-hour in each batch, in its own order.
                order = devices if w % 2 == 0 else devices[::-1]
                msgs = [
                    summary(seq, T0 + timedelta(minutes=seq % 60), device=d,
                            lines={"c/l": (1, 2)}, transitions=[("z1", "z2", 1)])
                    for d in order
                ]  # fmt: skip
                writers[w].write_batch([Received(m, time.time()) for m in msgs])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(len(writers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    n = len(writers) * per_writer_batches
    rows = writers[0].footfall_hours("s1", T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert sorted((r.device_id, r.in_count, r.out_count) for r in rows) == [
        (d, n, 2 * n) for d in sorted(devices)
    ]
    trans = writers[0].transition_hours("s1", T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert sum(t.count for t in trans) == n * len(devices)
    hours = writers[0]._all(  # type: ignore[attr-defined]
        "SELECT device_id, summaries FROM device_hourly ORDER BY device_id"
    )
    assert [(d, int(k)) for d, k in hours] == [(d, n) for d in sorted(devices)]
    for w in writers:
        w.close()


def test_column_values_round_trip_whatever_their_text_or_number_mix(storage: Storage) -> None:
    # PostgreSQL receives each column as one array: text that looks like array syntax or NULL
    # stays text, and a column mixing ints and floats is still written.
    ids = ["NULL", '{a,"b"}', "x\\y", "é'\u2028"]
    rows = [
        PosRow("s1", tid, T0, amount, None, "csv")
        for tid, amount in zip(ids, [3, 2.5, 0, 1e9], strict=True)
    ]
    assert storage.add_pos_transactions(rows) == (4, 0)
    got = storage.pos_transactions("s1", T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert sorted((p.transaction_id, p.amount, p.currency) for p in got) == sorted(
        (tid, float(a), None) for tid, a in zip(ids, [3, 2.5, 0, 1e9], strict=True)
    )
    letters = [DeadLetter("NULL", '{"x": [1, "}"]}', b"\x00\\", 2, T0)]
    storage.write_batch([], letters)
    (d,) = storage.dead_letters()
    assert (d.topic, d.reason, d.payload) == ("NULL", '{"x": [1, "}"]}', b"\x00\\")


@pytest.mark.postgres
@pytest.mark.parametrize("deleted_again", [False, True])
def test_a_device_hour_another_writer_creates_after_the_read_is_merged_into(
    pg_cluster: Any, monkeypatch: pytest.MonkeyPatch, deleted_again: bool
) -> None:
    import psycopg

    url = pg_cluster.new_database()
    st_ = open_storage(url)
    other = psycopg.connect(url, autocommit=True)
    s = summary(1, T0, lines={"c/l": (1, 0)}, transitions=[("z1", "z2", 1)])
    theirs = HourData(1, lines={"c/l": [5, 0]}, transitions={"cam|z1|z2": 2})
    assert isinstance(st_, SqlWriter)
    real_select = st_._select_hours
    reads: list[int] = []

    def read_then_race(keys: Any) -> list[tuple[Any, ...]]:
        if reads and deleted_again:  # ... and is gone again before the second read
            other.execute("DELETE FROM device_hourly")
        rows = real_select(keys)
        if not reads:  # the row appears between this writer's read and its insert ...
            other.execute(
                "INSERT INTO device_hourly VALUES (%s, %s, %s, %s, %s)",
                ("s1", local_hour_ts(T0, "UTC"), "d1", 1, theirs.to_json()),
            )
        reads.append(len(rows))
        return rows

    monkeypatch.setattr(st_, "_select_hours", read_then_race)
    st_.write_batch([Received(s, 0.0)])
    assert reads == [0, 0 if deleted_again else 1]
    (row,) = st_._all("SELECT summaries, data FROM device_hourly")  # type: ignore[attr-defined]
    merged = HourData.from_json(int(row[0]), row[1])
    expected = (1, {"c/l": [1, 0]}, {"cam|z1|z2": 1}) if deleted_again else (
        2, {"c/l": [6, 0]}, {"cam|z1|z2": 3})  # fmt: skip
    assert (merged.summaries, merged.lines, merged.transitions) == expected
    other.close()
    st_.close()


def test_the_cached_documents_stay_within_their_bound(storage: Storage) -> None:
    assert isinstance(storage, SqlWriter)
    storage.max_cached_docs = 3
    seq = itertools.count(1)
    for minute in range(0, 60 * 6, 30):  # 6 device-hours, two summaries each
        s = summary(next(seq), T0 + timedelta(minutes=minute), lines={"c/l": (1, 0)})
        storage.write_batch([Received(s, 0.0)])
        assert storage._docs is not None and len(storage._docs) <= 3
    assert _line_total(storage) == (12, 6)
