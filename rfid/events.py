"""Typed RFID records: raw tag reads in, stock events out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class TagRead:
    """One read of one tag by one antenna.

    `epc` is upper-case hex without separators. `rssi_dbm` is None when the reader does not
    report RSSI in dBm (Chafon 288 reports a raw unsigned strength, kept in `rssi_raw`).
    `ts` is the time the caller passed in (seconds since the Unix epoch).
    """

    epc: str
    ts: float
    reader_id: str = ""
    antenna: int = 1
    rssi_dbm: float | None = None
    rssi_raw: int | None = None


StockEventType = Literal[
    "item_arrived",
    "item_removed",
    "item_moved",
    "stock_low",
    "stock_out",
    "stock_restored",
]


@dataclass(frozen=True, slots=True)
class ItemArrived:
    epc: str
    gtin: str | None
    zone: str
    reader_id: str
    ts: float
    event_type: StockEventType = "item_arrived"


@dataclass(frozen=True, slots=True)
class ItemRemoved:
    epc: str
    gtin: str | None
    zone: str
    reader_id: str
    ts: float
    last_seen_ts: float
    event_type: StockEventType = "item_removed"


@dataclass(frozen=True, slots=True)
class ItemMoved:
    epc: str
    gtin: str | None
    from_zone: str
    zone: str
    reader_id: str
    ts: float
    event_type: StockEventType = "item_moved"


@dataclass(frozen=True, slots=True)
class StockLow:
    gtin: str
    zone: str
    count: int
    threshold: int
    ts: float
    event_type: StockEventType = "stock_low"


@dataclass(frozen=True, slots=True)
class StockOut:
    gtin: str
    zone: str
    ts: float
    count: int = 0
    event_type: StockEventType = "stock_out"


@dataclass(frozen=True, slots=True)
class StockRestored:
    gtin: str
    zone: str
    count: int
    threshold: int
    ts: float
    event_type: StockEventType = "stock_restored"


StockEvent = ItemArrived | ItemRemoved | ItemMoved | StockLow | StockOut | StockRestored

__all__ = [
    "ItemArrived",
    "ItemMoved",
    "ItemRemoved",
    "StockEvent",
    "StockEventType",
    "StockLow",
    "StockOut",
    "StockRestored",
    "TagRead",
]
