"""`footfall-agent demo`: the whole system on a simulated store, with a report against the truth.

Modules: floor_plan (the store and camera geometry), store_sim (shoppers, purchases, items
taken), truth (what really happened, measured like the counter), noisy_detections (truth ->
imperfect detector output), rfid_sim (a Chafon reader behind a pty), render (frames and clip),
broker (mosquitto or amqtt), run (the orchestration), report (central vs truth).
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date
from pathlib import Path

log = logging.getLogger(__name__)


def _positive(kind: type[float] | type[int]):  # type: ignore[no-untyped-def]
    def parse(text: str) -> float | int:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def _demo(args: argparse.Namespace) -> int:
    # Imported here so `footfall-agent --help` stays fast and the daemon never loads the demo.
    from edge_agent.cli import emit_json
    from edge_agent.demo import report
    from edge_agent.demo.broker import BrokerError
    from edge_agent.demo.run import DemoOptions, run_demo

    opts = DemoOptions(
        minutes=args.minutes,
        fps=args.fps,
        visitors=args.visitors,
        seed=args.seed,
        interval_s=args.interval_s,
        out_dir=args.out,
        broker=args.broker,
        video=not args.no_video,
        day=args.date,
    )
    if not args.json:
        print(
            f"SIMULATION: simulating {opts.minutes:g} min of a store (about "
            f"{opts.visitors:g} shoppers) through the real pipeline...",
            file=sys.stderr,
        )
    try:
        run = run_demo(opts)
    except BrokerError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 69  # EX_UNAVAILABLE
    doc = report.build(run)
    if args.json:
        emit_json(doc)
    else:
        sys.stdout.write(report.text(doc))
    return 0 if doc["messages"]["all_stored"] else 3


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `demo` subcommand to the CLI."""
    p = sub.add_parser(
        "demo",
        help="run a SIMULATED store through the real pipeline, broker and central; report vs truth",
        description=(
            "Simulates a store day (synthetic shoppers, noisy detections, an RFID shelf reader "
            "on a pseudo-terminal, till transactions) and runs it through the real tracker, "
            "counters, stock engine, aggregator, outbox, MQTT and central ingest, then prints "
            "central's report beside the simulated truth."
        ),
    )
    p.add_argument(
        "--minutes",
        type=_positive(float),
        default=20.0,
        help="simulated minutes the store day is compressed into (default 20)",
    )
    p.add_argument(
        "--visitors",
        type=_positive(float),
        default=110.0,
        help="expected shoppers over the day (default 110)",
    )
    p.add_argument(
        "--fps", type=_positive(float), default=10.0, help="camera frames/s (default 10)"
    )
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument(
        "--interval-s",
        type=int,
        default=60,
        choices=[10, 15, 20, 30, 60, 120, 300],
        help="aggregation interval in simulated seconds (default 60)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output directory (default: a new temp dir)"
    )
    p.add_argument(
        "--broker",
        choices=["auto", "mosquitto", "amqtt"],
        default="auto",
        help="MQTT broker: mosquitto if installed, else the embedded amqtt (default auto)",
    )
    p.add_argument("--no-video", action="store_true", help="skip the MP4 clip")
    p.add_argument(
        "--date",
        type=date.fromisoformat,
        default=None,
        help="simulated date YYYY-MM-DD (default yesterday)",
    )
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=_demo)


__all__ = ["register"]
