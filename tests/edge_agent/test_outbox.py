"""The SQLite outbox: seq ownership, delivery marking, the cap policy and crash safety."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import string
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_agent import wire
from edge_agent.outbox import Outbox, stored_bytes

REPO = Path(__file__).resolve().parents[2]
ALNUM = string.ascii_letters + string.digits


def summary(n: int = 0) -> wire.Summary:
    return wire.Summary(
        store_id="s1",
        device_id="d1",
        seq=1,
        interval_start=datetime(2026, 1, 1, 10, n % 60, tzinfo=UTC),
        interval_end=datetime(2026, 1, 1, 10, n % 60, 59, tzinfo=UTC),
        timezone="UTC",
        lines=[
            wire.LineCount.model_validate({"camera_id": "c", "line_id": "l", "in": n, "out": 0})
        ],
    )


def stock(n: int = 0) -> wire.StockEventMsg:
    return wire.StockEventMsg(
        store_id="s1",
        device_id="d1",
        seq=1,
        event_type="stock_low",
        ts=datetime(2026, 1, 1, 10, 0, n % 60, tzinfo=UTC),
        zone="shelf",
        gtin="80614141123458",
        count=1,
        threshold=2,
    )


def test_seq_is_allocated_in_the_storing_transaction_and_survives_reopen(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    with Outbox(db) as ob:
        stored = ob.append([summary(1), stock(2), summary(3)])
        assert [m.seq for m in stored] == [1, 2, 3]
        rows = ob.pending(10)
        assert [r.seq for r in rows] == [1, 2, 3]
        # The stored payload is the stamped message, decodable and agreeing with its topic.
        for row, msg in zip(rows, stored, strict=True):
            assert wire.decode(row.payload, row.topic) == msg
        assert ob.mark_sent([rows[0].id, rows[1].id]) == 2
        assert [r.seq for r in ob.pending(10)] == [3]
    with Outbox(db) as ob:
        assert ob.last_seq == 3
        assert ob.append([summary(4)])[0].seq == 4
        assert ob.mark_sent([r.id for r in ob.pending(10)]) == 2
        assert ob.depth == 0
    # Emptying the table does not reset seq: it lives in meta, not in the rows.
    with Outbox(db) as ob:
        assert ob.append([stock(5)])[0].seq == 5
        assert ob.delivered_total() == 4


def test_pending_skips_in_flight_ids_and_mark_sent_is_idempotent(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as ob:
        ob.append([summary(i) for i in range(5)])
        first = ob.pending(2)
        nxt = ob.pending(10, exclude=[r.id for r in first])
        assert [r.seq for r in nxt] == [3, 4, 5]
        assert ob.mark_sent([first[0].id]) == 1
        assert ob.mark_sent([first[0].id]) == 0  # a second PUBACK for a resend changes nothing
        assert ob.depth == 4


def test_count_pending_counts_undelivered_rows_from_a_seq_on(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as ob:
        ob.append([summary(i) for i in range(3)])  # seq 1-3: an earlier run's backlog
        mine = ob.append([summary(i) for i in range(3, 8)])  # seq 4-8
        assert ob.count_pending(min_seq=mine[0].seq) == 5
        ob.mark_sent([r.id for r in ob.pending(10) if r.seq in (2, 5, 6)])
        assert ob.count_pending(min_seq=mine[0].seq) == 3
        assert ob.count_pending(min_seq=1) == ob.depth == 5


def test_a_disk_full_append_raises_the_real_error_and_keeps_the_counters(tmp_path: Path) -> None:
    rng = random.Random(3)
    # High-entropy line ids: the stored payload needs a page of its own (an overflow page).
    big = summary(2).model_copy(
        update={
            "lines": [
                wire.LineCount.model_validate(
                    {
                        "camera_id": "c",
                        "line_id": "".join(rng.choices(ALNUM, k=40)),
                        "in": 1,
                        "out": 0,
                    }
                )
                for _ in range(150)
            ]
        }
    )
    with Outbox(tmp_path / "o.db") as ob:
        ob.append([summary(1)])
        before = ob.stats()
        # The disk is full: SQLite may not grow the file (per-connection limit, so set on the
        # outbox's own connection). SQLite rolls such a transaction back by itself.
        with ob._lock:
            pages = ob._db.execute("PRAGMA page_count").fetchone()[0]
            ob._db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(sqlite3.OperationalError, match="full"):
            ob.append([big], {"open": "B"})
        after = ob.stats()
        assert (after.depth, after.bytes, after.last_seq) == (1, before.bytes, 1)
        assert ob.get_state("open") is None
        with ob._lock:
            ob._db.execute("PRAGMA max_page_count = 1073741823")  # space was freed
        assert ob.append([big], {"open": "B"})[0].seq == 2
        assert ob.depth == 2 and ob.get_state("open") == "B"


def test_state_is_written_in_the_same_transaction_as_messages(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as ob:
        ob.append([summary()], {"open": "A"})
        assert ob.get_state("open") == "A"
        ob.set_state("open", None)
        assert ob.get_state("open") is None


def test_cap_drops_oldest_summaries_before_any_stock_event(tmp_path: Path) -> None:
    size_summary = stored_bytes(summary(10))
    cap = size_summary * 10
    with Outbox(tmp_path / "o.db", max_bytes=cap) as ob:
        ob.append([stock(1), stock(2)])
        ob.append([summary(i) for i in range(10, 30)])
        kinds = [r.kind for r in ob.pending(1000)]
        assert kinds[:2] == ["stock", "stock"], "stock events are kept while summaries exist"
        seqs = [r.seq for r in ob.pending(1000)]
        # The survivors are the newest summaries: the oldest went first.
        assert seqs[2:] == sorted(seqs[2:]) and seqs[-1] == 22
        st = ob.stats()
        assert st.bytes <= cap
        assert st.dropped.get("cap_summary", 0) == 22 - len(seqs) > 0
        assert "cap_stock" not in st.dropped
        # Only stock left to drop: now the oldest stock events go.
        ob.mark_sent([r.id for r in ob.pending(1000) if r.kind == "summary"])
        ob.append([stock(i) for i in range(3, 40)])
        st = ob.stats()
        assert st.dropped.get("cap_stock", 0) > 0 and st.bytes <= cap
        assert ob.pending(1)[0].seq > 1
    # Drop counters persist across a restart (they are reported in health).
    with Outbox(tmp_path / "o.db", max_bytes=cap) as ob:
        assert ob.stats().dropped == st.dropped


def test_age_cap_drops_stale_messages_and_counts_them(tmp_path: Path) -> None:
    # Both clocks advance together, as on a device whose wall clock is right.
    wall, mono = [1_000_000.0], [50.0]

    def run(s: float) -> None:
        wall[0] += s
        mono[0] += s

    with Outbox(
        tmp_path / "o.db", max_age_s=3600, clock=lambda: wall[0], monotonic=lambda: mono[0]
    ) as ob:
        ob.append([summary(1), stock(1)])
        run(1800)
        ob.append([summary(2)])
        assert ob.stats().oldest_age_s == 1800
        run(1801)
        assert ob.prune_age() == 2
        st = ob.stats()
        assert st.depth == 1 and st.dropped == {"age_summary": 1, "age_stock": 1}


def test_a_wall_clock_step_ages_nothing_only_run_time_does(tmp_path: Path) -> None:
    # A Pi boots with the last saved time; NTP then steps the clock 40 days forward.
    wall, mono = [1_700_000_000.0], [12.0]
    ob = Outbox(
        tmp_path / "o.db", max_age_s=30 * 86400, clock=lambda: wall[0], monotonic=lambda: mono[0]
    )
    ob.append([summary(1), summary(2), stock(3)])
    wall[0] += 40 * 86400
    mono[0] += 5.0
    assert ob.prune_age() == 0
    st = ob.stats()
    assert st.depth == 3 and st.dropped == {}
    assert st.oldest_age_s == pytest.approx(5.0), "the status reports run-time age too"
    # The clock can also step back: nothing is dropped, nothing looks older.
    wall[0] -= 80 * 86400
    assert ob.prune_age() == 0 and ob.stats().oldest_age_s == pytest.approx(5.0)
    # Rows that really waited 30 days of run time go.
    mono[0] += 30 * 86400
    ob.append([summary(4)])
    assert ob.prune_age() == 3
    assert [r.seq for r in ob.pending(10)] == [4]
    assert ob.stats().dropped == {"age_summary": 2, "age_stock": 1}
    ob.close()


def test_run_time_adds_up_over_restarts(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    day = 86400.0
    wall = [1_700_000_000.0]
    # time.monotonic() restarts near zero at every boot; the run time carries on.
    mono = [100.0]
    ob = Outbox(db, max_age_s=30 * day, clock=lambda: wall[0], monotonic=lambda: mono[0])
    ob.append([summary(1)])
    mono[0] += 20 * day
    ob.close()  # saves the run time since the last commit
    mono[0] = 3.0  # reboot
    wall[0] -= 365 * day  # with a clock a year behind
    ob = Outbox(db, max_age_s=30 * day, clock=lambda: wall[0], monotonic=lambda: mono[0])
    ob.append([summary(2)])
    mono[0] += 9 * day
    assert ob.prune_age() == 0
    assert ob.stats().oldest_age_s == pytest.approx(29 * day)
    mono[0] += 1 * day + 1
    assert ob.prune_age() == 1, "20 + 10 days of run time over two boots"
    assert [r.seq for r in ob.pending(10)] == [2]
    ob.close()


V1_SCHEMA = """
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER NOT NULL UNIQUE,
    msg_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, topic TEXT NOT NULL,
    payload BLOB NOT NULL, created_at REAL NOT NULL);
