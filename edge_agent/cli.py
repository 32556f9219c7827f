"""`footfall-agent`: the edge daemon and the technician tools.

Every command with --json prints exactly one JSON document on stdout; logs go to stderr.
Subcommands live in their own modules and register here through one explicit list.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from edge_agent import __version__
from edge_agent.config import DEFAULT_CONFIG_PATH
from edge_agent.config_report import EX_CONFIG, ConfigError, load_config, redacted_dump

Handler = Callable[[argparse.Namespace], int]


def emit_json(doc: Any) -> None:
    """Print one JSON document on stdout (the --json contract)."""
    sys.stdout.write(json.dumps(doc, default=str) + "\n")
    sys.stdout.flush()


def _check_config(args: argparse.Namespace) -> int:
    paths: list[Path] = args.paths or [DEFAULT_CONFIG_PATH]
    results: list[dict[str, Any]] = []
    ok = True
    for path in paths:
        try:
            cfg = load_config(path, check_resources=not args.no_resources)
        except ConfigError as exc:
            ok = False
            results.append(
                {
                    "file": str(path),
                    "valid": False,
                    "errors": [
                        {"line": i.line, "key": i.key, "message": i.message} for i in exc.issues
                    ],
                }
            )
            if not args.json:
                for issue in exc.issues:
                    print(issue)
            continue
        entry: dict[str, Any] = {"file": str(path), "valid": True, "errors": []}
        if args.show:
            entry["config"] = redacted_dump(cfg)
        results.append(entry)
        if not args.json:
            # With --show, stdout carries only the YAML so it can be piped to a file.
            print(f"{path}: OK", file=sys.stderr if args.show else sys.stdout)
            if args.show:
                print(yaml.safe_dump(redacted_dump(cfg), sort_keys=False), end="")
    if args.json:
        emit_json({"valid": ok, "files": results})
    return 0 if ok else EX_CONFIG


def _register_check_config(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "check-config",
        help="validate device configs without touching hardware (exit 78 when invalid)",
    )
    p.add_argument(
        "paths", nargs="*", type=Path, help=f"config files (default {DEFAULT_CONFIG_PATH})"
    )
    p.add_argument(
        "--show", action="store_true", help="print the effective config, secrets redacted"
    )
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument(
        "--no-resources",
        action="store_true",
        help="skip checks of referenced files (model hashes, TLS files)",
    )
    p.set_defaults(func=_check_config)


def build_parser() -> argparse.ArgumentParser:
    from edge_agent import cli_bench, cli_rfid, cli_run, cli_vision, demo

    parser = argparse.ArgumentParser(
        prog="footfall-agent",
        description="footfall edge agent: people counting and RFID stock events for a store",
    )
    parser.add_argument("--version", action="version", version=f"footfall-agent {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register_check_config(sub)
    for module in (cli_run, cli_vision, cli_bench, cli_rfid, demo):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func: Handler = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


__all__ = ["build_parser", "emit_json", "main"]
