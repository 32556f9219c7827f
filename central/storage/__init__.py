"""Central storage: one small interface (`Storage`), SQLite and PostgreSQL implementations."""

from central.storage.base import (
    BatchResult,
    DeadLetter,
    DeviceRow,
    DwellBin,
    FootfallHour,
    PosRow,
    Received,
    SeqGap,
    StockEventRow,
    Storage,
    StorageUrlError,
    StoreInfo,
    SummaryRow,
    TransitionHour,
    ZoneHour,
    open_storage,
)

__all__ = [
    "BatchResult",
    "DeadLetter",
    "DeviceRow",
    "DwellBin",
    "FootfallHour",
    "PosRow",
    "Received",
    "SeqGap",
    "StockEventRow",
    "Storage",
    "StorageUrlError",
    "StoreInfo",
    "SummaryRow",
    "TransitionHour",
    "ZoneHour",
    "open_storage",
]
