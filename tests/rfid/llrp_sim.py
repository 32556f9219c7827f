"""A fake LLRP reader: a real TCP server on 127.0.0.1 speaking the binary protocol (no radio).

Each accepted connection is greeted with a READER_EVENT_NOTIFICATION whose
ConnectionAttemptEvent carries `greeting_status` (0 = success; None sends no greeting). Every
client request is answered with its response type and the request's message ID, with a
success LLRPStatus unless `reject` maps the request type to an error code. CLOSE_CONNECTION is
answered, then the connection is closed. The test pushes reader traffic with `send` (reports,
keepalives, garbage, cut messages) and cuts the link with `drop`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from rfid.protocols import llrp

RESPONSES = {
    llrp.GET_READER_CAPABILITIES: llrp.GET_READER_CAPABILITIES_RESPONSE,
    llrp.SET_READER_CONFIG: llrp.SET_READER_CONFIG_RESPONSE,
    llrp.CLOSE_CONNECTION: llrp.CLOSE_CONNECTION_RESPONSE,
    llrp.ADD_ROSPEC: llrp.ADD_ROSPEC_RESPONSE,
    llrp.DELETE_ROSPEC: llrp.DELETE_ROSPEC_RESPONSE,
    llrp.START_ROSPEC: llrp.START_ROSPEC_RESPONSE,
    llrp.STOP_ROSPEC: llrp.STOP_ROSPEC_RESPONSE,
    llrp.ENABLE_ROSPEC: llrp.ENABLE_ROSPEC_RESPONSE,
}


class FakeLlrpReader:
    def __init__(
        self,
        *,
        greeting_status: int | None = 0,
        reject: dict[int, int] | None = None,
    ):
        self.greeting_status = greeting_status
        self.reject = dict(reject or {})
        self.received: list[llrp.LlrpMessage] = []
        self.connections = 0
        self.running = threading.Event()  # START_ROSPEC answered on the current connection
        self.client_closed = threading.Event()  # CLOSE_CONNECTION received
        self.port = 0
        self._conn: socket.socket | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._msg_id = 1000
        self._srv: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.go_online()

    def go_online(self) -> None:
        """Listen (again, on the same port): the reader is powered and on the network."""
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(4)
        srv.settimeout(0.1)
        self.port = srv.getsockname()[1]
        self._srv = srv
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, args=(srv,), daemon=True)
        self._thread.start()

    def go_offline(self) -> None:
        """Cut the link and stop listening: connection attempts are refused until go_online."""
        self._stop.set()
        self.drop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._srv is not None:
            self._srv.close()
        self._srv = None

    # --- what the test does ------------------------------------------------------------------

    def next_id(self) -> int:
        self._msg_id += 1
        return self._msg_id

    def send(self, data: bytes) -> bool:
        """Write to the current connection; False if there is none."""
        with self._lock:
            conn = self._conn
            if conn is None:
                return False
            try:
                conn.sendall(data)
            except OSError:
                return False
            return True

    def drop(self) -> None:
        """Cut the current connection (a pulled network cable or a reader reboot)."""
        with self._lock:
            conn, self._conn = self._conn, None
            self.running.clear()
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def received_types(self) -> list[int]:
        with self._lock:
            return [m.msg_type for m in self.received]

    def wait_for(self, msg_type: int, count: int = 1, timeout_s: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.received_types().count(msg_type) >= count:
                return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        self.go_offline()

    # --- the reader's side --------------------------------------------------------------------

    def _serve(self, srv: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(0.1)
            with self._lock:
                self._conn = conn
                self.connections += 1
                self.running.clear()
            if self.greeting_status is not None:
                self.send(
                    llrp.build_reader_event(
                        self.next_id(), 1_750_000_000_000_000, self.greeting_status
                    )
                )
            self._talk(conn)

    def _talk(self, conn: socket.socket) -> None:
        parser = llrp.LlrpParser("fake-reader")
        while not self._stop.is_set():
            with self._lock:
                if self._conn is not conn:
                    return
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            parser.feed(data, time.time())
            for msg in parser.take_control():
                with self._lock:
                    self.received.append(msg)
                if not self._answer(msg):
                    self.drop()
                    return
        with self._lock:
            if self._conn is conn:
                self._conn = None
        conn.close()

    def _answer(self, msg: llrp.LlrpMessage) -> bool:
        """Answer one client message; False when the connection ends here."""
        response = RESPONSES.get(msg.msg_type)
        if response is None:
            return True  # KEEPALIVE_ACK and the like: nothing to say
        code = self.reject.get(msg.msg_type, 0)
        text = "" if code == 0 else f"{llrp.MESSAGE_NAMES[msg.msg_type]} not accepted"
        self.send(llrp.build_response(response, msg.msg_id, code, text))
        if msg.msg_type == llrp.START_ROSPEC and code == 0:
            self.running.set()
        if msg.msg_type == llrp.CLOSE_CONNECTION:
            self.client_closed.set()
            return False
        return True
