"""`footfall-agent rfid`: technician tools for RFID readers.

* `rfid decode EPC_HEX [--json]`: GS1 EPC fields (SGTIN-96, SSCC-96, GIAI-96, GRAI-96, or an
  honest "unknown" with the raw EPC). Malformed hex: a message on stderr, exit 2.
* `rfid listen --port PATH --protocol NAME [--baud N] [--json] [--duration S]`: opens a reader
  as the daemon would (polling it if it needs commands) and prints every read live, so the
  antenna map can be checked before configuring it. `--protocol llrp --host ADDR [--port N]`
  does the same with an LLRP network reader, inventorying all of its antennas. With --json, one JSON object per read
  (`{"ts", "epc", "antenna", "rssi", "scheme", "gtin"}`), one per line, by design.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

from pydantic import ValidationError

from rfid.config import (
    DEFAULT_BAUD,
    DEFAULT_LLRP_PORT,
    NETWORK_PROTOCOLS,
    SINGLE_ANTENNA_PROTOCOLS,
    AntennaConfig,
    ReaderConfig,
)
from rfid.epc import EpcError, decode_epc
from rfid.events import TagRead
from rfid.network_port import LlrpReader
from rfid.protocols import PROTOCOLS
from rfid.serial_port import ReaderSource, SerialReader

EX_USAGE = 2
EX_UNAVAILABLE = 69
log = logging.getLogger("footfall.rfid")


def _decode(args: argparse.Namespace) -> int:
    try:
        info = decode_epc(args.epc)
    except EpcError as exc:
        print(f"footfall-agent rfid decode: {exc}", file=sys.stderr)
        return EX_USAGE
    doc = info.to_dict()
    if args.json:
        from edge_agent.cli import emit_json

        emit_json(doc)
    else:
        for key, value in doc.items():
            print(f"{key:15} {value}")
    return 0


class _Describer:
    """EPC -> (scheme, gtin), cached: a reader repeats the same few tags many times a second."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[str, str | None]] = {}

    def __call__(self, epc: str) -> tuple[str, str | None]:
        hit = self._cache.get(epc)
        if hit is None:
            try:
                info = decode_epc(epc)
                hit = (info.scheme, info.gtin)
            except EpcError:
                hit = ("unknown", None)
            if len(self._cache) < 100_000:
                self._cache[epc] = hit
        return hit


def _read_doc(read: TagRead, describe: _Describer) -> dict[str, Any]:
    scheme, gtin = describe(read.epc)
    rssi: float | None = read.rssi_dbm if read.rssi_dbm is not None else read.rssi_raw
    return {
        "ts": round(read.ts, 3),
        "epc": read.epc,
        "antenna": read.antenna,
        "rssi": rssi,
        "scheme": scheme,
        "gtin": gtin,
    }


def _open(reader: ReaderSource, cfg: ReaderConfig, start: float) -> list[TagRead]:
    """First poll(s): a serial port opens at once; an LLRP reader needs a connection, its
    greeting and five configuration answers, so it is polled until it runs or fails once."""
    reads = reader.poll(start)
    if isinstance(reader, LlrpReader):
        deadline = start + 2 * cfg.connect_timeout_s + 1
        while reader.state != "connected" and not reader.failed_attempts:
            now = time.time()
            if now > deadline:
                break
            reads += reader.poll(now)
    return reads


