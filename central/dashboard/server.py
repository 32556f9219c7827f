"""The dashboard's HTTP server: three static files and the JSON API, standard library only.

Loopback by default. On a loopback address it also refuses requests whose ``Host`` header is
not a loopback name, so a web page elsewhere cannot reach it through DNS rebinding. Requests
run on their own threads; the storage is not thread-safe, so API calls take turns on a lock.
`serve` stops on SIGINT or SIGTERM (systemd's stop) and returns, so the caller closes storage.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import signal
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from central.dashboard import api
from central.storage.base import Storage, redact_url

log = logging.getLogger(__name__)

STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


def _static(name: str) -> bytes:
    return resources.files("central.dashboard").joinpath(name).read_bytes()


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        storage: Storage,
        *,
        now: Callable[[], datetime] | None = None,
        db_label: str | None = None,
    ) -> None:
        self.storage = storage
        self.lock = threading.Lock()
        self.closed = False  # set under `lock` once serving has stopped: storage may be closed
        # Responses by class: refused requests (bad dates, unknown stores, foreign Host
        # headers) are bad input like any other, counted and shown at /api/health.
        self.counts = {"requests": 0, "client_errors": 0, "server_errors": 0}
        self._counts_lock = threading.Lock()
        self.now = now or (lambda: datetime.now(UTC))
        self.db_label = db_label if db_label is not None else redact_url(storage.url)
        host = address[0].strip("[]")
        self.loopback = _is_loopback(host)
        # ThreadingHTTPServer is IPv4 unless told otherwise: take the family of the address
        # (so --host ::1 works); a name that does not resolve raises socket.gaierror here.
        family = socket.getaddrinfo(host or None, address[1], type=socket.SOCK_STREAM,
                                    flags=socket.AI_PASSIVE)[0][0]  # fmt: skip
        self.address_family = family
        super().__init__((host, address[1]), DashboardHandler)

    def count(self, status: int) -> None:
        with self._counts_lock:
            self.counts["requests"] += 1
            if 400 <= status < 500:
                self.counts["client_errors"] += 1
            elif status >= 500:
                self.counts["server_errors"] += 1

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DashboardHandler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "footfall-central"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _host_ok(self) -> bool:
        if not self.server.loopback:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in LOOPBACK_NAMES

    def _send(self, status: int, body: bytes, content_type: str, *, cache: bool = False) -> None:
        self.server.count(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=60" if cache else "no-store")
        for key, value in SECURITY_HEADERS.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, doc: Any) -> None:
        body = json.dumps(doc, default=str, allow_nan=False).encode()
        self._send(status, body, "application/json")

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._host_ok():
            self._json(HTTPStatus.MISDIRECTED_REQUEST, {"error": "unexpected Host header"})
            return
        parts = urlsplit(self.path)
        if parts.path in STATIC:
            name, ctype = STATIC[parts.path]
            self._send(HTTPStatus.OK, _static(name), ctype, cache=True)
            return
        if not parts.path.startswith("/api/"):
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        name = parts.path.removeprefix("/api/")
        if name == "health":
            with self.server._counts_lock:
                counts = dict(self.server.counts)
            self._json(HTTPStatus.OK, {"ok": not self.server.closed, **counts})
            return
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            with self.server.lock:
                if self.server.closed:
                    self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "shutting down"})
                    return
                doc = api.handle(self.server.storage, name, params, self.server.now())
            if name == "stores":
                doc["db"] = self.server.db_label
        except api.ApiError as exc:
            self._json(exc.status, {"error": exc.message})
            return
        except Exception:
            log.exception("dashboard API %s failed", name)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error (see log)"})
            return
        self._json(HTTPStatus.OK, doc)


def make_server(
    storage: Storage,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    now: Callable[[], datetime] | None = None,
) -> DashboardServer:
    """A bound, not yet serving dashboard server (port 0 picks a free port: see ``.url``)."""
    return DashboardServer((host, port), storage, now=now)


def serve(
    storage: Storage,
    host: str = "127.0.0.1",
    port: int = 8050,
    *,
    now: Callable[[], datetime] | None = None,
) -> None:
    """Serve the dashboard until Ctrl-C or SIGTERM; returns once no request uses `storage`."""
    server = make_server(storage, host, port, now=now)
    if not server.loopback:
        log.warning("dashboard listening on %s: reachable from the network, no login", host)
    log.info("dashboard on %s", server.url)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        # The handler runs on the thread inside serve_forever, and shutdown() waits for
        # serve_forever to return: called here it would deadlock.
        threading.Thread(target=server.shutdown, name="dashboard-stop", daemon=True).start()

    # Python only lets the main thread install handlers (an embedding caller may not be it).
    installed = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if installed else None
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        log.info("interrupted: stopping")
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        server.server_close()
        # Request threads are daemons and outlive serve_forever: wait for one that is inside
        # the storage, and turn later ones away, before the caller closes it.
        with server.lock:
            server.closed = True
        log.info("dashboard stopped: %s", ", ".join(f"{v} {k}" for k, v in server.counts.items()))


__all__ = ["DashboardServer", "make_server", "serve"]
