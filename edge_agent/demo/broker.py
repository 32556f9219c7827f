"""A local MQTT broker for the demo: mosquitto when installed, otherwise amqtt (pure Python).

The broker runs as a child process on a free loopback port and is stopped with the demo. The
amqtt fallback (the `broker` extra) speaks MQTT 3.1.1 only, and has no shared subscriptions,
so the demo tells its MQTT clients which protocol to use through `Broker.mqtt_protocol`, and
central whether it may subscribe as a group through `Broker.shared_subscriptions`.

`python -m edge_agent.demo.broker PORT` runs the amqtt broker in the foreground (that is how
the demo starts it, so a crash of the broker cannot take the demo process down).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

BrokerKind = Literal["mosquitto", "amqtt"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str | None:
    for candidate in (
        shutil.which("mosquitto"),
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def amqtt_available() -> bool:
    try:
        import amqtt.broker  # noqa: F401
    except ImportError:
        return False
    return True


class BrokerError(RuntimeError):
    pass


@dataclass(slots=True)
class Broker:
    kind: BrokerKind
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    host: str = "127.0.0.1"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def mqtt_protocol(self) -> Literal["5", "3.1.1"]:
        return "5" if self.kind == "mosquitto" else "3.1.1"

    @property
    def shared_subscriptions(self) -> bool:
        return self.kind == "mosquitto"

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _wait_listening(
    proc: subprocess.Popen[bytes], port: int, log_path: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise BrokerError(f"broker exited with {proc.returncode}: {tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise BrokerError(f"broker did not listen on 127.0.0.1:{port} within {timeout_s:g}s")


def _start_mosquitto(binary: str, workdir: Path, timeout_s: float) -> Broker:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    log_path = workdir / "mosquitto.log"
    conf.write_text(
        "\n".join(
            [
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                "persistence false",
                "max_queued_messages 100000",
                "log_type error",
                "log_type warning",
                f"log_dest file {log_path}",
            ]
        )
        + "\n"
    )
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_listening(proc, port, log_path, timeout_s)
    return Broker("mosquitto", port, proc, log_path, extra={"binary": binary})


def _start_amqtt(workdir: Path, timeout_s: float) -> Broker:
    port = free_port()
    log_path = workdir / "amqtt.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge_agent.demo.broker", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    _wait_listening(proc, port, log_path, timeout_s)
    return Broker("amqtt", port, proc, log_path)


def start_broker(
    workdir: Path, prefer: Literal["auto", "mosquitto", "amqtt"] = "auto", timeout_s: float = 15.0
) -> Broker:
    """Start a broker on a free loopback port; raise BrokerError with the reason if none can."""
    workdir.mkdir(parents=True, exist_ok=True)
    binary = mosquitto_binary()
    if prefer in ("auto", "mosquitto") and binary is not None:
        return _start_mosquitto(binary, workdir, timeout_s)
    if prefer == "mosquitto":
        raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
    if not amqtt_available():
        raise BrokerError(
            "no MQTT broker: install mosquitto, or the embedded one with "
            "`pip install 'footfall[broker]'` (amqtt)"
        )
    return _start_amqtt(workdir, timeout_s)


async def _serve_amqtt(port: int) -> None:
    from amqtt.broker import Broker as AmqttBroker

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = AmqttBroker(config)
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await broker.shutdown()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m edge_agent.demo.broker PORT", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_serve_amqtt(int(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "Broker",
    "BrokerError",
    "amqtt_available",
    "free_port",
    "mosquitto_binary",
    "start_broker",
]
