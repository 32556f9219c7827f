"""A throwaway PKI for TLS tests against a real mosquitto (needs the openssl command)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> None:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=footfall-test-ca",
        cwd=d,
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl(
            "req",
            *ec,
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
            cwd=d,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            *(["-extfile", "san.ext"] if name == "server" else []),
            cwd=d,
        )


def broker_tls_conf(d: Path) -> list[str]:
    """mosquitto listener lines for the PKI in `d`: TLS with a required client certificate."""
    return [
        f"cafile {d}/ca.crt",
        f"certfile {d}/server.crt",
        f"keyfile {d}/server.key",
        "require_certificate true",
    ]


def client_tls(d: Path) -> dict[str, str]:
    """The `tls` section (edge or central config) of a client with the PKI's certificate."""
    return {
        "ca_file": str(d / "ca.crt"),
        "cert_file": str(d / "client.crt"),
        "key_file": str(d / "client.key"),
    }
