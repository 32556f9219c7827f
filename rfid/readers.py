"""One constructor for every kind of reader, so that callers never branch on the protocol."""

from __future__ import annotations

from rfid.config import ReaderConfig
from rfid.network_port import LlrpReader
from rfid.serial_port import ReaderSource, SerialReader


def make_reader(
    cfg: ReaderConfig, reader_id: str | None = None, *, read_timeout_s: float = 0.05
) -> ReaderSource:
    """An `LlrpReader` for network protocols, else a `SerialReader` (nothing opened yet: the
    first `poll` connects or opens the port)."""
    if cfg.is_network:
        return LlrpReader(cfg, reader_id, read_timeout_s=read_timeout_s)
    return SerialReader(cfg, reader_id, read_timeout_s=read_timeout_s)


__all__ = ["make_reader"]
