"""Versioned schema steps, applied in order by both backends.

Each step is plain SQL with dialect holes: `{id_pk}` (an auto-increment primary key),
`{blob}` (raw bytes), `{real}` (a double) and `{clustered}` (SQLite's WITHOUT ROWID). Times are UTC epoch seconds (`*_ts`), hours are
the epoch second of the local hour start (`hour_ts`, see `central.storage.base`). Never edit a
released step: append a new one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


DIALECTS: dict[str, dict[str, str]] = {
    "sqlite": {
        "id_pk": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "blob": "BLOB",
        "real": "REAL",
        # Tables keyed by their primary key alone: one B-tree per row instead of two.
        "clustered": " WITHOUT ROWID",
    },
    "postgresql": {
        "id_pk": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "blob": "BYTEA",
        "real": "DOUBLE PRECISION",
        "clustered": "",
    },
}

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "messages, summaries, device-hour rollup, stock, POS, devices, dead letters, counters",
        (
            """CREATE TABLE stores (
                store_id TEXT PRIMARY KEY,
                timezone TEXT NOT NULL,
                updated_ts {real} NOT NULL)""",
            # Every summary/stock/pos message ever stored: the msg_id key is the dedupe, the
            # (device, seq) index serves gap detection (replaced by a covering one in step 2).
            """CREATE TABLE messages (
                msg_id TEXT PRIMARY KEY,
                store_id TEXT NOT NULL,
                device_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                seq BIGINT NOT NULL,
                created_ts {real} NOT NULL,
                received_ts {real} NOT NULL){clustered}""",
            "CREATE INDEX messages_device_seq ON messages (store_id, device_id, seq)",
            # msg_id is unique through `messages`; no second unique index here.
            """CREATE TABLE summaries (
                msg_id TEXT NOT NULL,
                store_id TEXT NOT NULL,
                device_id TEXT NOT NULL,
                seq BIGINT NOT NULL,
                interval_start_ts {real} NOT NULL,
                interval_end_ts {real} NOT NULL,
                timezone TEXT NOT NULL,
                body TEXT NOT NULL)""",
            "CREATE INDEX summaries_store_start ON summaries (store_id, interval_start_ts)",
            # Hourly rollup: one JSON document per store, local hour and device (see
            # central.storage.rollup). The primary key serves store + time range queries.
            """CREATE TABLE device_hourly (
                store_id TEXT NOT NULL,
                hour_ts BIGINT NOT NULL,
                device_id TEXT NOT NULL,
                summaries BIGINT NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (store_id, hour_ts, device_id))""",
            """CREATE TABLE stock_events (
                msg_id TEXT PRIMARY KEY,
                store_id TEXT NOT NULL,
                device_id TEXT NOT NULL,
                seq BIGINT NOT NULL,
                ts {real} NOT NULL,
                event_type TEXT NOT NULL,
                zone TEXT NOT NULL,
                from_zone TEXT,
                reader_id TEXT,
                epc TEXT,
                gtin TEXT,
                count BIGINT,
                threshold BIGINT)""",
            "CREATE INDEX stock_events_store_ts ON stock_events (store_id, ts)",
            """CREATE TABLE pos_transactions (
                store_id TEXT NOT NULL,
                transaction_id TEXT NOT NULL,
                ts {real} NOT NULL,
                amount {real} NOT NULL,
                currency TEXT,
                source TEXT NOT NULL,
                PRIMARY KEY (store_id, transaction_id))""",
            "CREATE INDEX pos_store_ts ON pos_transactions (store_id, ts)",
            """CREATE TABLE devices (
                store_id TEXT NOT NULL,
                device_id TEXT NOT NULL,
                first_seen_ts {real} NOT NULL,
                last_seen_ts {real} NOT NULL,
                last_seq BIGINT,
                PRIMARY KEY (store_id, device_id))""",
            """CREATE TABLE device_status (
                store_id TEXT NOT NULL,
                device_id TEXT NOT NULL,
                state TEXT NOT NULL,
                created_ts {real} NOT NULL,
                received_ts {real} NOT NULL,
                version TEXT NOT NULL,
                outbox_depth BIGINT NOT NULL,
                body TEXT NOT NULL,
                PRIMARY KEY (store_id, device_id))""",
            """CREATE TABLE dead_letters (
                id {id_pk},
                received_ts {real} NOT NULL,
                topic TEXT NOT NULL,
                reason TEXT NOT NULL,
                payload {blob} NOT NULL,
                payload_size BIGINT NOT NULL)""",
            """CREATE TABLE counters (
                name TEXT PRIMARY KEY,
                value BIGINT NOT NULL)""",
        ),
    ),
    Migration(
        2,
        "covering index for seq gaps: messages (store_id, device_id, seq, created_ts)",
        (
            # Supersedes messages_device_seq (same leading columns). With created_ts in the
            # index, gap detection never reads the table itself: its rows are in msg_id
            # (random) order on SQLite, one random page read each when the cache is cold.
            "DROP INDEX messages_device_seq",
            "CREATE INDEX messages_device_seq_ts ON messages (store_id, device_id, seq, created_ts)",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


def render(statement: str, dialect: str) -> str:
    return statement.format(**DIALECTS[dialect])


__all__ = ["DIALECTS", "LATEST_VERSION", "MIGRATIONS", "Migration", "render"]
