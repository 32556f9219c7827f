"""Serial reader protocols by their config name: a parser factory plus the commands to send.

`PROTOCOLS["chafon288"].make_parser(cfg, reader_id)` builds the pure incremental parser;
`start_command(cfg)` is written once after the port opens (and re-sent every `rearm_s`),
`poll_command(cfg, cycle)` at `poll_interval_s` for polled readers. `idle_frames` says whether
the reader answers even with no tag in the field, so that silence means the link is stale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rfid.config import ReaderConfig
from rfid.protocols import chafon, m100, rdm6300
from rfid.protocols.base import DEFAULT_FRAME_TIMEOUT_S, FrameParser


@dataclass(frozen=True)
class ProtocolSpec:
    name: str
    make_parser: Callable[[ReaderConfig, str, float], FrameParser]
    start_command: Callable[[ReaderConfig], bytes] | None = None
    poll_command: Callable[[ReaderConfig, int], bytes] | None = None
    idle_frames: bool = False
    rearm_s: float | None = None


def _antenna_for_cycle(cfg: ReaderConfig, cycle: int) -> int:
    antennas = sorted(cfg.antennas)
    return antennas[cycle % len(antennas)]


def _scan_time(cfg: ReaderConfig) -> int:
    # The reader's scan time (x100 ms) follows the poll interval so one answer arrives per poll.
    return max(1, min(255, round(cfg.poll_interval_s * 10)))


PROTOCOLS: dict[str, ProtocolSpec] = {
    "rdm6300": ProtocolSpec(
        name="rdm6300",
        make_parser=lambda cfg, rid, timeout_s: rdm6300.Rdm6300Parser(rid, timeout_s),
    ),
    "chafon18": ProtocolSpec(
        name="chafon18",
        make_parser=lambda cfg, rid, timeout_s: chafon.ChafonParser(
            rid, timeout_s, with_rssi=False, address=cfg.address
        ),
        poll_command=lambda cfg, cycle: chafon.encode_inventory18(cfg.address),
        idle_frames=True,
    ),
    "chafon288": ProtocolSpec(
        name="chafon288",
        make_parser=lambda cfg, rid, timeout_s: chafon.ChafonParser(
            rid, timeout_s, with_rssi=True, address=cfg.address
        ),
        poll_command=lambda cfg, cycle: chafon.encode_inventory288(
            cfg.address, _antenna_for_cycle(cfg, cycle), _scan_time(cfg)
        ),
        idle_frames=True,
    ),
    "m100": ProtocolSpec(
        name="m100",
        make_parser=lambda cfg, rid, timeout_s: m100.M100Parser(rid, timeout_s),
        start_command=lambda cfg: m100.encode_start(),
        idle_frames=True,
        rearm_s=5.0,
    ),
}

__all__ = ["DEFAULT_FRAME_TIMEOUT_S", "PROTOCOLS", "FrameParser", "ProtocolSpec"]
