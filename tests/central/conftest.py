"""Central test fixtures: a throwaway PostgreSQL cluster for the session, and a storage
fixture parametrised over SQLite and PostgreSQL so both backends run the same tests.

The cluster is initdb'd into a temporary directory and started with pg_ctl on a free port
(unix socket in the same directory); it never touches a server already running on the machine.
initdb refuses to run as root, so as root the cluster is owned by and run as `postgres`.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from central.storage import Storage, open_storage
from tests.mosquitto import free_port


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _unavailable(msg: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


class PgCluster:
    def __init__(self, durable: bool = False, root: Path | None = None) -> None:
        """`durable=False` (tests) turns fsync off; benchmarks keep PostgreSQL's defaults.
        `root`: keep the cluster in this directory (created on first start, reused after)
        instead of a new temporary one; `halt()` it rather than `stop()` to keep it."""
        self.durable = durable
        self.bin = _pg_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="footfall-pg-"))
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.data = self.root / "data"
        self.port = free_port()
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._prefix = ["runuser", "-u", "postgres", "--"]
        self._counter = itertools.count()

    def _run(self, *args: str) -> None:
        proc = subprocess.run(
            [*self._prefix, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {proc.stderr or proc.stdout}")

    def start(self) -> PgCluster:
        assert self.bin is not None
        if not self.data.exists():
            self._run(
                str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C",
            )  # fmt: skip
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=50"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "pg.log"),
            "-o", opts, "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def halt(self) -> None:
        """Stop the server (fast shutdown) but keep its data: `start()` brings it back."""
        assert self.bin is not None
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        import psycopg

        name = f"footfall_test_{os.getpid()}_{next(self._counter)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        assert self.bin is not None
        subprocess.run(
            [
                *self._prefix,
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    try:
        cluster = PgCluster().start()
    except (RuntimeError, OSError, KeyError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"cannot start a throwaway PostgreSQL cluster: {exc}")
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'central.db'}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.new_database()


@pytest.fixture()
def storage(storage_url: str) -> Iterator[Storage]:
    st = open_storage(storage_url)
    yield st
    st.close()
