"""The storage interface, run against SQLite and PostgreSQL alike (the `storage` fixture)."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest

from central.storage import DeadLetter, PosRow, Received, Storage, open_storage
from central.storage import sql as sql_module
from central.storage.migrations import LATEST_VERSION, MIGRATIONS
from central.storage.sql import SqlStorage
from edge_agent import wire
from tests.central.factory import received, stock, summary

T0 = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)
DAY = timedelta(days=1)
H = timedelta(hours=1)


def test_schema_is_migrated_and_reopen_is_idempotent(storage: Storage) -> None:
    assert storage.schema_version() == LATEST_VERSION
    again = open_storage(storage.url)
    assert again.schema_version() == LATEST_VERSION
    again.close()


def test_duplicates_are_stored_once_and_counted(storage: Storage) -> None:
    a = summary(1, T0, lines={"cam/door": (5, 2)})
    b = summary(2, T0 + timedelta(minutes=1), lines={"cam/door": (1, 0)})
    r1 = storage.write_batch(received(a, a, b))
    assert r1.stored == {"summary": 2}
    assert r1.duplicates == 1
    r2 = storage.write_batch(received(a, b))
    assert r2.stored == {}
    assert r2.duplicates == 2
    assert storage.message_count("summary") == 2
    rows = storage.footfall_hours("s1", T0 - DAY, T0 + DAY)
    assert [(r.in_count, r.out_count) for r in rows] == [(6, 2)]
    assert storage.counters()["duplicates"] == 3
    assert storage.counters()["stored.summary"] == 2


def test_seq_gaps_are_reported_and_close_when_the_late_message_arrives(storage: Storage) -> None:
    msgs = [summary(s, T0 + timedelta(minutes=s)) for s in (1, 2, 5, 6, 9)]
    storage.write_batch(received(*msgs))
    gaps = storage.seq_gaps("s1")
    assert [(g.after_seq, g.before_seq, g.missing) for g in gaps] == [(2, 5, 2), (6, 9, 2)]
    storage.write_batch(received(summary(3, T0 + timedelta(minutes=3))))
    storage.write_batch(received(summary(4, T0 + timedelta(minutes=4))))
    assert [(g.after_seq, g.before_seq) for g in storage.seq_gaps("s1")] == [(6, 9)]
    assert storage.seq_gaps("other") == []
    assert storage.devices("s1")[0].last_seq == 9


def _stamped(seq: int, created: datetime, device: str = "d1", store: str = "s1") -> wire.Summary:
    s = summary(seq, created - timedelta(hours=1), store=store, device=device, minutes=60)
    return s.model_copy(update={"created_at": created})


def _gaps_by_full_window(msgs: list[wire.Summary], start: datetime, end: datetime) -> set[tuple]:
    """The definition, computed over every message: holes whose later message is in range."""
    out = set()
    streams: dict[tuple[str, str], list[wire.Summary]] = {}
    for m in msgs:
        streams.setdefault((m.store_id, m.device_id), []).append(m)
    for (store, device), ms in streams.items():
        ms.sort(key=lambda m: m.seq)
        for a, b in itertools.pairwise(ms):
            if b.seq > a.seq + 1 and start <= b.created_at < end:
                out.add((store, device, a.seq, b.seq, a.created_at, b.created_at))
    return out


def test_seq_gaps_in_a_range_read_only_its_span_yet_match_the_full_window(storage: Storage) -> None:
    start, end = T0 + 6 * H, T0 + 20 * H
    msgs = [
        _stamped(s, T0 + s * H)
        # 4 -> 7 straddles `start`; 11 -> 13 and 15 -> 17 are inside; 19 -> 23 ends after `end`
        for s in (1, 2, 3, 4, 7, 8, 9, 10, 11, 13, 14, 15, 17, 18, 19, 23, 24)
    ]
    # seq 16 was stamped by a clock hours off into the past (a device before NTP): it still
    # closes the 15 -> 17 hole, as it does for the window over the whole history.
    msgs.append(_stamped(16, T0 + 5 * H))
    # a second device, and a device whose only in-range message follows a gap across `start`
    msgs += [_stamped(s, T0 + s * H, device="d2") for s in (10, 12, 13)]
    msgs += [_stamped(1, T0, device="d3"), _stamped(5, T0 + 12 * H, device="d3")]
    msgs += [_stamped(s, T0 + s * H, device="d4") for s in range(1, 25)]  # nothing lost
    msgs.append(_stamped(3, T0 + 12 * H, store="other"))
    msgs.append(_stamped(1, T0 + 11 * H, store="other"))
    storage.write_batch(received(*msgs))

    def got(store: str | None, a: datetime | None, b: datetime | None) -> set[tuple]:
        return {
            (g.store_id, g.device_id, g.after_seq, g.before_seq, g.after_at, g.before_at)
            for g in storage.seq_gaps(store, a, b)
        }

    gaps = storage.seq_gaps("s1", start, end)
    assert [(g.device_id, g.after_seq, g.before_seq, g.missing) for g in gaps] == [
        ("d1", 4, 7, 2),
        ("d1", 11, 13, 1),
        ("d2", 10, 12, 1),
        ("d3", 1, 5, 3),
    ]
    # The messages before the holes across `start` are outside the range: still found, with
    # their own times.
    assert gaps[0].after_at == T0 + 4 * H < start <= gaps[0].before_at == T0 + 7 * H
    assert gaps[3].after_at == T0 < start
    s1 = [m for m in msgs if m.store_id == "s1"]
    for a, b in [(start, end), (start - 2 * H, end), (T0, T0 + 30 * H), (start, T0 + 24 * H)]:
        assert got("s1", a, b) == _gaps_by_full_window(s1, a, b)
    everything = _gaps_by_full_window(msgs, T0 - DAY, T0 + DAY)
    assert got(None, None, None) == everything
    assert got(None, start, None) == _gaps_by_full_window(msgs, start, T0 + DAY)
    assert got("other", start, end) == {("other", "d1", 1, 3, T0 + 11 * H, T0 + 12 * H)}
    assert storage.seq_gaps("s1", T0 + 30 * H, T0 + 40 * H) == []


def _message_indexes(st: Storage) -> set[str]:
    assert isinstance(st, SqlStorage)
    if st.dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'"
    else:
        sql = "SELECT indexname FROM pg_indexes WHERE tablename = 'messages'"
    return {str(r[0]) for r in st._all(sql)}


def test_a_version_1_database_gets_the_covering_index(
    storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_module, "MIGRATIONS", MIGRATIONS[:1])
    old = open_storage(storage_url)
    assert old.schema_version() == 1
    assert "messages_device_seq" in _message_indexes(old)
    old.write_batch(received(*[_stamped(s, T0 + s * H) for s in (1, 2, 6)]))
    old.close()
    monkeypatch.setattr(sql_module, "MIGRATIONS", MIGRATIONS)
    new = open_storage(storage_url)
    try:
        assert new.schema_version() == LATEST_VERSION == 2
        indexes = _message_indexes(new)
        assert "messages_device_seq_ts" in indexes
        assert "messages_device_seq" not in indexes
        (gap,) = new.seq_gaps("s1", T0 + 3 * H, T0 + 7 * H)
        assert (gap.after_seq, gap.before_seq) == (2, 6)
    finally:
        new.close()


def test_rollup_uses_the_local_hour_of_the_store(storage: Storage) -> None:
    # Europe/London starts summer time on 2026-03-29 at 01:00 UTC: 00:30 UTC is 00:30 GMT,
    # 01:30 UTC is 02:30 BST. Asia/Kolkata (+05:30) keeps local hours at :30 UTC.
    storage.write_batch(
        received(
            summary(1, T0 + timedelta(hours=1), tz="Europe/London", lines={"c/l": (1, 0)}),
            summary(2, T0 + timedelta(hours=2), tz="Europe/London", lines={"c/l": (2, 0)}),
            summary(1, T0, store="s2", tz="Asia/Kolkata", lines={"c/l": (4, 0)}),
            summary(
                2, T0 + timedelta(minutes=59), store="s2", tz="Asia/Kolkata", lines={"c/l": (8, 0)}
            ),
        )
    )
    london = storage.footfall_hours("s1", T0 - DAY, T0 + DAY)
    assert [(r.hour_start, r.in_count) for r in london] == [
        (datetime(2026, 3, 29, 0, 0, tzinfo=UTC), 1),
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), 2),
    ]
    kolkata = storage.footfall_hours("s2", T0 - DAY, T0 + DAY)
    assert [(r.hour_start, r.in_count) for r in kolkata] == [
        (datetime(2026, 3, 28, 23, 30, tzinfo=UTC), 12)
    ]
    assert {s.store_id: s.timezone for s in storage.stores()} == {
        "s1": "Europe/London",
        "s2": "Asia/Kolkata",
    }


def test_zone_dwell_and_transition_rollups_add_up(storage: Storage) -> None:
    zone = {
        "zone_id": "z1",
        "visits": 3,
        "occupancy_mean": 1.5,
        "occupancy_max": 3,
        "dwell_count": 2,
        "dwell_mean_s": 20.0,
        "dwell_hist": {"edges_s": [0, 10, 30, 60], "counts": [0, 2, 0]},
    }
    storage.write_batch(
        received(
            summary(1, T0, zones=[zone], transitions=[("z1", "z2", 2)]),
            summary(
                2,
                T0 + timedelta(minutes=1),
                zones=[{**zone, "occupancy_max": 5}],
                transitions=[("z1", "z2", 1)],
            ),
        )
    )
    (z,) = storage.zone_hours("s1", T0 - DAY, T0 + DAY)
    assert (z.visits, z.dwell_count, z.dwell_sum_s, z.occupancy_max) == (6, 4, 80.0, 5)
    assert z.occupancy_person_s / z.covered_s == 1.5
    (b,) = storage.dwell_bins("s1", T0 - DAY, T0 + DAY)
    assert (b.lo_s, b.hi_s, b.count) == (10.0, 30.0, 4)
    (t,) = storage.transition_hours("s1", T0 - DAY, T0 + DAY)
    assert (t.from_zone, t.to_zone, t.count) == ("z1", "z2", 3)
    full = list(storage.summary_messages("s1", T0 - DAY, T0 + DAY))
    assert [s.seq for s in full] == [1, 2]
    assert full[0].zones[0].dwell_hist is not None


def test_status_overwrites_and_devices_view(storage: Storage) -> None:
    online = wire.Status(store_id="s1", device_id="d1", seq=1, state="online", version="1.0")
    offline = wire.Status(
        store_id="s1",
        device_id="d1",
        seq=1,
        state="offline",
        created_at=online.created_at - timedelta(minutes=5),
    )
    storage.write_batch(received(online))
    assert storage.devices()[0].state == "online"
    storage.write_batch(received(offline))  # the will can be older than the last online
    (dev,) = storage.devices("s1")
    assert dev.state == "offline"
    assert dev.last_seq is None  # status is not part of the seq stream
    assert storage.message_count() == 0


def test_stock_and_pos_rows_round_trip(storage: Storage) -> None:
    gtin = "09506000134352"
    storage.write_batch(
        received(
            stock(1, T0, "stock_out", gtin=gtin, count=0),
            stock(2, T0 + timedelta(hours=1), "stock_restored", gtin=gtin, count=4),
            wire.PosTransaction(
                store_id="s1",
                device_id="till1",
                seq=1,
                transaction_id="t1",
                ts=T0,
                amount=12.5,
                currency="EUR",
            ),
        )
    )
    events = storage.stock_events("s1")
    assert [(e.event_type, e.count) for e in events] == [("stock_out", 0), ("stock_restored", 4)]
    assert len(storage.stock_events("s1", T0 + timedelta(minutes=1), T0 + DAY)) == 1
    new, dup = storage.add_pos_transactions(
        [PosRow("s1", "t1", T0, 12.5, None, "csv"), PosRow("s1", "t2", T0, 3.0, None, "csv")]
    )
    assert (new, dup) == (1, 1)
    pos = storage.pos_transactions("s1", T0 - DAY, T0 + DAY)
    assert [(p.transaction_id, p.amount, p.source) for p in pos] == [
        ("t1", 12.5, "mqtt"),
        ("t2", 3.0, "csv"),
    ]


def test_dead_letters_keep_bytes_and_prune_oldest(storage: Storage) -> None:
    now = datetime.now(UTC)
    letters = [DeadLetter("footfall/v1/x", f"r{i}", bytes([i, 255]), 2, now) for i in range(5)]
    result = storage.write_batch([], letters)
    assert result.dead_letters == 5
    assert storage.prune_dead_letters(keep=2) == 3
    kept = storage.dead_letters()
    assert [d.reason for d in kept] == ["r4", "r3"]
    assert kept[0].payload == bytes([4, 255])
    assert storage.counters()["dead_letters"] == 5


def test_two_writers_on_one_database_store_each_message_once(storage_url: str) -> None:
    a, b = open_storage(storage_url), open_storage(storage_url)
    msgs = [summary(i, T0 + timedelta(minutes=i), lines={"c/l": (1, 1)}) for i in range(1, 201)]
    now = time.time()
    ra = a.write_batch([Received(m, now) for m in msgs[:150]])
    rb = b.write_batch([Received(m, now) for m in msgs[50:]])
    assert ra.stored_total + rb.stored_total == 200
    assert ra.duplicates + rb.duplicates == 100
    total = sum(r.in_count for r in a.footfall_hours("s1", T0 - DAY, T0 + DAY))
    assert total == 200
    a.close()
    b.close()


def test_instances_opening_a_fresh_database_together_migrate_once(storage_url: str) -> None:
    import threading

    opened: list[Storage] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_one() -> None:
        barrier.wait()
        try:
            opened.append(open_storage(storage_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert [s.schema_version() for s in opened] == [LATEST_VERSION] * 4
    for s in opened:
        s.close()
