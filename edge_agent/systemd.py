"""sd_notify over $NOTIFY_SOCKET, standard library only.

systemd supervises the agent (``Type=notify``): READY=1 once the devices are open, WATCHDOG=1
only while every worker's heartbeat is fresh (so a hung thread gets the unit restarted),
STOPPING=1 when shutdown begins, STATUS=... a one-line health summary for ``systemctl status``.
Outside systemd (no NOTIFY_SOCKET) every call is a cheap no-op.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(*assignments: str) -> bool:
    """Send `KEY=value` lines to the service manager; False when not under systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    # An abstract-namespace socket is written with a leading '@'.
    target = "\0" + addr[1:] if addr.startswith("@") else addr
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(target)
            sock.sendall("\n".join(assignments).encode())
    except OSError as exc:
        log.debug("sd_notify failed: %s", exc)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """WatchdogSec of the unit in seconds, when the watchdog is enabled for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


def ready(status: str = "") -> bool:
    return notify("READY=1", *([f"STATUS={status}"] if status else []))


def watchdog() -> bool:
    return notify("WATCHDOG=1")


def stopping(status: str = "") -> bool:
    return notify("STOPPING=1", *([f"STATUS={status}"] if status else []))


def status(text: str) -> bool:
    return notify(f"STATUS={text}")


__all__ = ["notify", "ready", "status", "stopping", "watchdog", "watchdog_interval_s"]
