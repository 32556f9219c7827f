"""PostgreSQL backend (psycopg 3), for fleets and several ingest instances on one database.

Autocommit connection with explicit transactions; `executemany` runs in psycopg's pipeline
mode, so a batch costs a handful of round trips. Concurrent writers upsert the same rollup
rows; they do so in one sorted key order, and a deadlock or serialization failure is retried
with the whole batch (the msg_id dedupe makes the retry exact).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, TypeVar

from central.storage.sql import EXPORT_BATCH_ROWS, SqlStorage

T = TypeVar("T")

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError:  # pragma: no cover - exercised only without the postgres extra
    psycopg = None  # type: ignore[assignment]
    pg_errors = None  # type: ignore[assignment]


@lru_cache(maxsize=256)
def _pg(sql: str) -> str:
    # Our SQL has no literal '?' or '%', so the placeholder rewrite is a plain replace.
    return sql.replace("?", "%s")


class PostgresStorage(SqlStorage):
    dialect = "postgresql"
    max_fn = "GREATEST"
    lock_clause = " FOR UPDATE"
    row_locks = True

    def __init__(self, url: str) -> None:
        if psycopg is None:
            raise RuntimeError(
                "PostgreSQL storage needs psycopg 3: pip install 'footfall[postgres]'"
            )
        self.url = url
        self._conn = psycopg.connect(url, autocommit=True)
        self._migrate()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._conn.transaction():
            yield

    def _lock_migrations(self) -> None:
        # Two instances starting at once must not both apply a step.
        self._conn.execute("SELECT pg_advisory_xact_lock(7346101)")

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(_pg(sql), params)

    def _stream(
        self, sql: str, params: Sequence[Any] = (), batch_rows: int = EXPORT_BATCH_ROWS
    ) -> Iterator[tuple[Any, ...]]:
        # A client-side cursor receives the whole result before the first row; a named
        # (server-side) cursor sends `batch_rows` at a time, and needs a transaction.
        with self._conn.transaction(), self._conn.cursor(name="footfall_stream") as cur:
            cur.execute(_pg(sql), params)
            while batch := cur.fetchmany(batch_rows):
                yield from (tuple(r) for r in batch)

    def _values(
        self, head: str, template: str, rows: Sequence[Sequence[Any]], tail: str = ""
    ) -> list[tuple[Any, ...]]:
        # PostgreSQL plans a 2,000-row VALUES list slowly (3-4x slower than this measured);
        # psycopg's executemany pipelines one prepared single-row statement instead.
        if not rows:
            return []
        sql = _pg(f"{head} VALUES {template} {tail}")
        returning = "RETURNING" in tail
        out: list[tuple[Any, ...]] = []
        with self._conn.cursor() as cur:
            cur.executemany(sql, rows, returning=returning)
            if returning:
                while True:
                    out.extend(tuple(r) for r in cur.fetchall())
                    if not cur.nextset():
                        break
        return out

    def _retry(self, fn: Callable[[], T]) -> T:
        for attempt in range(5):
            try:
                return fn()
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
                if attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._conn.close()


__all__ = ["PostgresStorage"]
