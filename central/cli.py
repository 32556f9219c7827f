"""`footfall-central`: ingest, reports, POS import, export and the dashboard.

Every command with --json prints exactly one JSON document on stdout; logs go to stderr.
The storage URL comes from --db, else the config file's `storage.url` (--config, else
/etc/footfall/central.yaml when it exists), else $FOOTFALL_CENTRAL_DB, else the default
SQLite file. Exit codes: 0 done, 1 failed (bad rows, a dead worker), 2 usage, 69 storage
unavailable, 78 bad config (systemd's RestartPreventExitStatus).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import logging
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time as _time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from central.config import (
    DEFAULT_CONFIG_PATH,
    EX_CONFIG,
    CentralConfig,
    CentralConfigError,
    StorageConfig,
    load_config,
    systemd_credential,
)
from central.storage import StorageUnavailableError, StorageUrlError, open_storage, redact_url
from central.storage.base import FIRST_DAY, LAST_DAY, Storage

log = logging.getLogger("central.cli")


class _Waitable(Protocol):
    def wait(self, timeout: float | None = None) -> bool: ...


Handler = Callable[[argparse.Namespace], int]
EX_USAGE = 2
EX_UNAVAILABLE = 69  # sysexits.h: a service the command needs (the database) is unavailable
MAX_REPORT_DAYS = 1100  # about three years of hourly rows; split longer ranges


def _day(text: str) -> date:
    try:
        d = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    if not FIRST_DAY <= d <= LAST_DAY:
        raise argparse.ArgumentTypeError(
            f"{text} is outside {FIRST_DAY.isoformat()}..{LAST_DAY.isoformat()}"
        )
    return d


def _zone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(
            f"unknown IANA time zone {text!r} (e.g. Europe/Paris, America/New_York)"
        ) from None
    return text


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0-65535)")
    return int(text)


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, default=str) + "\n")
    sys.stdout.flush()


def _config_path(args: argparse.Namespace) -> Path | None:
    path: Path | None = getattr(args, "config", None)
    if path is None and DEFAULT_CONFIG_PATH.exists():
        return DEFAULT_CONFIG_PATH
    return path


def _load(args: argparse.Namespace, at_start: bool = False) -> CentralConfig | None:
    """The config file (--config, else the default one when it exists), or None.
    `at_start` (serve): also check the files it names."""
    path = _config_path(args)
    return None if path is None else load_config(path, check=at_start, at_start=at_start)


def _storage_url(args: argparse.Namespace, cfg: CentralConfig | None) -> str:
    if getattr(args, "db", None):
        return str(args.db)
    # Only a URL the file sets: a config without a storage section (the default file, say)
    # must not hide $FOOTFALL_CENTRAL_DB behind the built-in default.
    if cfg is not None and "url" in cfg.storage.model_fields_set:
        return cfg.storage.url
    return os.environ.get("FOOTFALL_CENTRAL_DB") or StorageConfig().url


def _open(args: argparse.Namespace, must_exist: bool = False) -> Storage:
    """The storage of a command; `must_exist` for commands that only read. With --db the
    config file is not read at all: a broken default config must not stop a report on an
    explicit database."""
    cfg = None if getattr(args, "db", None) else _load(args)
    return open_storage(_storage_url(args, cfg), must_exist=must_exist)


def _day_start(d: date | None) -> datetime | None:
    return None if d is None else datetime.combine(d, time(0), UTC)


# --- serve -------------------------------------------------------------------------------------
def _disable_gc_for_ingest() -> None:
    """Stop the cyclic garbage collector from rescanning batches in flight.

    Ingest holds up to a batch of decoded messages (about 40 tracked objects each) until the
    batch is committed, and the automatic collector walks them again and again: with the
    default thresholds that cost more than decoding (BENCHMARKS.md, Ingest), and even with a
    generation-0 threshold of 50,000 it still cost ~70 us per summary. Ingest data holds no
    reference cycles, so reference counting frees it; `Ingest(collect_garbage=True)` collects
    the young generations between batches, when they are nearly empty, and everything every
    few minutes. A process-wide policy, so only for the serve process.
    """
    gc.collect()
    gc.freeze()  # what start-up created (modules, config) is never garbage
    gc.disable()


# serve's options and the config keys they override, for error messages.
_SERVE_OPTIONS = {
    ("mqtt", "host"): "--broker",
    ("mqtt", "port"): "--broker",
    ("mqtt", "client_id"): "--client-id",
    ("mqtt", "group"): "--group",
    ("ingest", "workers"): "--workers",
}


def _serve(args: argparse.Namespace) -> int:
    file_cfg = _load(args, at_start=True)
    cfg = file_cfg or CentralConfig()
    updates: dict[str, Any] = {}
    if args.broker:
        host, _, port = args.broker.rpartition(":")
        if not host or not port.isdigit():
            print(f"--broker {args.broker!r}: use HOST:PORT", file=sys.stderr)
            return EX_USAGE
        updates.update(host=host, port=int(port))
    if args.client_id:
        updates["client_id"] = args.client_id
    if args.group:
        updates["group"] = args.group
    mqtt_cfg = cfg.mqtt.model_copy(update=updates)
    ingest_cfg = cfg.ingest.model_dump()
    if args.workers is not None:
        ingest_cfg["workers"] = args.workers
    try:
        cfg = CentralConfig.model_validate(
            {
                "mqtt": mqtt_cfg.model_dump(),
                "storage": {"url": _storage_url(args, file_cfg)},
                "ingest": ingest_cfg,
            }
        )
    except ValidationError as exc:
        # The file validated on its own: what fails is an option, or an option with the file.
        rc = EX_CONFIG
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"])
            option = _SERVE_OPTIONS.get((loc[0], loc[1])) if len(loc) >= 2 else None
            msg = str(err["msg"]).removeprefix("Value error, ")
            if option is None and args.workers is not None and "ingest.workers" in msg:
                option = "--workers"  # the file's mqtt settings with this option's workers
            if option is not None:
                rc = EX_USAGE
                print(f"serve: {option}: {msg}", file=sys.stderr)
            else:
                print(f"serve: {'.'.join(loc) or 'config'}: {msg}", file=sys.stderr)
        return rc
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("ingesting into %s", redact_url(cfg.storage.url))
    if cfg.ingest.workers == 1:
        stats = _ingest_until(cfg, stop)
        rc = 0
    else:
        stats, rc = _supervise_workers(cfg, stop)
    if args.json:
        emit_json(stats)
    return rc


def _ingest_until(cfg: CentralConfig, stop: _Waitable) -> dict[str, Any]:
    from central.ingest import Ingest

    _disable_gc_for_ingest()
    # A database still starting (boot order, a failover) must not end the service: systemd
    # gives up after a few quick restarts. Keep trying; the broker holds the messages.
    delay_s = 1.0
    while True:
        try:
            ingest = Ingest(cfg, collect_garbage=True)
            break
        except StorageUnavailableError as exc:
            log.error("storage unavailable, retrying in %.0f s: %s", delay_s, exc)
            if stop.wait(delay_s):
                return {"stored": 0, "storage_unavailable": 1}
            delay_s = min(delay_s * 2, 30.0)
    ingest.start()
    while not stop.wait(1.0):
        pass
    ingest.stop()
    return ingest.stats.as_dict()


def _worker_main(cfg: CentralConfig, log_level: int, stop: Any, results: Any) -> None:
    """One ingest worker process (spawned: nothing of the parent's state is shared)."""
    logging.basicConfig(
        level=log_level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s %(name)s[{cfg.mqtt.client_id}]: %(message)s",
    )
    # systemd signals every process of the service; the parent's stop event ends us too.
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    results.put(_ingest_until(cfg, stop))


def _supervise_workers(cfg: CentralConfig, stop: threading.Event) -> tuple[dict[str, Any], int]:
    """Run `ingest.workers` processes until `stop`; if one dies, stop all and fail, so the
    service manager restarts the instance (the broker redelivers what was not committed)."""
    ctx = mp.get_context("spawn")
    worker_stop = ctx.Event()
    results = ctx.Queue()
    level = logging.getLogger().getEffectiveLevel()
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(cfg.worker(i), level, worker_stop, results),
            name=f"ingest-{i + 1}",
        )
        for i in range(cfg.ingest.workers)
    ]
    for p in procs:
        p.start()
    rc = 0
    while not stop.wait(1.0):
        dead = [p for p in procs if not p.is_alive()]
        if dead:
            log.error(
                "ingest worker %s exited (code %s): stopping the others", dead[0].name,
                dead[0].exitcode,
            )  # fmt: skip
            rc = 1
            break
    worker_stop.set()
    stats: list[dict[str, Any]] = []
    deadline = _time.monotonic() + 60
    for p in procs:
        p.join(max(0.1, deadline - _time.monotonic()))
        if p.is_alive():
            log.error("ingest worker %s did not stop: killing it", p.name)
            p.kill()
            rc = 1
    while True:
        try:
            stats.append(results.get(timeout=0.5))
        except queue.Empty:
            break
    return _sum_stats(stats), rc