def _listen(args: argparse.Namespace) -> int:
    network = args.protocol in NETWORK_PROTOCOLS
    antennas = [1] if args.protocol in SINGLE_ANTENNA_PROTOCOLS else [1, 2, 3, 4]
    try:
        cfg = ReaderConfig(
            id="listen",
            port=args.port,
            host=args.host,
            protocol=args.protocol,
            baud=args.baud,
            address=args.address,
            poll_interval_s=args.poll_interval,
            antennas={n: AntennaConfig(zone=f"antenna-{n}") for n in antennas},
        )
    except ValidationError as exc:
        msg = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        print(f"footfall-agent rfid listen: {msg}", file=sys.stderr)
        return EX_USAGE
    reader: ReaderSource
    if network:
        reader = LlrpReader(cfg, antenna_ids=[0])  # 0: every antenna, mapped or not
        where = f"{cfg.host}:{cfg.tcp_port}"
        how = f"{args.protocol}, all antennas"
    else:
        reader = SerialReader(cfg)
        where = cfg.serial_path
        how = f"{args.protocol}, {cfg.effective_baud} baud"
    describe = _Describer()
    start = time.time()
    early = _open(reader, cfg, start)
    if not reader.is_open or (network and reader.state != "connected"):
        verb = "connect to" if network else "open"
        print(
            f"footfall-agent rfid listen: cannot {verb} {where}: {reader.last_error}",
            file=sys.stderr,
        )
        reader.close()
        return EX_UNAVAILABLE
    print(
        f"listening on {where} ({how})"
        + (f" for {args.duration:g} s" if args.duration else "; Ctrl-C stops"),
        file=sys.stderr,
    )
    n_reads = 0
    tags: set[str] = set()
    per_antenna: dict[int, tuple[int, set[str]]] = {}
    state = reader.state
    try:
        while args.duration is None or time.time() - start < args.duration:
            now = time.time()
            reads, early = early + reader.poll(now), []
            for read in reads:
                n_reads += 1
                tags.add(read.epc)
                count, seen = per_antenna.get(read.antenna, (0, set()))
                seen.add(read.epc)
                per_antenna[read.antenna] = (count + 1, seen)
                doc = _read_doc(read, describe)
                if args.json:
                    line = json.dumps(doc)
                else:
                    stamp = time.strftime("%H:%M:%S", time.localtime(read.ts))
                    rssi = "-" if doc["rssi"] is None else f"{doc['rssi']:g}"
                    line = (
                        f"{stamp}  ant {read.antenna}  rssi {rssi:>4}  {read.epc}  "
                        f"{doc['scheme']}  {doc['gtin'] or ''}".rstrip()
                    )
                sys.stdout.write(line + "\n")
            sys.stdout.flush()
            if reader.state != state:
                state = reader.state
                print(f"reader state: {state} ({reader.last_error or ''})", file=sys.stderr)
            if not reader.is_open:
                time.sleep(0.1)  # waiting for the backoff to reopen an unplugged port
    except KeyboardInterrupt:
        pass
    finally:
        health = reader.health(time.time())
        reader.close()
    print(
        f"{n_reads} reads of {len(tags)} tags, {reader.parser.frames_ok} frames, "
        f"rejected: {json.dumps(health.errors, sort_keys=True)}",
        file=sys.stderr,
    )
    for antenna, (count, seen) in sorted(per_antenna.items()):
        # The antenna map check: which antenna sees which tags, before writing the config.
        print(f"  antenna {antenna}: {count} reads of {len(seen)} tags", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `rfid decode` and `rfid listen` to the CLI."""
    p = sub.add_parser("rfid", help="RFID technician tools: decode EPCs, watch a reader live")
    rsub = p.add_subparsers(dest="rfid_command", required=True, metavar="RFID_COMMAND")

    d = rsub.add_parser("decode", help="decode a GS1 EPC given in hex")
    d.add_argument("epc", metavar="EPC_HEX", help="EPC bank contents after the PC word, in hex")
    d.add_argument("--json", action="store_true", help="one JSON document on stdout")
    d.set_defaults(func=_decode)

    listen = rsub.add_parser("listen", help="open a reader and print its reads live")
    listen.add_argument(
        "--port",
        default=None,
        help="serial port, e.g. /dev/serial/by-id/...; for llrp the TCP port"
        f" (default {DEFAULT_LLRP_PORT})",
    )
    listen.add_argument("--host", default=None, help="llrp: the reader's IP address or name")
    listen.add_argument(
        "--protocol", required=True, choices=sorted([*PROTOCOLS, *NETWORK_PROTOCOLS])
    )
    listen.add_argument(
        "--baud",
        type=int,
        default=None,
        help="baud rate (default by protocol: "
        + ", ".join(f"{k} {v}" for k, v in DEFAULT_BAUD.items())
        + ")",
    )
    listen.add_argument(
        "--address", type=int, default=0, help="Chafon reader address (255 = any/broadcast)"
    )
    listen.add_argument(
        "--poll-interval", type=float, default=0.2, help="inventory command interval, seconds"
    )
    listen.add_argument("--json", action="store_true", help="one JSON object per read, per line")
    listen.add_argument("--duration", type=float, default=None, help="stop after this many s")
    listen.set_defaults(func=_listen)
