"""The durable outbox: every message is committed to SQLite before anything tries to publish it.

Why SQLite in WAL mode with ``synchronous=FULL``: in WAL mode FULL fsyncs the WAL at every
commit, so a committed message survives a power cut (NORMAL only guarantees consistency and may
lose the last commits when the power goes). A Pi on a shop shelf loses power; the cost of FULL
(~1 fsync per transaction) is paid once per batch because the aggregator and the benchmark
append several messages per transaction.

The outbox also owns the device ``seq``: it is allocated inside the transaction that stores the
message, so a seq is never reused, never skipped by a crash between allocation and storage, and
survives restarts (the counter lives in the ``meta`` table, not in the rows, which get deleted).

Rows are deleted only by :meth:`Outbox.mark_sent`, which the sync calls on a successful PUBACK.
A crash between PUBACK and the delete means a resend, which central drops by ``msg_id``.

Payloads are stored zlib-compressed (level 1): a busy 4-camera summary is ~4.3 kB of JSON and
~0.5 kB stored, so each commit writes (and fsyncs) a few pages instead of dozens, the SD card
wears less, and the cap holds eight times more. ``pending()`` hands back the JSON as published.

Cap policy (``max_bytes`` over the stored, compressed payload bytes plus a fixed per-row
overhead, see :func:`stored_bytes`; and ``max_age_s`` over the device's *run time*):

* When an append would exceed ``max_bytes``, the oldest *summaries* are deleted first; stock
  events are deleted (oldest first) only when no summary is left. A stock event is a fact that
  something changed; a summary is one of many counts, and losing the oldest hurts least.
* Messages older than ``max_age_s`` are deleted by :meth:`prune_age` whatever their kind.
* Every drop is counted per reason and kind in ``meta`` (persisted), and reported in health.

Ages are measured in device run time, not by the wall clock: a Pi has no real-time clock, boots
with a stale time and NTP then steps it forward, possibly by more than ``max_age_s``; judged by
``created_at`` every row written before the step would be dropped at once. The run time is an
accumulated counter in ``meta`` (``run_time_ms``), advanced from ``time.monotonic()`` deltas and
saved at every commit, so it survives restarts and never jumps; each row is stamped with it
(``run_at_s``). Time the device was off does not count, and the time since the last commit
before a crash is lost: both make rows look younger, never older.

The open aggregation interval is checkpointed in the ``state`` table in the same transaction
as the summaries, so "summary emitted" and "counts reset" can never be seen apart.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent import wire

Message = wire.Summary | wire.StockEventMsg | wire.Status | wire.PosTransaction

# Per-row bookkeeping (row header, index entries, msg_id, topic) counted against max_bytes on
# top of the payload, so a cap computed from payload sizes alone is not blown by many tiny rows.
ROW_OVERHEAD_BYTES = 160
# Drop in chunks so a full outbox does not pay one DELETE per append.
_DROP_CHUNK_ROWS = 64
# (seq, msg_id, kind, topic, payload, created_at, run_at_s)
_Row = tuple[int, str, str, str, bytes, float, float]

# 1: first release. 2: rows carry run_at_s (device run time at append); ages use it.
SCHEMA_VERSION = 2
# Fresh files get the current tables; older ones are brought up by _migrate().
_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL UNIQUE,
    msg_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,  -- zlib-compressed JSON, exactly as wire.encode() made it
    created_at REAL NOT NULL,  -- wall clock, informative only (see the module docstring)
    run_at_s REAL NOT NULL DEFAULT 0  -- device run time at append: what ages are measured by
);
CREATE INDEX IF NOT EXISTS messages_kind ON messages(kind, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One stored message, ready to publish."""

    id: int
    seq: int
    msg_id: str
    kind: str
    topic: str
    payload: bytes
    created_at: float


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    bytes: int
    oldest_age_s: float | None
    dropped: dict[str, int]
    last_seq: int

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


def stored_bytes(msg: Message) -> int:
    """What one message counts against ``max_bytes`` (compressed payload + row overhead)."""
    return len(zlib.compress(wire.encode(msg), 1)) + ROW_OVERHEAD_BYTES


class OutboxFullError(RuntimeError):
    """A single message is larger than the whole cap."""