def _sum_stats(per_worker: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {
        "workers": len(per_worker),
        "stored_by_worker": [s.get("stored", 0) for s in per_worker],
    }
    for s in per_worker:
        for key, value in s.items():
            if key == "by_kind":
                kinds = total.setdefault("by_kind", {})
                for kind, n in value.items():
                    kinds[kind] = kinds.get(kind, 0) + n
            elif key == "last_batch_ms":
                total[key] = max(total.get(key, 0.0), value)
            elif isinstance(value, int | float):
                total[key] = total.get(key, 0) + value
    return total


# --- import-pos --------------------------------------------------------------------------------
def _import_pos(args: argparse.Namespace) -> int:
    from central.pos import PosFileError, import_pos_csv

    with _open(args) as storage:
        try:
            result = import_pos_csv(storage, args.file, args.timezone)
        except PosFileError as exc:
            print(f"import-pos: {exc}", file=sys.stderr)
            return 1
    for bad in result.bad_rows:
        print(f"{args.file}:{bad.line}: {bad.message}", file=sys.stderr)
    if args.json:
        emit_json(result.to_dict())
    else:
        print(
            f"{args.file}: {result.rows_read} rows, {result.imported} imported, "
            f"{result.duplicates} already known, {len(result.bad_rows)} bad",
            file=sys.stderr,
        )
    return 1 if result.bad_rows else 0


# --- report ------------------------------------------------------------------------------------
def _report(args: argparse.Namespace) -> int:
    from central.report import build_report, report_csv, report_text

    if args.to_day < args.from_day:
        print("report: --to is before --from", file=sys.stderr)
        return EX_USAGE
    if (args.to_day - args.from_day).days >= MAX_REPORT_DAYS:
        print(f"report: at most {MAX_REPORT_DAYS} days per report", file=sys.stderr)
        return EX_USAGE
    with _open(args, must_exist=True) as storage:
        known = sorted(s.store_id for s in storage.stores())
        if args.store not in known:
            shown = ", ".join(known[:10]) + (
                f" and {len(known) - 10} more" if len(known) > 10 else ""
            )
            print(
                f"report: store {args.store!r} has sent no summaries"
                + (f" (stores: {shown})" if known else " (the database has no stores yet)"),
                file=sys.stderr,
            )
            return 1
        try:
            doc = build_report(
                storage,
                args.store,
                args.from_day,
                args.to_day,
                timezone=args.timezone,
                with_quality=not args.no_quality,
            )
        except ValueError as exc:
            print(f"report: {exc}", file=sys.stderr)
            return EX_USAGE
    if args.json:
        emit_json(doc)
    elif args.csv:
        sys.stdout.write(report_csv(doc))
    else:
        sys.stdout.write(report_text(doc))
    return 0


# --- export ------------------------------------------------------------------------------------
def _export(args: argparse.Namespace) -> int:
    from central.export import ExportError, export

    if args.from_day and args.to_day and args.to_day < args.from_day:
        print("export: --to is before --from", file=sys.stderr)
        return EX_USAGE
    with _open(args, must_exist=True) as storage:
        try:
            files = export(
                storage,
                args.out,
                args.format,
                store_id=args.store,
                start=_day_start(args.from_day),
                end=_day_start(args.to_day + timedelta(days=1) if args.to_day else None),
            )
        except ExportError as exc:
            print(f"export: {exc}", file=sys.stderr)
            return 1
    doc = {"files": [{"table": f.table, "path": str(f.path), "rows": f.rows} for f in files]}
    if args.json:
        emit_json(doc)
    else:
        for f in files:
            print(f"{f.path}: {f.rows} rows", file=sys.stderr)
    return 0


# --- dashboard ---------------------------------------------------------------------------------
def _dashboard(args: argparse.Namespace) -> int:
    try:
        dashboard = importlib.import_module("central.dashboard")
    except ImportError as exc:
        print(f"dashboard: not available ({exc})", file=sys.stderr)
        return 1
    with _open(args, must_exist=True) as storage:
        try:
            dashboard.serve(storage, args.host, args.port)
        except OSError as exc:  # in use, not an address of this host, a name that won't resolve
            print(f"dashboard: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
    return 0


# --- check-config ------------------------------------------------------------------------------
def _check_config(args: argparse.Namespace) -> int:
    """Like the device's `footfall-agent check-config`: the issues (or `FILE: OK`) on stdout,
    or one JSON document of the same shape; exit 78 when invalid."""
    path = _config_path(args)
    if path is None:
        print(f"check-config: no --config and no {DEFAULT_CONFIG_PATH}", file=sys.stderr)
        return EX_CONFIG
    entry: dict[str, Any] = {"file": str(path), "valid": True, "errors": [], "notes": []}
    try:
        cfg = load_config(path, check=True)
    except CentralConfigError as exc:
        entry["valid"] = False
        entry["errors"] = [{"line": i.line, "key": i.key, "message": i.message} for i in exc.issues]
        if not args.json:
            for issue in exc.issues:
                print(issue)
    else:
        if systemd_credential(cfg):
            entry["notes"].append(
                f"mqtt.password_file {cfg.mqtt.password_file} is a systemd credential: it "
                "exists only while the unit runs, and serve checks it when it starts"
            )
        if not args.json:
            for note in entry["notes"]:
                print(f"{path}: note: {note}", file=sys.stderr)
            print(f"{path}: OK")
    if args.json:
        emit_json({"valid": entry["valid"], "files": [entry]})
    return 0 if entry["valid"] else EX_CONFIG


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="footfall-central",
        description="footfall central: MQTT ingest of store devices, retail analytics",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def db_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--db", help="storage URL: sqlite:///PATH.db or postgresql://...")
        p.add_argument("--config", type=Path, help="central YAML (its storage.url is used)")

    p = sub.add_parser("serve", help="ingest from the broker until SIGTERM")
    db_args(p)
    p.add_argument("--broker", help="HOST:PORT, overrides mqtt.host/port")
    p.add_argument("--client-id", help="MQTT client id (unique per instance)")
    p.add_argument("--group", help="shared-subscription group")
    p.add_argument(
        "--workers", type=int, help="ingest processes (overrides ingest.workers; 1 per core)"
    )
    p.add_argument("--json", action="store_true", help="print final stats as JSON on exit")
    p.set_defaults(func=_serve)

    p = sub.add_parser("check-config", help="validate the YAML and the files it names, offline")
    p.add_argument("--config", type=Path, help=f"central YAML (default {DEFAULT_CONFIG_PATH})")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=_check_config)

    p = sub.add_parser("import-pos", help="import POS transactions from a CSV export")
    p.add_argument("file", type=Path, help="CSV with store, timestamp, transaction_id, amount")
    db_args(p)
    p.add_argument("--timezone", type=_zone, help="IANA zone for timestamps without an offset")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=_import_pos)

    p = sub.add_parser("report", help="footfall, conversion, dwell, stock, data quality")
    p.add_argument("--store", required=True, help="store id")
    p.add_argument("--from", dest="from_day", required=True, type=_day,
                   help="first local date, YYYY-MM-DD")  # fmt: skip
    p.add_argument("--to", dest="to_day", required=True, type=_day,
                   help="last local date (inclusive), YYYY-MM-DD")  # fmt: skip
    p.add_argument("--timezone", type=_zone, help="override the store's IANA zone")
    p.add_argument("--no-quality", action="store_true", help="skip the data-quality checks")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON document on stdout")
    out.add_argument("--csv", action="store_true", help="hourly table as CSV on stdout")
    db_args(p)
    p.set_defaults(func=_report)

    p = sub.add_parser("export", help="tables as CSV or Parquet files for BI tools")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--store", help="only this store")
    p.add_argument("--from", dest="from_day", type=_day, help="first UTC date")
    p.add_argument("--to", dest="to_day", type=_day, help="last UTC date (inclusive)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    db_args(p)
    p.set_defaults(func=_export)

    p = sub.add_parser("dashboard", help="local web dashboard (loopback by default)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind")
    p.add_argument("--port", type=_port, default=8050, help="TCP port")
    db_args(p)
    p.set_defaults(func=_dashboard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func: Handler = args.func
    try:
        return func(args)
    except CentralConfigError as exc:
        print(exc, file=sys.stderr)
        return EX_CONFIG
    except StorageUrlError as exc:
        print(f"storage: {exc}", file=sys.stderr)
        return EX_USAGE
    except StorageUnavailableError as exc:
        print(f"storage: cannot open {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


__all__ = ["build_parser", "emit_json", "main"]
