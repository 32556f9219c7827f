"""SQLite backend: one file, WAL, one write transaction per batch.

`BEGIN IMMEDIATE` takes the write lock up front, so two ingest processes on one file queue on
`busy_timeout` instead of failing on a read-to-write lock upgrade. `synchronous=FULL` because
ingest acknowledges MQTT messages only after the commit: an acknowledged message must survive
a power cut.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from central.storage.sql import SqlStorage

T = TypeVar("T")
_BUSY_TIMEOUT_MS = 30_000


class SqliteStorage(SqlStorage):
    dialect = "sqlite"
    max_fn = "MAX"
    lock_clause = ""
    row_locks = False

    def __init__(self, path: str | Path, url: str | None = None) -> None:
        self.path = Path(path)
        self.url = url or f"sqlite://{self.path}"
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        self._conn = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=30
        )
        self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        self._enable_wal()
        self._conn.execute("PRAGMA synchronous = FULL")
        # A batch of 1,000 summaries from as many devices touches ~3,000 scattered pages (the
        # device-hour rows, the msg_id index, devices): SQLite's default 2 MB page cache
        # re-read them from the OS every batch, and its 1,000-page autocheckpoint copied the
        # WAL back after every commit. 64 MB and 10,000 pages (a WAL of up to ~40 MB between
        # checkpoints): drain +5-8 % (BENCHMARKS.md, Ingest).
        self._conn.execute("PRAGMA cache_size = -65536")
        self._conn.execute("PRAGMA wal_autocheckpoint = 10000")
        self._migrate()

    def _enable_wal(self) -> None:
        # Switching a new file to WAL takes an exclusive lock, and SQLite does not wait for it
        # through busy_timeout: instances starting together on a fresh file got "database is
        # locked" here (3 times in 60 tries of 4 at once). WAL is persistent, so this only
        # contends on the first start.
        deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(sql, params)

    def _retry(self, fn: Callable[[], T]) -> T:
        # busy_timeout already waits; a lock held longer than that is retried a few times.
        for attempt in range(3):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 2:
                    raise
                time.sleep(0.1 * (attempt + 1))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._conn.close()


__all__ = ["SqliteStorage"]