CREATE INDEX messages_kind ON messages(kind, id);
CREATE INDEX messages_created ON messages(created_at);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
PRAGMA user_version = 1;
"""


def test_a_version_1_outbox_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    day = 86400.0
    # Rows as the previous release stored them, written under a stale clock.
    with Outbox(tmp_path / "src.db") as src:
        src.append([summary(1), stock(2)])
        old_rows = src._db.execute(
            "SELECT seq, msg_id, kind, topic, payload, created_at FROM messages"
        ).fetchall()
    v1 = sqlite3.connect(db)
    v1.executescript(V1_SCHEMA)
    v1.executemany(
        "INSERT INTO messages(seq, msg_id, kind, topic, payload, created_at) "
        "VALUES (?, ?, ?, ?, ?, 1000.0)",
        [r[:5] for r in old_rows],
    )
    v1.execute("INSERT INTO meta VALUES ('next_seq', 3), ('dropped_cap_summary', 7)")
    v1.commit()
    v1.close()
    mono = [0.0]
    ob = Outbox(db, max_age_s=30 * day, monotonic=lambda: mono[0])  # real wall clock: ~55 years on
    assert ob._db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert ob.depth == 2 and ob.last_seq == 2
    assert ob.prune_age() == 0, "an old row's wall-clock age is not trusted"
    assert [r.kind for r in ob.pending(10)] == ["summary", "stock"]
    assert ob.append([summary(3)])[0].seq == 3
    assert ob.stats().dropped == {"cap_summary": 7}
    mono[0] += 30 * day + 1
    assert ob.prune_age() == 3, "migrated rows age by run time from the migration on"
    ob.close()
    ob = Outbox(db)  # reopening a version 2 file changes nothing
    assert ob.depth == 0 and ob.last_seq == 3
    ob.close()


WRITER = r"""
import sys
from datetime import UTC, datetime
from edge_agent import wire
from edge_agent.outbox import Outbox
ob = Outbox(sys.argv[1])
i = 0
while True:
    batch = [wire.Summary(store_id="s1", device_id="d1", seq=1,
                          interval_start=datetime(2026, 1, 1, tzinfo=UTC),
                          interval_end=datetime(2026, 1, 1, 0, 1, tzinfo=UTC), timezone="UTC")
             for _ in range(1 + i % 3)]
    stored = ob.append(batch, {"last": str(i)})
    # Printed only after append() returned, i.e. after COMMIT.
    print(" ".join(f"{m.seq}:{m.msg_id}" for m in stored), flush=True)
    if i % 7 == 0:
        rows = ob.pending(2)
        # Announced before the delete commits, so the test knows which rows may be gone.
        print("sent " + " ".join(str(r.seq) for r in rows), flush=True)
        ob.mark_sent([r.id for r in rows])
    i += 1
