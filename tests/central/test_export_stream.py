"""Storage hands export its rows as they are read, a batch at a time, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from central.storage import Storage
from tests.central.factory import received, summary

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def test_tables_stream_from_the_cursor(storage: Storage) -> None:
    storage.write_batch(received(*[summary(i + 1, T0 + timedelta(minutes=i)) for i in range(30)]))
    cols, rows = storage.export_table("summaries")
    first = next(rows)
    assert first[cols.index("seq")] in range(1, 31)
    if storage.url.startswith("postgres"):
        # A server-side cursor: PostgreSQL sends the rows as they are fetched.
        assert storage._all("SELECT name FROM pg_cursors") == [("footfall_stream",)]  # type: ignore[attr-defined]
    rest = list(rows)
    assert sorted(r[cols.index("seq")] for r in [first, *rest]) == list(range(1, 31))


def test_rollups_are_read_a_window_at_a_time_without_loss(storage: Storage) -> None:
    # 20 days of one summary a day in two stores: three 7-day windows per store.
    storage.write_batch(
        received(
            *[summary(d + 1, T0 + timedelta(days=d), store=s, lines={"c/door": (d, 0)})
              for s in ("s1", "s2") for d in range(20)]
        )
    )  # fmt: skip
    cols, rows = storage.export_table("footfall_hourly")
    got = [(r[0], r[cols.index("in_count")]) for r in rows]
    assert got == [(s, d) for s in ("s1", "s2") for d in range(20)]
    _, rows = storage.export_table(
        "footfall_hourly", "s2", T0 + timedelta(days=5), T0 + timedelta(days=15)
    )
    assert [r[cols.index("in_count")] for r in rows] == list(range(5, 15))
