"""What an operator's mistake gets from `footfall-central`: one line naming the mistake and an
exit code a script or systemd can act on (2 usage, 69 storage unavailable, 78 bad config),
never a traceback and never an empty database that looks like a store with no data."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

import central.cli as cli
from central.cli import main
from central.storage import open_storage
from tests.central.test_report import seed_ny


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        rc = main(list(argv))
    except SystemExit as exc:  # argparse's own usage errors
        rc = int(exc.code or 0)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_report_on_a_missing_database_file_does_not_create_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "typo" / "central.db"
    rc, _, err = run(capsys, "report", "--store", "s1", "--from", "2026-11-01", "--to",
                     "2026-11-01", "--db", f"sqlite://{db}")  # fmt: skip
    assert rc == 69
    assert f"storage: cannot open sqlite://{db}: no such database file" in err
    assert not db.exists() and not db.parent.exists()
    for argv in (["export", "--out", str(tmp_path / "x")], ["dashboard", "--port", "0"]):
        rc, _, err = run(capsys, *argv, "--db", f"sqlite://{db}")
        assert rc == 69 and "no such database file" in err
    assert not db.parent.exists()


def test_report_on_an_unknown_store_fails_and_names_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite://{tmp_path / 'c.db'}"
    with open_storage(url) as st:
        seed_ny(st)
    rc, out, err = run(capsys, "report", "--store", "s2", "--from", "2026-11-01", "--to",
                       "2026-11-01", "--db", url, "--json")  # fmt: skip
    assert rc == 1 and out == ""
    assert "report: store 's2' has sent no summaries (stores: s1)" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "--store", "s1", "--from", "2026-11-01", "--to", "2026-11-02",
          "--timezone", "Europe/Berln"], "unknown IANA time zone 'Europe/Berln'"),
        (["report", "--store", "s1", "--from", "0001-01-01", "--to", "2026-11-02"],
         "0001-01-01 is outside 1970-01-01..2099-12-31"),
        (["report", "--store", "s1", "--from", "2026-11-01", "--to", "9999-12-31"],
         "9999-12-31 is outside"),
        (["report", "--store", "s1", "--from", "2026-13-01", "--to", "2026-11-02"],
         "'2026-13-01' is not a date (YYYY-MM-DD)"),
        (["export", "--out", "x", "--to", "9999-12-31"], "9999-12-31 is outside"),
        (["import-pos", "x.csv", "--timezone", "Mars/Base"], "unknown IANA time zone"),
        (["dashboard", "--port", "70000"], "'70000' is not a TCP port"),
    ],
)  # fmt: skip
def test_bad_arguments_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = run(capsys, *argv)
    assert rc == 2
    assert message in err
    assert "Traceback" not in err


def test_ranges_backwards_or_too_long_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite://{tmp_path / 'c.db'}"
    with open_storage(url) as st:
        seed_ny(st)
    rc, _, err = run(capsys, "export", "--out", str(tmp_path / "out"), "--from", "2026-11-05",
                     "--to", "2026-11-01", "--db", url)  # fmt: skip
    assert (rc, err.strip()) == (2, "export: --to is before --from")
    assert not (tmp_path / "out").exists()
    rc, _, err = run(capsys, "report", "--store", "s1", "--from", "2000-01-01", "--to",
                     "2026-11-01", "--db", url)  # fmt: skip
    assert rc == 2 and "at most 1100 days per report" in err


def test_dashboard_port_in_use_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite://{tmp_path / 'c.db'}"
    open_storage(url).close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc, _, err = run(capsys, "dashboard", "--port", str(port), "--db", url)
    assert rc == 1
    assert err.startswith(f"dashboard: cannot listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in err


def test_dashboard_binds_ipv6_loopback(tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")
    from central.dashboard.server import make_server

    with open_storage(f"sqlite://{tmp_path / 'c.db'}") as st:
        server = make_server(st, "::1", 0)
        try:
            assert server.loopback
            assert server.url.startswith("http://[::1]:")
        finally:
            server.server_close()


def test_serve_option_errors_name_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite://{tmp_path / 'c.db'}"
    rc, _, err = run(capsys, "serve", "--workers", "0", "--db", db)
    assert (rc, err.strip()) == (2, "serve: --workers: Input should be greater than or equal to 1")
    rc, _, err = run(capsys, "serve", "--group", "a/b", "--db", db)
    assert rc == 2 and err.startswith("serve: --group: String should match pattern")


def test_serve_reads_storage_url_from_the_default_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --config, the default /etc/footfall/central.yaml is read by every command,
    its storage.url included (serve used to ingest into the default SQLite file instead)."""
    cfg = tmp_path / "central.yaml"
    cfg.write_text(f"storage:\n  url: sqlite://{tmp_path / 'from-config.db'}\n")
    monkeypatch.setattr(cli, "DEFAULT_CONFIG_PATH", cfg)
    monkeypatch.delenv("FOOTFALL_CENTRAL_DB", raising=False)
    args = cli.build_parser().parse_args(["report", "--store", "s", "--from", "2026-01-01",
                                          "--to", "2026-01-01"])  # fmt: skip
    assert cli._storage_url(args, cli._load(args)) == f"sqlite://{tmp_path / 'from-config.db'}"
    args = cli.build_parser().parse_args(["serve"])
    assert cli._storage_url(args, cli._load(args)) == f"sqlite://{tmp_path / 'from-config.db'}"
    args = cli.build_parser().parse_args(["serve", "--db", "sqlite:///x.db"])
    assert cli._storage_url(args, cli._load(args)) == "sqlite:///x.db"


