"""`footfall-agent run` (the daemon) and `footfall-agent doctor` (on-site checks).

``run --config PATH`` refuses an invalid config with the check-config lines on stderr and exit
78 (the unit's RestartPreventExitStatus). ``--until-sources-end`` runs file and image-directory
cameras to their end, flushes, waits up to ``--drain-timeout`` for delivery and prints one JSON
summary; exit 0 when everything was delivered, 3 otherwise.

Timestamps of file sources: a file is replayed as if it had started playing when the run
started (frame ts = run start + (frame number - 1) / fps). The summaries therefore land at real,
recent times (central's "today" views show them) and two replays of one file never produce two
summaries for the same moment.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import sqlite3
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from edge_agent.config import DEFAULT_CONFIG_PATH, AgentConfig
from edge_agent.config_report import EX_CONFIG, ConfigError, load_config

log = logging.getLogger(__name__)

EX_USAGE = 2
EX_UNDELIVERED = 3
EX_CANTCREAT = 73


def _load(path: Path) -> AgentConfig | None:
    try:
        return load_config(path, check_resources=True)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return None


def _run(args: argparse.Namespace) -> int:
    # Signals first: a SIGTERM while the config and the models load must still mean "stop
    # cleanly", not Python's default of dying on the spot.
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, on_signal)
    try:
        return _run_agent(args, stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run_agent(args: argparse.Namespace, stop: threading.Event) -> int:
    from edge_agent.app import Agent
    from edge_agent.cli import emit_json
    from vision.source import source_kind

    cfg = _load(args.config)
    if cfg is None:
        return EX_CONFIG
    if args.until_sources_end:
        live = [c.id for c in cfg.cameras if source_kind(c.source) == "live"]
        if live:
            print(
                f"--until-sources-end needs file or image-directory cameras; live: {live}",
                file=sys.stderr,
            )
            return EX_USAGE
    try:
        agent = Agent(cfg, mode="events" if args.until_sources_end else "wall", stop=stop)
    except (OSError, sqlite3.Error) as exc:
        print(f"cannot open the outbox {cfg.outbox.path}: {exc}", file=sys.stderr)
        return EX_CANTCREAT
    try:
        agent.start()
        agent.supervise(until_sources_end=args.until_sources_end)
    finally:
        if args.until_sources_end:
            agent.stop(args.drain_timeout, wait_for_broker=True)
        else:
            agent.stop()
    if args.until_sources_end:
        doc = agent.run_summary()
        emit_json(doc)
        return 0 if doc["delivered"] == doc["messages"] else EX_UNDELIVERED
    return 0


# -- doctor -------------------------------------------------------------------------------------

Check = tuple[str, bool, str]


def _tcp(host: str, port: int, timeout_s: float = 3.0) -> tuple[bool, str]:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True, f"{host}:{port} reachable"
    except OSError as exc:
        return False, f"{host}:{port}: {exc}"


def _camera_checks(cfg: AgentConfig) -> list[Check]:
    from urllib.parse import urlsplit

    from vision.models import ModelError, resolve_model
    from vision.source import source_kind

    out: list[Check] = []
    for cam in cfg.cameras:
        try:
            spec = resolve_model(cam.model)
            out.append((f"model {cam.id}", True, str(getattr(spec, "path", cam.model))))
        except ModelError as exc:
            out.append((f"model {cam.id}", False, str(exc)))
        src = str(cam.source)
        kind = source_kind(cam.source)
        if kind != "live":
            ok = Path(src).exists()
            out.append((f"camera {cam.id}", ok, f"{src} {'exists' if ok else 'not found'}"))
        elif src.startswith("/dev/video"):
            ok = Path(src).exists()
            out.append((f"camera {cam.id}", ok, f"{src} {'present' if ok else 'missing'}"))
        elif "://" in src:
            parts = urlsplit(src)
            default = {"rtsp": 554, "http": 80, "https": 443}.get(parts.scheme, 554)
            ok, detail = _tcp(parts.hostname or "", parts.port or default)
            out.append((f"camera {cam.id}", ok, detail))
        else:
            ok = Path(f"/dev/video{src}").exists()
            out.append(
                (f"camera {cam.id}", ok, f"/dev/video{src} {'present' if ok else 'missing'}")
            )
    return out


def _outbox_checks(cfg: AgentConfig) -> list[Check]:
    path = cfg.outbox.path
    out: list[Check] = []
    directory = path.parent
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if path.exists():
        try:
            # A write transaction opened and rolled back: works beside the running daemon (WAL).
            con = sqlite3.connect(str(path), timeout=5.0, isolation_level=None)
            con.execute("BEGIN IMMEDIATE")
            con.execute("ROLLBACK")
            con.close()
            out.append(("outbox writable", True, str(path)))
        except sqlite3.Error as exc:
            out.append(("outbox writable", False, f"{path}: {exc}"))
    else:
        ok = os.access(existing, os.W_OK)
        out.append(
            ("outbox writable", ok, f"{path} will be created" if ok else f"{existing} not writable")
        )
    usage = shutil.disk_usage(existing)
    ok = usage.free >= cfg.outbox.max_bytes
    out.append(
        (
            "disk space",
            ok,
            f"{usage.free / 2**20:.0f} MiB free for an outbox cap of "
            f"{cfg.outbox.max_bytes / 2**20:.0f} MiB",
        )
    )
    return out


def _doctor(args: argparse.Namespace) -> int:
    from edge_agent.cli import emit_json
    from edge_agent.sync import probe

    checks: list[Check] = []
    try:
        cfg: AgentConfig | None = load_config(args.config, check_resources=True)
        checks.append(("config", True, f"{args.config} valid"))
    except ConfigError as exc:
        cfg = None
        checks.extend(("config", False, str(i)) for i in exc.issues)
    if cfg is not None:
        steps: list[Callable[[AgentConfig], list[Check]]] = [_camera_checks, _outbox_checks]
        for step in steps:
            checks.extend(step(cfg))
        for rc in cfg.readers:
            if rc.is_network:
                checks.append((f"reader {rc.id}", *_tcp(rc.host or "", rc.tcp_port)))
                continue
            ok = Path(rc.serial_path).exists()
            checks.append((f"reader {rc.id}", ok, f"{rc.port} {'present' if ok else 'missing'}"))
        if cfg.mqtt.password_file is not None:
            try:
                cfg.mqtt.password_file.read_text()
                checks.append(("mqtt password", True, f"{cfg.mqtt.password_file} readable"))
            except OSError as exc:
                checks.append(("mqtt password", False, str(exc)))
        ok, detail = probe(cfg.mqtt, f"footfall-{cfg.store.id}-{cfg.device.id}-doctor")
        checks.append(("broker", ok, detail))
    all_ok = all(ok for _, ok, _ in checks)
    if args.json:
        emit_json(
            {"ok": all_ok, "checks": [{"name": n, "ok": ok, "detail": d} for n, ok, d in checks]}
        )
    else:
        for name, ok, detail in checks:
            print(f"{'OK  ' if ok else 'FAIL'} {name}: {detail}")
    return 0 if all_ok else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `run` and `doctor` to the CLI."""
    p = sub.add_parser("run", help="run the edge daemon (exit 78 on an invalid config)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="device config (YAML)")
    p.add_argument(
        "--until-sources-end",
        action="store_true",
        help="file/image-directory cameras: stop when all ended, print one JSON summary",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="with --until-sources-end: seconds to wait for delivery before exit 3",
    )
    p.set_defaults(func=_run)
    d = sub.add_parser(
        "doctor",
        help="check config, model files, devices, broker, outbox and disk (one line each)",
    )
    d.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="device config (YAML)")
    d.add_argument("--json", action="store_true", help="one JSON document on stdout")
    d.set_defaults(func=_doctor)


__all__ = ["register"]
