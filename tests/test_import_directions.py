"""The architecture in one test: libraries stay pure, central sees only the wire format,
and only one module imports paho."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("edge_agent", "vision", "rfid", "central")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def files(pkg: str) -> list[Path]:
    return sorted((REPO / pkg).rglob("*.py"))


def test_packages_exist() -> None:
    for pkg in PACKAGES:
        assert files(pkg), pkg


def test_libraries_do_not_import_the_application_or_io_stacks() -> None:
    forbidden = ("edge_agent", "central", "paho", "sqlite3", "threading", "psycopg")
    for pkg in ("vision", "rfid"):
        for f in files(pkg):
            bad = {m for m in imports_of(f) if m.split(".")[0] in forbidden}
            assert not bad, f"{f.relative_to(REPO)} imports {bad}"


def test_vision_and_rfid_are_independent() -> None:
    for pkg, other in (("vision", "rfid"), ("rfid", "vision")):
        for f in files(pkg):
            bad = {m for m in imports_of(f) if m.split(".")[0] == other}
            assert not bad, f"{f.relative_to(REPO)} imports {bad}"


def test_central_imports_only_the_wire_format_from_the_edge() -> None:
    for f in files("central"):
        for m in imports_of(f):
            top = m.split(".")[0]
            assert top not in ("vision", "rfid"), f"{f.relative_to(REPO)} imports {m}"
            if top == "edge_agent":
                assert m in ("edge_agent", "edge_agent.wire") or m.startswith("edge_agent.wire."), (
                    f"{f.relative_to(REPO)} imports {m}"
                )


def test_only_one_module_imports_paho() -> None:
    # The edge's sync module. Central speaks MQTT through its own subscriber
    # (central/subscriber.py: bulk reads and batched acks, which paho's per-message path
    # could not do fast enough), so it must not pull paho back in.
    importers = sorted(
        f.relative_to(REPO).as_posix()
        for pkg in ("edge_agent", "vision", "rfid", "central")
        for f in files(pkg)
        if any(m.split(".")[0] == "paho" for m in imports_of(f))
    )
    assert importers == ["edge_agent/sync.py"]


def test_daemon_never_imports_heavy_extras() -> None:
    heavy = ("torch", "ultralytics", "supervision", "pyarrow", "amqtt")
    for pkg in ("edge_agent", "vision", "rfid"):
        for f in files(pkg):
            if f.name == "demo.py" or "demo" in f.parts:
                continue  # the demo may start an embedded broker when mosquitto is absent
            bad = {m for m in imports_of(f) if m.split(".")[0] in heavy}
            assert not bad, f"{f.relative_to(REPO)} imports {bad}"
