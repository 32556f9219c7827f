"""The SQL both backends share: the schema is the same, only connections and dialect differ.

SQL here is written with `?` placeholders; the PostgreSQL backend rewrites them to `%s`.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from central.storage.base import (
    EXPORT_COLUMNS,
    EXPORT_TABLES,
    DeadLetter,
    DeviceRow,
    DwellBin,
    FootfallHour,
    PosRow,
    SeqGap,
    StockEventRow,
    Storage,
    StoreInfo,
    SummaryRow,
    TransitionHour,
    ZoneHour,
)
from central.storage.migrations import MIGRATIONS, render
from central.storage.rollup import HourData
from central.storage.sqlwrite import SqlWriter
from edge_agent.wire import Summary

# Rows per fetch when exporting a table (a summaries batch, ~1-2 KB per body, is tens of MB).
EXPORT_BATCH_ROWS = 20_000
# Rollup exports read a week of one store at a time (2 doors x 168 h = 336 footfall rows).
_ROLLUP_WINDOW = timedelta(days=7)
_HOUR = timedelta(hours=1)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _ts(d: datetime) -> float:
    if d.tzinfo is None:
        raise ValueError(f"naive datetime {d.isoformat()} (central needs timezone-aware times)")
    return d.timestamp()


class SqlStorage(SqlWriter, Storage, abc.ABC):
    dialect: str
    max_fn: str  # scalar max of two values

    # --- backend hooks --------------------------------------------------------------------
    @abc.abstractmethod
    def _transaction(self) -> AbstractContextManager[None]: ...

    @abc.abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns a cursor-like object with fetchall()."""

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._execute(sql, params).fetchall()]

    def _stream(
        self, sql: str, params: Sequence[Any] = (), batch_rows: int = EXPORT_BATCH_ROWS
    ) -> Iterator[tuple[Any, ...]]:
        """The rows of one query, fetched `batch_rows` at a time as they are consumed."""
        cur = self._execute(sql, params)
        while batch := cur.fetchmany(batch_rows):
            yield from (tuple(r) for r in batch)

    # --- schema ---------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._transaction():
            # Instances starting together: IF NOT EXISTS alone races in PostgreSQL.
            self._lock_migrations()
            self._execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_ts "
                + render("{real}", self.dialect)
                + " NOT NULL)"
            )
        for m in MIGRATIONS:
            with self._transaction():
                self._lock_migrations()
                done = self._all("SELECT 1 FROM schema_migrations WHERE version = ?", (m.version,))
                if done:
                    continue
                for statement in m.statements:
                    self._execute(render(statement, self.dialect))
                self._execute(
                    "INSERT INTO schema_migrations (version, description, applied_ts) "
                    "VALUES (?, ?, ?)",
                    (m.version, m.description, time.time()),
                )

    def _lock_migrations(self) -> None:
        """Serialise concurrent migrators (SQLite's BEGIN IMMEDIATE already does)."""

    def schema_version(self) -> int:
        rows = self._all("SELECT MAX(version) FROM schema_migrations")
        return int(rows[0][0] or 0)

    def set_store_timezone(self, store_id: str, timezone: str) -> None:
        with self._transaction():
            self._execute(
                "INSERT INTO stores (store_id, timezone, updated_ts) VALUES (?, ?, ?) "
                "ON CONFLICT (store_id) DO UPDATE SET timezone = excluded.timezone, "
                "updated_ts = excluded.updated_ts",
                (store_id, timezone, time.time()),
            )

    # --- reading --------------------------------------------------------------------------
    def stores(self) -> list[StoreInfo]:
        return [
            StoreInfo(s, tz)
            for s, tz in self._all("SELECT store_id, timezone FROM stores ORDER BY store_id")
        ]

    def store_timezone(self, store_id: str) -> str | None:
        rows = self._all("SELECT timezone FROM stores WHERE store_id = ?", (store_id,))
        return str(rows[0][0]) if rows else None

    def _device_hours(
        self, store_id: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, str, HourData]]:
        rows = self._all(
            "SELECT hour_ts, device_id, summaries, data FROM device_hourly WHERE store_id = ? "
            "AND hour_ts >= ? AND hour_ts < ? ORDER BY hour_ts, device_id",
            (store_id, _ts(start), _ts(end)),
        )
        return [(_dt(h), d, HourData.from_json(int(n), data)) for h, d, n, data in rows]

    def footfall_hours(self, store_id: str, start: datetime, end: datetime) -> list[FootfallHour]:
        out = []
        for hour, device, hd in self._device_hours(store_id, start, end):
            for key, (i, o) in sorted(hd.lines.items()):
                cam, line = key.split("/", 1)
                out.append(FootfallHour(hour, cam, line, i, o, device))
        return out

    def zone_hours(self, store_id: str, start: datetime, end: datetime) -> list[ZoneHour]:
        out = []
        for hour, device, hd in self._device_hours(store_id, start, end):
            for key, z in sorted(hd.zones.items()):
                cam, zone = key.split("/", 1)
                out.append(
                    ZoneHour(
                        hour,
                        cam,
                        zone,
                        int(z[0]),
                        int(z[1]),
                        float(z[2]),
                        float(z[3]),
                        float(z[4]),
                        int(z[5]),
                        device,
                    )
                )
        return out

    def dwell_bins(self, store_id: str, start: datetime, end: datetime) -> list[DwellBin]:
        out = []
        for hour, device, hd in self._device_hours(store_id, start, end):
            for key, bins in sorted(hd.bins.items()):
                cam, zone = key.split("/", 1)
                for b, n in sorted(bins.items()):
                    lo, hi = b.split("|")
                    out.append(DwellBin(hour, cam, zone, float(lo), float(hi), n, device))
        return out

    def transition_hours(
        self, store_id: str, start: datetime, end: datetime
    ) -> list[TransitionHour]:
        out = []
        for hour, device, hd in self._device_hours(store_id, start, end):
            for key, n in sorted(hd.transitions.items()):
                cam, a, b = key.split("|")
                out.append(TransitionHour(hour, cam, a, b, n, device))
        return out

    def summaries(
        self, store_id: str, start: datetime, end: datetime, device_id: str | None = None
    ) -> list[SummaryRow]:
        sql = (
            "SELECT msg_id, store_id, device_id, seq, interval_start_ts, interval_end_ts, "
            "timezone FROM summaries WHERE store_id = ? AND interval_start_ts >= ? "
            "AND interval_start_ts < ?"
        )
        params: list[Any] = [store_id, _ts(start), _ts(end)]
        if device_id is not None:
            sql += " AND device_id = ?"
            params.append(device_id)
        rows = self._all(sql + " ORDER BY device_id, interval_start_ts", params)
        return [SummaryRow(m, s, d, int(q), _dt(a), _dt(b), tz) for m, s, d, q, a, b, tz in rows]

    def summary_messages(self, store_id: str, start: datetime, end: datetime) -> Iterator[Summary]:
        rows = self._all(
            "SELECT body FROM summaries WHERE store_id = ? AND interval_start_ts >= ? "
            "AND interval_start_ts < ? ORDER BY interval_start_ts",
            (store_id, _ts(start), _ts(end)),
        )
        for (body,) in rows:
            yield Summary.model_validate_json(body)

    def stock_events(
        self,
        store_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[StockEventRow]:
        sql = (
            "SELECT msg_id, store_id, device_id, seq, ts, event_type, zone, from_zone, "
            "reader_id, epc, gtin, count, threshold FROM stock_events WHERE store_id = ?"
        )
        params: list[Any] = [store_id]
        if start is not None:
            sql += " AND ts >= ?"
            params.append(_ts(start))
        if end is not None:
            sql += " AND ts < ?"
            params.append(_ts(end))
        rows = self._all(sql + " ORDER BY ts, device_id, seq", params)
        return [
            StockEventRow(
                m,
                s,
                d,
                int(q),
                _dt(ts),
                et,
                z,
                fz,
                rd,
                epc,
                g,
                None if c is None else int(c),
                None if th is None else int(th),
            )
            for m, s, d, q, ts, et, z, fz, rd, epc, g, c, th in rows
        ]

    def pos_transactions(self, store_id: str, start: datetime, end: datetime) -> list[PosRow]:
        rows = self._all(
            "SELECT store_id, transaction_id, ts, amount, currency, source FROM pos_transactions "
            "WHERE store_id = ? AND ts >= ? AND ts < ? ORDER BY ts, transaction_id",
            (store_id, _ts(start), _ts(end)),
        )
        return [PosRow(s, t, _dt(ts), float(a), c, src) for s, t, ts, a, c, src in rows]

    def devices(self, store_id: str | None = None) -> list[DeviceRow]:
        sql = (
            "SELECT d.store_id, d.device_id, d.first_seen_ts, d.last_seen_ts, d.last_seq, "
            "s.state, s.created_ts, s.version, s.outbox_depth, s.body FROM devices d "
            "LEFT JOIN device_status s ON s.store_id = d.store_id AND s.device_id = d.device_id"
        )
        params: list[Any] = []
        if store_id is not None:
            sql += " WHERE d.store_id = ?"
            params.append(store_id)
        out = []
        for st, dev, first, last, seq, state, sat, ver, depth, body in self._all(
            sql + " ORDER BY d.store_id, d.device_id", params
        ):
            out.append(
                DeviceRow(
                    st,
                    dev,
                    _dt(first),
                    _dt(last),
                    None if seq is None else int(seq),
                    state,
                    None if sat is None else _dt(sat),
                    ver,
                    None if depth is None else int(depth),
                    body,
                )
            )
        return out

    def seq_gaps(
        self,
        store_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[SeqGap]:
        # The window runs only over each device's seq span in the range, widened by one to the
        # message before it (so a gap across `start` is found), not over its whole history.
        # The span is taken by seq rather than by created_ts so that a message whose clock was
        # off (a Pi before NTP) still fills its place in the sequence: the result is exactly
        # that of the window over all messages. Both steps read only the covering index
        # messages_device_seq_ts (migration 2): the store's entries once for the spans, then
        # one or two seq ranges per device. The second step is one query per device because
        # PostgreSQL, given the spans as a join, hashes the whole messages table instead.
        store_where = ""
        params: list[Any] = []
        if store_id is not None:
            store_where = " AND store_id = ?"
            params.append(store_id)
        time_where = ""
        time_params: list[Any] = []
        if start is not None:
            time_where += " AND created_ts >= ?"
            time_params.append(_ts(start))
        if end is not None:
            time_where += " AND created_ts < ?"
            time_params.append(_ts(end))
        spans = self._all(
            "SELECT s.store_id, s.device_id, COALESCE((SELECT MAX(p.seq) FROM messages p "
            "WHERE p.store_id = s.store_id AND p.device_id = s.device_id AND p.seq < s.lo), "
            "s.lo), s.hi FROM (SELECT store_id, device_id, MIN(seq) AS lo, MAX(seq) AS hi "
            f"FROM messages WHERE 1 = 1{store_where}{time_where} GROUP BY store_id, device_id) s "
            "ORDER BY s.store_id, s.device_id",
            [*params, *time_params],
        )
        rows: list[tuple[Any, ...]] = []
        for store, device, lo, hi in spans:
            # Most devices lose nothing: counting the span's distinct seqs costs a tenth of the
            # window (measured at 1-minute summaries, 43,000 a month), so it goes first.
            (n,) = self._all(
                "SELECT COUNT(DISTINCT seq) FROM messages WHERE store_id = ? AND device_id = ? "
                "AND seq >= ? AND seq <= ?",
                [store, device, lo, hi],
            )[0]
            if int(n) == int(hi) - int(lo) + 1:
                continue
            rows += self._all(
                "SELECT store_id, device_id, prev_seq, seq, prev_ts, created_ts FROM ("
                "SELECT store_id, device_id, seq, created_ts, "
                "LAG(seq) OVER (ORDER BY seq) AS prev_seq, "
                "LAG(created_ts) OVER (ORDER BY seq) AS prev_ts FROM messages "
                "WHERE store_id = ? AND device_id = ? AND seq >= ? AND seq <= ?) t "
                f"WHERE prev_seq IS NOT NULL AND seq > prev_seq + 1{time_where} ORDER BY seq",
                [store, device, lo, hi, *time_params],
            )
        return [SeqGap(s, d, int(a), int(b), _dt(ta), _dt(tb)) for s, d, a, b, ta, tb in rows]

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = self._all(
            "SELECT id, received_ts, topic, reason, payload, payload_size FROM dead_letters "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            DeadLetter(topic, reason, bytes(payload), int(size), _dt(ts), id=int(i))
            for i, ts, topic, reason, payload, size in rows
        ]

    def prune_dead_letters(self, keep: int) -> int:
        def run() -> int:
            with self._transaction():
                cur = self._execute(
                    "DELETE FROM dead_letters WHERE id <= (SELECT id FROM dead_letters "
                    "ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (keep,),
                )
                return max(int(cur.rowcount), 0)

        return self._retry(run)

    def counters(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._all("SELECT name, value FROM counters")}

    def message_count(self, kind: str | None = None) -> int:
        if kind is None:
            rows = self._all("SELECT COUNT(*) FROM messages")
        else:
            rows = self._all("SELECT COUNT(*) FROM messages WHERE kind = ?", (kind,))
        return int(rows[0][0])

    def export_table(
        self,
        table: str,
        store_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
        if table not in EXPORT_TABLES:
            raise ValueError(f"unknown table {table!r}")
        if table in _ROLLUP_EXPORTS:
            return list(EXPORT_COLUMNS[table]), self._export_rollup(table, store_id, start, end)
        time_col = EXPORT_TABLES[table]
        where: list[str] = []
        params: list[Any] = []
        if store_id is not None:
            where.append("store_id = ?")
            params.append(store_id)
        if time_col and start is not None:
            where.append(f"{time_col} >= ?")
            params.append(_ts(start))
        if time_col and end is not None:
            where.append(f"{time_col} < ?")
            params.append(_ts(end))
        cols_sql = ", ".join(EXPORT_COLUMNS[table])
        sql = f"SELECT {cols_sql} FROM {table}" + (" WHERE " + " AND ".join(where) if where else "")
        return list(EXPORT_COLUMNS[table]), self._stream(sql, params)

    def _export_rollup(
        self, table: str, store_id: str | None, start: datetime | None, end: datetime | None
    ) -> Iterator[tuple[Any, ...]]:
        """The device-hour documents flattened to the per-line/zone/bin/transition tables,
        read a store and `_ROLLUP_WINDOW` at a time over the span the store has data for."""
        where, params = ("", []) if store_id is None else (" WHERE store_id = ?", [store_id])
        spans = self._all(
            f"SELECT store_id, MIN(hour_ts), MAX(hour_ts) FROM device_hourly{where} "
            "GROUP BY store_id ORDER BY store_id",
            params,
        )
        fetch = getattr(self, _ROLLUP_EXPORTS[table])
        for st, first, last in spans:
            lo, hi = _dt(first), _dt(last) + _HOUR
            lo, hi = max(lo, start) if start else lo, min(hi, end) if end else hi
            while lo < hi:
                window_end = min(lo + _ROLLUP_WINDOW, hi)
                for r in fetch(st, lo, window_end):
                    values = [getattr(r, f) for f in r.__slots__]
                    yield (st, int(values[0].timestamp()), *values[1:])
                lo = window_end


# Exported rollup tables and the method that yields their rows.
_ROLLUP_EXPORTS = {
    "footfall_hourly": "footfall_hours",
    "zone_hourly": "zone_hours",
    "dwell_hourly": "dwell_bins",
    "transition_hourly": "transition_hours",
}

__all__ = ["EXPORT_BATCH_ROWS", "SqlStorage"]