"""


def test_kill_9_mid_append_loses_nothing_committed(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    committed: dict[int, str] = {}
    sent: set[int] = set()
    for round_ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db)],
            stdout=subprocess.PIPE,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert proc.stdout is not None
        # Killed after a number of commits, not after a time: a slow start under load must
        # not make the writer look stuck. The number varies the point of the kill.
        head = [proc.stdout.readline() for _ in range(20 + 15 * round_)]
        proc.send_signal(signal.SIGKILL)
        out = b"".join(head).decode() + proc.stdout.read().decode()
        proc.wait()
        lines = out.splitlines()
        assert len(lines) > 5, "the writer made progress before the kill"
        for line in lines[:-1] if not out.endswith("\n") else lines:
            if line.startswith("sent"):
                sent.update(int(s) for s in line.split()[1:])
            else:
                for item in line.split():
                    seq_text, msg_id = item.split(":")
                    committed[int(seq_text)] = msg_id
        # Reopening after the crash works and every committed, unsent message is there.
        with Outbox(db) as ob:
            rows = {r.seq: r.msg_id for r in ob.pending(1_000_000)}
            for seq, msg_id in committed.items():
                if seq not in sent:
                    assert rows.get(seq) == msg_id, f"committed seq {seq} lost"
            assert ob.last_seq >= max(committed)
        # Seq never went backwards or repeated across crashes: every seq up to the last one
        # allocated is either still stored or was delivered.
        with Outbox(db) as ob:
            stored = {r.seq for r in ob.pending(1_000_000)}
            assert stored | sent >= set(range(1, ob.last_seq + 1))
            assert max(stored | sent) == ob.last_seq
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


def test_a_run_counts_only_its_own_messages_as_dropped(tmp_path: Path) -> None:
    # The run summary of `run --until-sources-end` says how many of this run's messages were
    # delivered: backlog from an earlier run, dropped first by the cap, is not this run's loss.
    cap = stored_bytes(summary(10)) * 10  # room for about 10 summaries
    with Outbox(tmp_path / "o.db", max_bytes=cap) as ob:
        ob.append([summary(i) for i in range(8)])  # an earlier run's undelivered backlog: 1-8
    with Outbox(tmp_path / "o.db", max_bytes=cap) as ob:
        assert ob.dropped_this_run() == 0
        ob.append([summary(i) for i in range(8, 14)])  # seqs 9-14: some backlog must go
        assert 0 < ob.stats().dropped["cap_summary"] <= 8
        assert ob.dropped_this_run() == 0 and ob.count_pending(min_seq=9) == 6
        ob.append([summary(i) for i in range(14, 24)])  # seqs 15-24: the backlog, then ours
        assert ob.count_pending() == ob.count_pending(min_seq=9), "the backlog is gone"
        ours = ob.dropped_this_run()
        assert ours == ob.stats().dropped["cap_summary"] - 8 > 0
        assert ob.count_pending(min_seq=9) == 16 - ours
    # A new run starts from zero again.
    with Outbox(tmp_path / "o.db", max_bytes=cap) as ob:
        assert ob.dropped_this_run() == 0
