"""The small storage interface central is built on: ingest writes batches, analytics reads rows.

Two implementations share one SQL schema (`central.storage.migrations`): SQLite (default, one
file, WAL) and PostgreSQL (psycopg 3). `open_storage(url)` picks one by URL scheme.

Conventions for every query method:
- time ranges are half-open `[start, end)` and take timezone-aware datetimes; rows come back
  with UTC-aware datetimes;
- footfall, zone, dwell and transition data are served from *hourly rollups* maintained at
  ingest, one row per device (camera ids are unique only per device: two devices may both
  have a camera `door`), keyed by `hour_start`: the start of the store-local wall-clock hour containing the
  summary's `interval_start`, as a UTC instant (so a 30-minute-offset zone keeps local hours and
  the DST repeated hour stays two distinct hours). A summary interval longer than an hour is
  attributed to the hour in which it starts.
- status messages are not part of a device's `seq` stream (they are retained and re-sent) and
  are not de-duplicated by `msg_id`: the device status row is simply overwritten.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from edge_agent.wire import PosTransaction, Status, StockEventMsg, Summary

Decoded = Summary | StockEventMsg | Status | PosTransaction

# The times storage takes (ingest and the POS import reject the rest): the wire format takes
# any year, but an epoch second from year 1 or 9999 overflows datetime when a report or an
# export turns it back (one such row broke every later export). 1970 stays in: a Pi without
# a real-time clock sends from 1970 until NTP sets its clock, and those messages still fill
# their places in the device's sequence.
FIRST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
END_TIME = datetime(2100, 1, 1, tzinfo=UTC)
# The same span as dates (command arguments, dashboard queries) and as words (messages).
FIRST_DAY, LAST_DAY = FIRST_TIME.date(), END_TIME.date() - timedelta(days=1)
YEARS = f"{FIRST_DAY.year}-{LAST_DAY.year}"


@dataclass(frozen=True, slots=True)
class Received:
    """One decoded message, when central received it (UTC epoch seconds) and, when known,
    the payload exactly as received (stored as the summary/status body)."""

    msg: Decoded
    received_ts: float
    raw: bytes | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A payload that failed validation; `payload` is already capped by the caller."""

    topic: str
    reason: str
    payload: bytes
    payload_size: int
    received_at: datetime
    id: int | None = None


@dataclass(slots=True)
class BatchResult:
    """What one `write_batch` did; `stored` counts new messages per kind."""

    stored: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    statuses: int = 0
    dead_letters: int = 0

    @property
    def stored_total(self) -> int:
        return sum(self.stored.values())


@dataclass(frozen=True, slots=True)
class StoreInfo:
    store_id: str
    timezone: str


@dataclass(frozen=True, slots=True)
class FootfallHour:
    hour_start: datetime
    camera_id: str
    line_id: str
    in_count: int
    out_count: int
    device_id: str = ""  # camera ids are unique only per device


@dataclass(frozen=True, slots=True)
class ZoneHour:
    """Additive zone figures for one hour. Mean occupancy = occupancy_person_s / covered_s."""

    hour_start: datetime
    camera_id: str
    zone_id: str
    visits: int
    dwell_count: int
    dwell_sum_s: float
    occupancy_person_s: float
    covered_s: float
    occupancy_max: int
    device_id: str = ""  # camera ids are unique only per device


@dataclass(frozen=True, slots=True)
class DwellBin:
    """Visits whose dwell fell in [lo_s, hi_s) during one hour (merged from histograms)."""

    hour_start: datetime
    camera_id: str
    zone_id: str
    lo_s: float
    hi_s: float
    count: int
    device_id: str = ""  # camera ids are unique only per device