class Outbox:
    """SQLite WAL outbox, safe to share between threads (one connection behind a lock)."""

    def __init__(
        self,
        path: str | Path,
        max_bytes: int = 256 * 1024 * 1024,
        max_age_s: float = 30 * 86400,
        clock: Any = time.time,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        busy_timeout_s: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._clock = clock  # wall clock: created_at only
        self._monotonic = monotonic  # run time: ages
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a transaction's extent
        # is exactly what the code shows.
        self._db = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} was written by a newer footfall (outbox schema {version})"
            )
        self._db.executescript(_SCHEMA)
        self._mono_at_open = float(self._monotonic())
        self._run_base_s = self._meta_get("run_time_ms") / 1000.0
        if version < SCHEMA_VERSION:  # a new file (0) or an older one: no write at each open
            self._migrate()
        row = self._db.execute(
            "SELECT COALESCE(SUM(LENGTH(payload)), 0), COUNT(*) FROM messages"
        ).fetchone()
        self._bytes = int(row[0]) + int(row[1]) * ROW_OVERHEAD_BYTES
        self._depth = int(row[1])
        # Seqs from here on are this process's messages: the run summary reports how many of
        # them a cap dropped (older backlog rows, dropped first, are not this run's loss).
        next_seq = self._db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
        self._first_seq_this_run = int(next_seq[0]) if next_seq else 1
        self._db.execute("DELETE FROM meta WHERE key = 'run_dropped'")
        self._closed = False

    def _migrate(self) -> None:
        """Bring an older file to SCHEMA_VERSION in one transaction (old rows keep working)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            columns = {str(r[1]) for r in self._db.execute("PRAGMA table_info(messages)")}
            if "run_at_s" not in columns:
                # 1 -> 2. An old row's wall-clock age cannot be trusted (the very problem), so
                # it is stamped as written now: kept at most max_age_s of run time more, never
                # dropped early. The byte cap still bounds the backlog.
                self._db.execute("ALTER TABLE messages ADD COLUMN run_at_s REAL NOT NULL DEFAULT 0")
                self._db.execute("UPDATE messages SET run_at_s = ?", (self._run_time_s(),))
            # Prune and the oldest-age figure look rows up by run_at_s (without an index every
            # prune read the whole table). The created_at index of version 1 served the same
            # purpose and is now only write cost.
            self._db.execute("DROP INDEX IF EXISTS messages_created")
            self._db.execute("CREATE INDEX IF NOT EXISTS messages_run_at ON messages(run_at_s)")
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    # -- run time ----------------------------------------------------------------------------------
    def _run_time_s(self) -> float:
        """Seconds this device has run with this outbox, over all restarts."""
        return self._run_base_s + max(0.0, float(self._monotonic()) - self._mono_at_open)

    def _save_run_time(self) -> float:
        """Persist the run time in the current transaction (lock held); returns it.

        MAX: another process on the same file (a CLI next to the daemon) never moves it back.
        """
        run_s = self._run_time_s()
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES ('run_time_ms', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)",
            (int(run_s * 1000),),
        )
        return run_s

    # -- meta helpers (call with the lock held, inside a transaction) --------------------------
    def _meta_get(self, key: str, default: int = 0) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else default

    def _meta_add(self, key: str, delta: int) -> None:
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
            (key, delta),
        )

    def _drop_for_space(self, needed: int) -> None:
        """Delete oldest summaries (then oldest stock events) until `needed` more bytes fit."""
        for kind_clause, label in (("kind = 'summary'", "summary"), ("kind != 'summary'", None)):
            while self._bytes + needed > self.max_bytes:
                rows = self._db.execute(
                    f"SELECT id, kind, LENGTH(payload), seq FROM messages WHERE {kind_clause} "
                    "ORDER BY id LIMIT ?",
                    (_DROP_CHUNK_ROWS,),
                ).fetchall()
                if not rows:
                    break
                freed_enough: list[tuple[int, str, int, int]] = []
                for r in rows:
                    freed_enough.append(r)
                    need = self._bytes + needed - self.max_bytes
                    if sum(x[2] + ROW_OVERHEAD_BYTES for x in freed_enough) >= need:
                        break
                self._delete_rows(freed_enough, reason="cap", label=label)

    def _delete_rows(
        self, rows: Sequence[tuple[int, str, int, int]], reason: str, label: str | None
    ) -> None:
        """Drop rows (id, kind, payload bytes, seq) for a cap, counting them by reason."""
        self._db.executemany("DELETE FROM messages WHERE id = ?", [(r[0],) for r in rows])
        for r in rows:
            self._meta_add(f"dropped_{reason}_{label or r[1]}", 1)
            self._bytes -= r[2] + ROW_OVERHEAD_BYTES
        self._depth -= len(rows)
        this_run = sum(1 for r in rows if r[3] >= self._first_seq_this_run)
        if this_run:
            # In meta, not in memory, so a rolled-back transaction takes its count back too.
            self._meta_add("run_dropped", this_run)

    # -- public API ------------------------------------------------------------------------------
    def append(
        self, messages: Iterable[Message], state: dict[str, str | None] | None = None
    ) -> list[Message]:
        """Store messages (stamping each with the next device seq) in ONE transaction.

        `state` entries are written (or deleted, for None) in the same transaction: the
        aggregator uses this to reset its checkpoint atomically with emitting a summary.
        Returns the messages as stored (with their seq). Committed when this returns.
        """
        msgs = list(messages)
        with self._lock:
            self._check_open()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq = self._meta_get("next_seq", 1)
                stored: list[Message] = []
                rows: list[_Row] = []
                now = float(self._clock())
                run_s = self._save_run_time()
                for msg in msgs:
                    stamped = msg.model_copy(update={"seq": seq})
                    payload = zlib.compress(wire.encode(stamped), 1)
                    size = len(payload) + ROW_OVERHEAD_BYTES
                    if size > self.max_bytes:
                        raise OutboxFullError(f"message of {size} bytes exceeds the whole cap")
                    if self._bytes + size > self.max_bytes:
                        # Rows of this batch are not inserted yet; drop from what is stored.
                        self._flush_rows(rows)
                        rows = []
                        self._drop_for_space(size)
                    rows.append(
                        (
                            seq,
                            stamped.msg_id,
                            stamped.kind,
                            wire.topic_for(stamped.store_id, stamped.device_id, stamped.kind),
                            payload,
                            now,
                            run_s,
                        )
                    )
                    self._bytes += size
                    self._depth += 1
                    stored.append(stamped)
                    seq += 1
                self._flush_rows(rows)
                if msgs:
                    self._db.execute(
                        "INSERT INTO meta(key, value) VALUES ('next_seq', ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        (seq,),
                    )
                for key, value in (state or {}).items():
                    if value is None:
                        self._db.execute("DELETE FROM state WHERE key = ?", (key,))
                    else:
                        self._db.execute(
                            "INSERT INTO state(key, value) VALUES (?, ?) "
                            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                            (key, value),
                        )
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            return stored

    def _rollback(self) -> None:
        """Undo the failed transaction and resync the byte and row counters with the table.

        SQLite itself rolls the transaction back on some errors (SQLITE_FULL: disk full,
        SQLITE_IOERR): a ROLLBACK then fails with "no transaction is active" and would hide
        the real error and leave the counters off, so it is issued only when still open.
        """
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._recount()

    def _flush_rows(self, rows: list[_Row]) -> None:
        if rows:
            self._db.executemany(
                "INSERT INTO messages(seq, msg_id, kind, topic, payload, created_at, run_at_s) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def _recount(self) -> None:
        row = self._db.execute(
            "SELECT COALESCE(SUM(LENGTH(payload)), 0), COUNT(*) FROM messages"
        ).fetchone()
        self._bytes = int(row[0]) + int(row[1]) * ROW_OVERHEAD_BYTES
        self._depth = int(row[1])

    def set_state(self, key: str, value: str | None) -> None:
        """Write (or delete) one state entry in its own committed transaction."""
        self.append([], {key: value})

    def get_state(self, key: str) -> str | None:
        with self._lock:
            self._check_open()
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def pending(self, limit: int, exclude: Iterable[int] = ()) -> list[OutboxRecord]:
        """Oldest undelivered messages first, skipping ids already in flight."""
        excluded = list(exclude)
        with self._lock:
            self._check_open()
            if excluded:
                marks = ",".join("?" * len(excluded))
                cur = self._db.execute(
                    "SELECT id, seq, msg_id, kind, topic, payload, created_at FROM messages "
                    f"WHERE id NOT IN ({marks}) ORDER BY id LIMIT ?",
                    (*excluded, limit),
                )
            else:
                cur = self._db.execute(
                    "SELECT id, seq, msg_id, kind, topic, payload, created_at FROM messages "
                    "ORDER BY id LIMIT ?",
                    (limit,),
                )
            return [
                OutboxRecord(
                    int(r[0]), int(r[1]), r[2], r[3], r[4], zlib.decompress(r[5]), float(r[6])
                )
                for r in cur.fetchall()
            ]

    def count_pending(self, min_seq: int = 1) -> int:
        """Undelivered messages with seq >= min_seq, counted on the seq index (no payload is
        read: cheap even with the whole cap of backlog)."""
        with self._lock:
            self._check_open()
            row = self._db.execute(
                "SELECT COUNT(*) FROM messages WHERE seq >= ?", (min_seq,)
            ).fetchone()
            return int(row[0])

    def mark_sent(self, ids: Iterable[int]) -> int:
        """Delete delivered messages (call only for a successful PUBACK). Returns rows deleted."""
        id_list = list(ids)
        if not id_list:
            return 0
        with self._lock:
            self._check_open()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                deleted = 0
                for i in range(0, len(id_list), 500):
                    chunk = id_list[i : i + 500]
                    marks = ",".join("?" * len(chunk))
                    row = self._db.execute(
                        "SELECT COALESCE(SUM(LENGTH(payload)), 0), COUNT(*) FROM messages "
                        f"WHERE id IN ({marks})",
                        chunk,
                    ).fetchone()
                    self._db.execute(f"DELETE FROM messages WHERE id IN ({marks})", chunk)
                    deleted += int(row[1])
                    self._bytes -= int(row[0]) + int(row[1]) * ROW_OVERHEAD_BYTES
                self._depth -= deleted
                self._meta_add("delivered", deleted)
                self._save_run_time()
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            return deleted

    def prune_age(self) -> int:
        """Delete messages older than max_age_s of device run time (any kind); counted as
        dropped_age_<kind>. A step of the wall clock ages nothing."""
        with self._lock:
            self._check_open()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cutoff = self._save_run_time() - self.max_age_s
                rows = self._db.execute(
                    "SELECT id, kind, LENGTH(payload), seq FROM messages WHERE run_at_s < ?",
                    (cutoff,),
                ).fetchall()
                self._delete_rows(rows, reason="age", label=None)
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            return len(rows)

    def stats(self) -> OutboxStats:
        with self._lock:
            self._check_open()
            # One step down the run_at_s index (runs at every status; without an index it
            # scanned the table: 0.12 s for 400k rows on the test VM).
            oldest = self._db.execute("SELECT MIN(run_at_s) FROM messages").fetchone()[0]
            dropped = {
                str(k).removeprefix("dropped_"): int(v)
                for k, v in self._db.execute(
                    "SELECT key, value FROM meta WHERE key LIKE 'dropped_%'"
                ).fetchall()
            }
            last_seq = self._meta_get("next_seq", 1) - 1
            return OutboxStats(
                depth=self._depth,
                bytes=self._bytes,
                oldest_age_s=None if oldest is None else max(0.0, self._run_time_s() - oldest),
                dropped=dropped,
                last_seq=last_seq,
            )

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def last_seq(self) -> int:
        with self._lock:
            self._check_open()
            return self._meta_get("next_seq", 1) - 1

    def dropped_this_run(self) -> int:
        """Messages stored since this outbox was opened that a cap has dropped since."""
        with self._lock:
            self._check_open()
            return self._meta_get("run_dropped")

    def delivered_total(self) -> int:
        with self._lock:
            self._check_open()
            return self._meta_get("delivered", 0)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("outbox is closed")

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                # Run time since the last commit would otherwise not count after a restart.
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("BEGIN IMMEDIATE")
                    self._save_run_time()
                    self._db.execute("COMMIT")
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                # Fold the WAL back into the main file so a copied outbox.db is self-contained.
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "ROW_OVERHEAD_BYTES",
    "SCHEMA_VERSION",
    "Outbox",
    "OutboxFullError",
    "OutboxRecord",
    "OutboxStats",
    "stored_bytes",
]
