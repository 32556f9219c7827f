"""A local TCP proxy the test controls: forward, drop every connection, or stall them.

It stands in for the network between a store and its broker (a cut cable, a dead NAT entry,
a Wi-Fi link that still accepts packets but delivers none).
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from typing import Literal

from tests.mosquitto import free_port

Mode = Literal["forward", "drop", "stall"]


class TcpProxy:
    def __init__(self, target_port: int, listen_port: int | None = None) -> None:
        self.target_port = target_port
        self.port = listen_port or free_port()
        self.mode: Mode = "forward"
        self._lock = threading.Lock()
        self._conns: list[tuple[socket.socket, socket.socket]] = []
        self._stop = threading.Event()
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", self.port))
        self._srv.listen(16)
        self._srv.settimeout(0.1)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def set_mode(self, mode: Mode) -> None:
        """`drop` closes every open connection and refuses new ones (RST-like); `stall`
        keeps connections open but forwards nothing in either direction."""
        with self._lock:
            self.mode = mode
            if mode == "drop":
                for a, b in self._conns:
                    for s in (a, b):
                        with contextlib.suppress(OSError):
                            s.shutdown(socket.SHUT_RDWR)
                        s.close()
                self._conns.clear()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                if self.mode == "drop":
                    client.close()
                    continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while not self._stop.is_set():
                try:
                    ready, _, _ = select.select([a, b], [], [], 0.1)
                except (OSError, ValueError):
                    return
                if self.mode == "stall":
                    continue  # data waits in the kernel buffers: nothing arrives anywhere
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    peers[s].sendall(data)
        except OSError:
            return
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()
            with self._lock:
                if (a, b) in self._conns:
                    self._conns.remove((a, b))

    def close(self) -> None:
        self._stop.set()
        self.set_mode("drop")
        self._srv.close()