def test_storage_unavailable_is_one_line_with_the_password_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"postgresql://u:secret@127.0.0.1:{port}/x?connect_timeout=3"
    rc, _, err = run(capsys, "report", "--store", "s1", "--from", "2026-11-01", "--to",
                     "2026-11-01", "--db", url)  # fmt: skip
    assert rc == 69
    assert err.startswith(f"storage: cannot open postgresql://u:***@127.0.0.1:{port}/x")
    assert "secret" not in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_check_config_reports_file_line_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "central.yaml"
    cfg.write_text("mqtt:\n  host: broker\n  port: 99999\n  bogus: 1\n")
    rc, out, _ = run(capsys, "check-config", "--config", str(cfg))
    assert rc == 78
    assert out.strip().splitlines() == [
        f"{cfg}:3 mqtt.port: Input should be less than or equal to 65535",
        f"{cfg}:4 mqtt.bogus: unknown key (check spelling and indentation)",
    ]
    # YAML reads `yes` as true, and pydantic would take true as 1 worker.
    cfg.write_text("mqtt:\n  host: broker\ningest:\n  workers: yes\n")
    rc, out, _ = run(capsys, "check-config", "--config", str(cfg))
    assert rc == 78
    assert out.startswith(f"{cfg}:4 ingest.workers: expected a number, got a YAML boolean")
    cfg.write_text(f"mqtt:\n  tls:\n    ca_file: {tmp_path / 'missing-ca.pem'}\n")
    rc, out, _ = run(capsys, "check-config", "--config", str(cfg))
    assert rc == 78
    assert out.strip() == (
        f"{cfg}:3 mqtt.tls.ca_file: file {tmp_path / 'missing-ca.pem'} not found"
    )
    cfg.write_text("mqtt:\n  host: broker\n    port: 1\n")
    rc, out, _ = run(capsys, "check-config", "--config", str(cfg))
    assert rc == 78 and out.startswith(f"{cfg}:3 <yaml>: YAML syntax error")
    # --json: one document, the device's shape, also when the file is invalid.
    rc, out, _ = run(capsys, "check-config", "--config", str(cfg), "--json")
    doc = json.loads(out)
    assert rc == 78 and doc["valid"] is False
    assert doc["files"][0]["errors"][0]["line"] == 3
    assert doc["files"][0]["errors"][0]["key"] == "<yaml>"


