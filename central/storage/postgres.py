"""PostgreSQL backend (psycopg 3), for fleets and several ingest instances on one database.

Autocommit connection with explicit transactions; each table is written with one statement
per batch whose parameters are column arrays, so a batch costs a handful of round trips.
Concurrent writers upsert the same rollup rows; they do so in one sorted key order, and a
deadlock or serialization failure is retried with the whole batch (the msg_id dedupe makes
the retry exact).
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
        self, head: str, types: Sequence[str], rows: Sequence[Sequence[Any]], tail: str = ""
    ) -> list[tuple[Any, ...]]:
        # One array parameter per column: the server parses, plans and executes one statement
        # per table and batch. A prepared single-row statement per row (psycopg's pipelined
        # executemany) cost ~3x the client CPU and ~2x the server CPU, and a 2,000-row VALUES
        # list is slow to plan.
        # Binary arrays: the text format escapes each element in Python (a regex callback per
        # quote of a JSON body), ~5x the client CPU.
        if not rows:
            return []
        arrays = ", ".join(f"%b::{t}[]" for t in types)
        columns = [list(column) for column in zip(*rows, strict=True)]
        for i, t in enumerate(types):
            # psycopg refuses a list of ints and floats together (an integral amount, say).
            if t == "float8" and len(set(map(type, columns[i])) - {type(None)}) > 1:
                columns[i] = [None if v is None else float(v) for v in columns[i]]
        cur = self._conn.execute(f"{head} SELECT * FROM unnest({arrays}) {tail}", columns)
        return [tuple(r) for r in cur.fetchall()] if "RETURNING" in tail else []

    def _select_hours(self, keys: Sequence[tuple[str, int, str]]) -> list[tuple[Any, ...]]:
        if not keys:
            return []
        return self._conn.execute(
            "SELECT d.store_id, d.hour_ts, d.device_id, d.summaries, d.data "
            "FROM device_hourly d JOIN unnest(%b::text[], %b::bigint[], %b::text[]) "
            "AS k (store_id, hour_ts, device_id) ON d.store_id = k.store_id "
            "AND d.hour_ts = k.hour_ts AND d.device_id = k.device_id "
            "ORDER BY d.store_id, d.hour_ts, d.device_id FOR UPDATE OF d",
            [list(column) for column in zip(*keys, strict=True)],
        ).fetchall()

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
