"""The write path both SQL backends share: one transaction per batch.

Every table is written with one statement per table and batch (`_values`): SQLite runs
multi-row `INSERT ... VALUES (...), (...) ON CONFLICT ...` statements of up to 2,000 rows,
PostgreSQL one `INSERT ... SELECT * FROM unnest(<one array per column>)`. Rows are sorted by
key so that concurrent writers take row locks in one order (no deadlocks on the shared rollup
rows).
"""

from __future__ import annotations

import abc
import itertools
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from central.storage.base import BatchResult, DeadLetter, PosRow, Received
from central.storage.rollup import HourData, RollupKey, group_by_hour
from edge_agent.wire import PosTransaction, Status, StockEventMsg, Summary

T = TypeVar("T")
# Parameters per statement: below SQLite's 32766.
_MAX_PARAMS = 30_000
_HOUR_TYPES = ("text", "bigint", "text", "bigint", "text")  # device_hourly's columns


class SqlWriter(abc.ABC):
    max_fn: str  # scalar max of two values (MAX in SQLite, GREATEST in PostgreSQL)
    lock_clause: str  # row locks for read-modify-write ("" in SQLite, " FOR UPDATE")
    row_locks: bool  # concurrent writers lock rows (PostgreSQL), not the whole database
    # Device-hour documents as last committed by this writer: (summaries, data) as stored,
    # and parsed. A row that still holds exactly that (no other writer merged into it since)
    # needs no json.loads (~20 us): a device's summaries usually update the row its previous
    # one did. With N ingest processes sharing the subscription, ~1 in N is this writer's.
    # Bounded, least recently written first out: ~4 KB each for a 4-zone device.
    max_cached_docs = 10_000
    _docs: dict[RollupKey, tuple[tuple[int, str], HourData]] | None = None

    @abc.abstractmethod
    def _transaction(self) -> AbstractContextManager[None]: ...

    @abc.abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def _retry(self, fn: Callable[[], T]) -> T:
        return fn()

    def _values(
        self, head: str, types: Sequence[str], rows: Sequence[Sequence[Any]], tail: str = ""
    ) -> list[tuple[Any, ...]]:
        """`head VALUES (?, ...), (?, ...) ... tail` over chunks; returns RETURNING rows.
        `types` are the columns' PostgreSQL types (SQLite needs none)."""
        if not rows:
            return []
        template = f"({', '.join(['?'] * len(types))})"
        chunk = max(1, min(2000, _MAX_PARAMS // len(types)))
        returned: list[tuple[Any, ...]] = []
        for i in range(0, len(rows), chunk):
            part = rows[i : i + chunk]
            params = [v for row in part for v in row]
            sql = f"{head} VALUES {', '.join([template] * len(part))} {tail}"
            cur = self._execute(sql, params)
            if "RETURNING" in tail:
                returned.extend(tuple(r) for r in cur.fetchall())
        return returned

    # --- the batch ------------------------------------------------------------------------
    def write_batch(
        self, messages: Sequence[Received], dead_letters: Sequence[DeadLetter] = ()
    ) -> BatchResult:
        return self._retry(lambda: self._write_batch(messages, dead_letters))

    def _write_batch(
        self, messages: Sequence[Received], dead_letters: Sequence[DeadLetter]
    ) -> BatchResult:
        result = BatchResult()
        seen: set[str] = set()
        unique: list[Received] = []
        statuses: list[Received] = []
        for r in messages:
            if isinstance(r.msg, Status):
                statuses.append(r)
            elif r.msg.msg_id in seen:
                result.duplicates += 1
            else:
                seen.add(r.msg.msg_id)
                unique.append(r)
        self._pending_docs: dict[RollupKey, tuple[tuple[int, str], HourData]] = {}
        with self._transaction():
            new_ids = self._insert_messages(unique)
            result.duplicates += len(unique) - len(new_ids)
            new = [r for r in unique if r.msg.msg_id in new_ids]
            for r in new:
                result.stored[r.msg.kind] = result.stored.get(r.msg.kind, 0) + 1
            summaries = [r for r in new if isinstance(r.msg, Summary)]
            stock = [r.msg for r in new if isinstance(r.msg, StockEventMsg)]
            pos = [r.msg for r in new if isinstance(r.msg, PosTransaction)]
            if summaries:
                self._insert_summaries(summaries)
            if stock:
                self._insert_stock(stock)
            if pos:
                self._insert_pos(
                    [
                        PosRow(p.store_id, p.transaction_id, p.ts, p.amount, p.currency, "mqtt")
                        for p in pos
                    ]
                )
            if messages:
                self._upsert_devices(messages)
            if statuses:
                self._upsert_statuses(statuses)
                result.statuses = len(statuses)
            if dead_letters:
                self._values(
                    "INSERT INTO dead_letters (received_ts, topic, reason, payload, payload_size)",
                    ("float8", "text", "text", "bytea", "bigint"),
                    [
                        (d.received_at.timestamp(), d.topic, d.reason, d.payload, d.payload_size)
                        for d in dead_letters
                    ],
                )
                result.dead_letters = len(dead_letters)
            counts = {f"stored.{k}": v for k, v in result.stored.items()}
            counts["duplicates"] = result.duplicates
            counts["dead_letters"] = result.dead_letters
            self._add_counters(counts)
        self._remember_docs()
        return result

    def _insert_messages(self, rows: Sequence[Received]) -> set[str]:
        """The msg_ids that were new: ON CONFLICT DO NOTHING RETURNING, also across writers."""
        ordered = sorted(rows, key=lambda r: r.msg.msg_id)
        returned = self._values(
            "INSERT INTO messages (msg_id, store_id, device_id, kind, seq, created_ts, "
            "received_ts)",
            ("text", "text", "text", "text", "bigint", "float8", "float8"),
            [
                (
                    r.msg.msg_id,
                    r.msg.store_id,
                    r.msg.device_id,
                    r.msg.kind,
                    r.msg.seq,
                    r.msg.created_at.timestamp(),
                    r.received_ts,
                )
                for r in ordered
            ],
            "ON CONFLICT (msg_id) DO NOTHING RETURNING msg_id",
        )
        return {row[0] for row in returned}

    def _insert_summaries(self, rows: Sequence[Received]) -> None:
        msgs: list[Summary] = []
        params = []
        for r in rows:
            s = r.msg
            assert isinstance(s, Summary)
            msgs.append(s)
            # The payload as received is the stored body; re-serialising costs ~30 us each.
            body = r.raw.decode() if r.raw is not None else s.model_dump_json(by_alias=True)
            params.append(
                (
                    s.msg_id,
                    s.store_id,
                    s.device_id,
                    s.seq,
                    s.interval_start.timestamp(),
                    s.interval_end.timestamp(),
                    s.timezone,
                    body,
                )
            )
        self._values(
            "INSERT INTO summaries (msg_id, store_id, device_id, seq, interval_start_ts, "
            "interval_end_ts, timezone, body)",
            ("text", "text", "text", "bigint", "float8", "float8", "text", "text"),
            params,
        )
        latest_tz = {s.store_id: s.timezone for s in msgs}
        now = time.time()
        self._values(
            "INSERT INTO stores (store_id, timezone, updated_ts)",
            ("text", "text", "float8"),
            sorted((store, tz, now) for store, tz in latest_tz.items()),
            "ON CONFLICT (store_id) DO UPDATE SET timezone = excluded.timezone, "
            "updated_ts = excluded.updated_ts",
        )
        self._upsert_rollups(msgs)

    def _upsert_rollups(self, msgs: Sequence[Summary]) -> None:
        """Merge the batch into its device-hour rows: read and lock the rows that exist
        (`lock_clause`; SQLite's write lock already excludes other writers), merge in Python,
        write back. Keys are sorted so concurrent writers lock in one order."""
        groups = group_by_hour(msgs)
        keys = sorted(groups)
        current = {(st, int(h), dev): (int(n), data) for st, h, dev, n, data in
                   self._select_hours(keys)}  # fmt: skip
        docs = self._docs
        if docs is None:
            docs = self._docs = {}
        created: list[tuple[str, int, str, int, str]] = []
        updated: list[tuple[str, int, str, int, str]] = []
        for key in keys:
            group = groups[key]
            row = current.get(key)
            if row is None:
                hd = HourData()  # a new device-hour: nothing to merge into
                for s in group:
                    hd.add_summary(s)
            else:
                cached = docs.pop(key, None)
                hd = cached[1] if cached is not None and cached[0] == row else (
                    HourData.from_json(*row))  # fmt: skip
                hd.merge_summaries(group)
            text = hd.to_json()
            (created if row is None else updated).append((*key, hd.summaries, text))
            self._pending_docs[key] = ((hd.summaries, text), hd)
        to_write = created + updated
        if self.row_locks and created:
            # Another writer may have created some of the new rows since the read: insert
            # ours only where it did not, and merge into its rows otherwise.
            inserted = self._values(
                "INSERT INTO device_hourly (store_id, hour_ts, device_id, summaries, data)",
                _HOUR_TYPES,
                created,
                "ON CONFLICT (store_id, hour_ts, device_id) DO NOTHING "
                "RETURNING store_id, hour_ts, device_id",
            )
            to_write = updated
            if len(inserted) < len(created):
                won = {(st, int(h), dev) for st, h, dev in inserted}
                lost = {(st, h, dev): (n, text) for st, h, dev, n, text in created
                        if (st, h, dev) not in won}  # fmt: skip
                for st, h, dev, n, data in self._select_hours(list(lost)):
                    key = (st, int(h), dev)
                    del lost[key]
                    hd = HourData.from_json(int(n), data)
                    hd.merge_summaries(groups[key])
                    text = hd.to_json()
                    to_write.append((*key, hd.summaries, text))
                    self._pending_docs[key] = ((hd.summaries, text), hd)
                # Gone again (deleted) before the read: ours, as computed, is the row.
                to_write.extend((*k, n, text) for k, (n, text) in lost.items())
        self._values(
            "INSERT INTO device_hourly (store_id, hour_ts, device_id, summaries, data)",
            _HOUR_TYPES,
            to_write,
            "ON CONFLICT (store_id, hour_ts, device_id) DO UPDATE SET "
            "summaries = excluded.summaries, data = excluded.data",
        )

    def _select_hours(self, keys: Sequence[RollupKey]) -> list[tuple[Any, ...]]:
        """(store_id, hour_ts, device_id, summaries, data) of the rows that exist among
        `keys`, locked (`lock_clause`) in key order."""
        out: list[tuple[Any, ...]] = []
        chunk = 2000
        for i in range(0, len(keys), chunk):
            part = keys[i : i + chunk]
            out.extend(
                self._execute(
                    "SELECT store_id, hour_ts, device_id, summaries, data FROM device_hourly "
                    "WHERE (store_id, hour_ts, device_id) IN (VALUES "
                    + ", ".join(["(?, ?, ?)"] * len(part))
                    + ") ORDER BY store_id, hour_ts, device_id"
                    + self.lock_clause,
                    [v for k in part for v in k],
                ).fetchall()
            )
        return out

    def _remember_docs(self) -> None:
        """After a commit: keep the documents just written, parsed, for the next batch."""
        docs = self._docs
        if docs is None:
            docs = self._docs = {}
        for key, entry in self._pending_docs.items():
            docs[key] = entry
        self._pending_docs.clear()
        # Entries are popped when used and put back at the end: the first ones are the
        # least recently written.
        excess = len(docs) - self.max_cached_docs
        if excess > 0:
            for key in list(itertools.islice(docs, excess)):
                del docs[key]

    def _insert_stock(self, msgs: Sequence[StockEventMsg]) -> None:
        self._values(
            "INSERT INTO stock_events (msg_id, store_id, device_id, seq, ts, event_type, zone, "
            "from_zone, reader_id, epc, gtin, count, threshold)",
            (
                "text",
                "text",
                "text",
                "bigint",
                "float8",
                "text",
                "text",
                "text",
                "text",
                "text",
                "text",
                "bigint",
                "bigint",
            ),
            [
                (
                    m.msg_id,
                    m.store_id,
                    m.device_id,
                    m.seq,
                    m.ts.timestamp(),
                    m.event_type,
                    m.zone,
                    m.from_zone,
                    m.reader_id,
                    m.epc,
                    m.gtin,
                    m.count,
                    m.threshold,
                )
                for m in msgs
            ],
        )

    def _insert_pos(self, rows: Sequence[PosRow]) -> int:
        """Insert POS rows (idempotent on store + transaction id); returns how many were new."""
        returned = self._values(
            "INSERT INTO pos_transactions (store_id, transaction_id, ts, amount, currency, source)",
            ("text", "text", "float8", "float8", "text", "text"),
            [
                (p.store_id, p.transaction_id, p.ts.timestamp(), p.amount, p.currency, p.source)
                for p in rows
            ],
            "ON CONFLICT (store_id, transaction_id) DO NOTHING RETURNING transaction_id",
        )
        return len(returned)

    def _upsert_devices(self, messages: Sequence[Received]) -> None:
        acc: dict[tuple[str, str], list[Any]] = {}
        for r in messages:
            key = (r.msg.store_id, r.msg.device_id)
            seq = None if isinstance(r.msg, Status) else r.msg.seq
            a = acc.get(key)
            if a is None:
                acc[key] = [r.received_ts, r.received_ts, seq]
                continue
            a[0] = min(a[0], r.received_ts)
            a[1] = max(a[1], r.received_ts)
            if seq is not None:
                a[2] = seq if a[2] is None else max(a[2], seq)
        mx = self.max_fn
        self._values(
            "INSERT INTO devices (store_id, device_id, first_seen_ts, last_seen_ts, last_seq)",
            ("text", "text", "float8", "float8", "bigint"),
            [(*k, *v) for k, v in sorted(acc.items())],
            "ON CONFLICT (store_id, device_id) DO UPDATE SET "
            f"last_seen_ts = {mx}(devices.last_seen_ts, excluded.last_seen_ts), "
            f"last_seq = {mx}(COALESCE(devices.last_seq, excluded.last_seq), "
            "COALESCE(excluded.last_seq, devices.last_seq))",
        )

    def _upsert_statuses(self, rows: Sequence[Received]) -> None:
        # Arrival order wins: the broker's retained message is the device's latest word, and a
        # last will (offline) can carry an older created_at than the online status before it.
        latest: dict[tuple[str, str], Received] = {}
        for r in rows:
            latest[(r.msg.store_id, r.msg.device_id)] = r
        params = []
        for (store, device), r in sorted(latest.items()):
            s = r.msg
            assert isinstance(s, Status)
            body = r.raw.decode() if r.raw is not None else s.model_dump_json(by_alias=True)
            params.append(
                (
                    store,
                    device,
                    s.state,
                    s.created_at.timestamp(),
                    r.received_ts,
                    s.version,
                    s.outbox_depth,
                    body,
                )
            )
        self._values(
            "INSERT INTO device_status (store_id, device_id, state, created_ts, received_ts, "
            "version, outbox_depth, body)",
            ("text", "text", "text", "float8", "float8", "text", "bigint", "text"),
            params,
            "ON CONFLICT (store_id, device_id) DO UPDATE SET state = excluded.state, "
            "created_ts = excluded.created_ts, received_ts = excluded.received_ts, "
            "version = excluded.version, outbox_depth = excluded.outbox_depth, "
            "body = excluded.body",
        )

    def _add_counters(self, counts: dict[str, int]) -> None:
        self._values(
            "INSERT INTO counters (name, value)",
            ("text", "bigint"),
            sorted((k, v) for k, v in counts.items() if v),
            "ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
        )

    def add_pos_transactions(self, rows: Sequence[PosRow]) -> tuple[int, int]:
        def run() -> tuple[int, int]:
            with self._transaction():
                new = self._insert_pos(rows)
                self._add_counters({"stored.pos_csv": new})
            return new, len(rows) - new

        return self._retry(run)


__all__ = ["SqlWriter"]