def test_password_file_relative_to_the_systemd_credentials_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A templated unit's credentials live in /run/credentials/footfall-central@N.service/:
    a relative password_file names the credential, wherever systemd put it."""
    cfg = tmp_path / "central.yaml"
    cfg.write_text("mqtt:\n  username: central\n  password_file: mqtt-password\n")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    rc, out, err = run(capsys, "check-config", "--config", str(cfg), "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["valid"] and "systemd credential" in doc["files"][0]["notes"][0]
    creds = tmp_path / "creds"
    creds.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    rc, out, _ = run(capsys, "check-config", "--config", str(cfg))
    assert rc == 78
    assert out.strip() == f"{cfg}:3 mqtt.password_file: file {creds / 'mqtt-password'} not found"
    (creds / "mqtt-password").write_text("s3cret\n")
    rc, out, _ = run(capsys, "check-config", "--config", str(cfg))
    assert (rc, out.strip()) == (0, f"{cfg}: OK")
    from central.config import load_config

    assert load_config(cfg).mqtt.password() == "s3cret"


def test_serve_with_a_missing_tls_file_exits_78_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "central.yaml"
    cfg.write_text(f"mqtt:\n  tls:\n    ca_file: {tmp_path / 'ca.pem'}\n")
    rc, _, err = run(capsys, "serve", "--config", str(cfg), "--db", f"sqlite://{tmp_path / 'c.db'}")
    assert rc == 78
    assert err.strip() == f"{cfg}:3 mqtt.tls.ca_file: file {tmp_path / 'ca.pem'} not found"


def test_serve_checks_a_relative_password_file_outside_systemd(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside systemd a relative password_file is read from the working directory, so serve
    checks it there at start instead of retrying a login forever."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "central.yaml"
    cfg.write_text("mqtt:\n  username: central\n  password_file: no-such-file\n")
    rc, _, err = run(capsys, "serve", "--config", str(cfg), "--db", f"sqlite://{tmp_path / 'c.db'}")
    assert rc == 78
    assert err.strip() == f"{cfg}:3 mqtt.password_file: file no-such-file not found"


def test_serve_workers_option_against_a_plain_subscription_names_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "central.yaml"
    cfg.write_text("mqtt:\n  protocol: '3.1.1'\n  shared_subscription: false\n")
    rc, _, err = run(capsys, "serve", "--config", str(cfg), "--workers", "2",
                     "--db", f"sqlite://{tmp_path / 'c.db'}")  # fmt: skip
    assert rc == 2
    assert err.startswith("serve: --workers: ingest.workers above 1 needs mqtt.shared_subscription")


def test_default_config_without_storage_keeps_the_environment_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env_db = f"sqlite://{tmp_path / 'env.db'}"
    with open_storage(env_db) as st:
        seed_ny(st)
    default = tmp_path / "central.yaml"
    default.write_text("mqtt:\n  host: broker\n")
    monkeypatch.setattr(cli, "DEFAULT_CONFIG_PATH", default)
    monkeypatch.setenv("FOOTFALL_CENTRAL_DB", env_db)
    rc, out, err = run(capsys, "report", "--store", "s1", "--from", "2026-11-01", "--to",
                       "2026-11-01", "--json")  # fmt: skip
    assert rc == 0, err
    assert json.loads(out)["footfall"]["total_in"] == 66


def test_an_empty_or_broken_default_config_does_not_stop_commands_given_db(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite://{tmp_path / 'c.db'}"
    with open_storage(url) as st:
        seed_ny(st)
    default = tmp_path / "central.yaml"
    monkeypatch.setattr(cli, "DEFAULT_CONFIG_PATH", default)
    monkeypatch.setenv("FOOTFALL_CENTRAL_DB", url)
    argv = ["report", "--store", "s1", "--from", "2026-11-01", "--to", "2026-11-01", "--json"]
    default.write_text("# placeholder: every default\n")  # a comments-only file means defaults
    rc, _, err = run(capsys, *argv)
    assert rc == 0, err
    default.write_text("mqtt: [broken\n")
    rc, _, err = run(capsys, *argv)
    assert rc == 78 and "YAML syntax error" in err  # without --db the file names the storage
    rc, _, err = run(capsys, *argv, "--db", url)
    assert rc == 0, err  # with --db it is not read