@dataclass(frozen=True, slots=True)
class TransitionHour:
    hour_start: datetime
    camera_id: str
    from_zone: str
    to_zone: str
    count: int
    device_id: str = ""  # camera ids are unique only per device


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One stored summary envelope (the full message is in `summary_messages`)."""

    msg_id: str
    store_id: str
    device_id: str
    seq: int
    interval_start: datetime
    interval_end: datetime
    timezone: str


@dataclass(frozen=True, slots=True)
class StockEventRow:
    msg_id: str
    store_id: str
    device_id: str
    seq: int
    ts: datetime
    event_type: str
    zone: str
    from_zone: str | None
    reader_id: str | None
    epc: str | None
    gtin: str | None
    count: int | None
    threshold: int | None


@dataclass(frozen=True, slots=True)
class PosRow:
    store_id: str
    transaction_id: str
    ts: datetime
    amount: float
    currency: str | None
    source: str  # "csv" or "mqtt"


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """Every device central has heard from, with its latest status when one arrived."""

    store_id: str
    device_id: str
    first_seen: datetime
    last_seen: datetime
    last_seq: int | None
    state: str | None  # "online" / "offline" from the latest status message, None if never
    status_at: datetime | None
    version: str | None
    outbox_depth: int | None
    status_json: str | None  # the whole latest status message, as received


@dataclass(frozen=True, slots=True)
class SeqGap:
    """Messages `after_seq + 1 .. before_seq - 1` of a device never arrived (missing data)."""

    store_id: str
    device_id: str
    after_seq: int
    before_seq: int
    after_at: datetime
    before_at: datetime

    @property
    def missing(self) -> int:
        return self.before_seq - self.after_seq - 1


class Storage(abc.ABC):
    """The storage interface. Implementations are not thread-safe: one per thread."""

    url: str

    # --- writing --------------------------------------------------------------------------
    @abc.abstractmethod
    def write_batch(
        self, messages: Sequence[Received], dead_letters: Sequence[DeadLetter] = ()
    ) -> BatchResult:
        """Store a batch in ONE transaction; messages whose msg_id is known are dropped and
        counted as duplicates (also across concurrent writers)."""

    @abc.abstractmethod
    def add_pos_transactions(self, rows: Sequence[PosRow]) -> tuple[int, int]:
        """Insert POS rows, idempotent on (store_id, transaction_id); returns (new, duplicate)."""

    @abc.abstractmethod
    def set_store_timezone(self, store_id: str, timezone: str) -> None:
        """Record a store's IANA zone (ingest does this from summaries)."""

    # --- reading --------------------------------------------------------------------------
    @abc.abstractmethod
    def stores(self) -> list[StoreInfo]: ...

    @abc.abstractmethod
    def store_timezone(self, store_id: str) -> str | None: ...

    @abc.abstractmethod
    def footfall_hours(self, store_id: str, start: datetime, end: datetime) -> list[FootfallHour]:
        """Hourly in/out per line, ordered by hour_start."""

    @abc.abstractmethod
    def zone_hours(self, store_id: str, start: datetime, end: datetime) -> list[ZoneHour]: ...

    @abc.abstractmethod
    def dwell_bins(self, store_id: str, start: datetime, end: datetime) -> list[DwellBin]: ...

    @abc.abstractmethod
    def transition_hours(
        self, store_id: str, start: datetime, end: datetime
    ) -> list[TransitionHour]: ...

    @abc.abstractmethod
    def summaries(
        self, store_id: str, start: datetime, end: datetime, device_id: str | None = None
    ) -> list[SummaryRow]:
        """Summaries whose interval_start is in range, ordered by device then interval_start."""

    @abc.abstractmethod
    def summary_messages(self, store_id: str, start: datetime, end: datetime) -> Iterator[Summary]:
        """The full stored summaries (zones with per-interval dwell stats, transitions)."""

    @abc.abstractmethod
    def stock_events(
        self,
        store_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[StockEventRow]:
        """Stock events by `ts` (event time), oldest first; no bounds = all of the store's."""

    @abc.abstractmethod
    def pos_transactions(self, store_id: str, start: datetime, end: datetime) -> list[PosRow]: ...

    @abc.abstractmethod
    def devices(self, store_id: str | None = None) -> list[DeviceRow]: ...

    @abc.abstractmethod
    def seq_gaps(
        self,
        store_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[SeqGap]:
        """Holes in each device's seq stream (summary, stock and pos messages), limited to
        gaps whose later message was created in [start, end) when bounds are given (the
        earlier message may be older than `start`: a hole across the start is reported)."""

    @abc.abstractmethod
    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Newest first."""

    @abc.abstractmethod
    def prune_dead_letters(self, keep: int) -> int:
        """Keep only the newest `keep` dead letters; returns how many were deleted."""

    @abc.abstractmethod
    def counters(self) -> dict[str, int]:
        """Persistent ingest counters: `duplicates`, `dead_letters`, `stored.<kind>`."""

    @abc.abstractmethod
    def message_count(self, kind: str | None = None) -> int: ...

    @abc.abstractmethod
    def schema_version(self) -> int: ...

    @abc.abstractmethod
    def export_table(
        self,
        table: str,
        store_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
        """Columns and rows of one table in `EXPORT_TABLES`, optionally for one store and a
        range on the table's own time column (epoch-second columns stay numbers). The rows
        are read from the database as they are consumed, a batch at a time (a table can be
        bigger than memory): consume them before the next call on this storage."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Storage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# Tables `export` writes, with the time column a --from/--to range applies to, and the columns.
EXPORT_TABLES: dict[str, str | None] = {
    "stores": None,
    "footfall_hourly": "hour_ts",
    "zone_hourly": "hour_ts",
    "dwell_hourly": "hour_ts",
    "transition_hourly": "hour_ts",
    "summaries": "interval_start_ts",
    "stock_events": "ts",
    "pos_transactions": "ts",
    "devices": None,
    "device_status": None,
}


def _cols(names: str) -> tuple[str, ...]:
    return tuple(names.split())


EXPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "stores": _cols("store_id timezone updated_ts"),
    "footfall_hourly": _cols("store_id hour_ts camera_id line_id in_count out_count device_id"),
    "zone_hourly": _cols(
        "store_id hour_ts camera_id zone_id visits dwell_count dwell_sum_s "
        "occupancy_person_s covered_s occupancy_max device_id"
    ),
    "dwell_hourly": _cols("store_id hour_ts camera_id zone_id lo_s hi_s count device_id"),
    "transition_hourly": _cols("store_id hour_ts camera_id from_zone to_zone count device_id"),
    "summaries": _cols(
        "msg_id store_id device_id seq interval_start_ts interval_end_ts timezone body"
    ),
    "stock_events": _cols(
        "msg_id store_id device_id seq ts event_type zone from_zone reader_id epc gtin "
        "count threshold"
    ),
    "pos_transactions": _cols("store_id transaction_id ts amount currency source"),
    "devices": _cols("store_id device_id first_seen_ts last_seen_ts last_seq"),
    "device_status": _cols(
        "store_id device_id state created_ts received_ts version outbox_depth body"
    ),
}


class StorageUrlError(ValueError):
    """A storage URL central cannot open."""


class StorageUnavailableError(Exception):
    """The storage could not be opened (file, directory or permission; server down, refused
    login); the message says why, with any password in the URL masked."""


def redact_url(url: str) -> str:
    """The storage URL without its password (for logs, messages and the dashboard footer)."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def open_storage(url: str, must_exist: bool = False) -> Storage:
    """Open (and migrate) the storage at `url`.

    `sqlite:///var/lib/footfall-central/central.db` (everything after `sqlite://` is the file path, so
    three slashes make it absolute and `sqlite://central.db` is relative), or
    `postgresql://user@host:port/db` (any libpq URL). `must_exist`: a SQLite file that is not
    there is an error rather than a new empty database (commands that only read: a typo in
    the path must not look like a store with no data).
    """
    if url.startswith("sqlite://"):
        import sqlite3

        from central.storage.sqlite import SqliteStorage

        path = url.removeprefix("sqlite://")
        if not path:
            raise StorageUrlError(f"{url!r}: no file path after sqlite://")
        if must_exist and path != ":memory:" and not Path(path).is_file():
            raise StorageUnavailableError(f"{url}: no such database file")
        try:
            return SqliteStorage(path, url=url)
        except (OSError, sqlite3.Error) as exc:
            raise StorageUnavailableError(f"{url}: {exc}") from exc
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg

        from central.storage.postgres import PostgresStorage

        try:
            return PostgresStorage(url)
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageUnavailableError(f"{redact_url(url)}: {reason}") from exc
    raise StorageUrlError(f"{url!r}: use sqlite:///PATH or postgresql://...")


__all__ = [
    "END_TIME",
    "EXPORT_COLUMNS",
    "EXPORT_TABLES",
    "FIRST_DAY",
    "FIRST_TIME",
    "LAST_DAY",
    "YEARS",
    "BatchResult",
    "DeadLetter",
    "Decoded",
    "DeviceRow",
    "DwellBin",
    "FootfallHour",
    "PosRow",
    "Received",
    "SeqGap",
    "StockEventRow",
    "Storage",
    "StorageUnavailableError",
    "StorageUrlError",
    "StoreInfo",
    "SummaryRow",
    "TransitionHour",
    "ZoneHour",
    "open_storage",
    "redact_url",
]
