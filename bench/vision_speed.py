"""Vision speed and memory: `footfall-agent bench` over models and settings, repeated.

Runs each configuration several times, interleaved (so load from other processes on the machine
spreads over all of them), and prints one JSON document with the medians plus a markdown table
for BENCHMARKS.md.

    FOOTFALL_MODELS_DIR=../shared/models .venv/bin/python bench/vision_speed.py \
        --frames ../shared/data/footage/PETS09-S2L1/img1 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# (label, extra bench arguments)
CONFIGS: list[tuple[str, list[str]]] = [
    ("yolox_nano, gating off", ["--model", "yolox_nano", "--no-motion"]),
    (
        "yolox_nano, gating off, no prefetch",
        ["--model", "yolox_nano", "--no-motion", "--no-prefetch"],
    ),
    (
        "yolox_nano, gating off, full decode",
        ["--model", "yolox_nano", "--no-motion", "--full-decode"],
    ),
    (
        "yolox_nano, gating off, 1 thread",
        ["--model", "yolox_nano", "--no-motion", "--threads", "1"],
    ),
    (
        "yolox_nano_ultralytics_io, gating off",
        ["--model", "yolox_nano_ultralytics_io", "--no-motion"],
    ),
    ("fastestdet, gating off", ["--model", "fastestdet", "--no-motion"]),
    ("yolox_nano, gating on, busy", ["--model", "yolox_nano"]),
    ("yolox_nano, gating on, static", ["--model", "yolox_nano", "--static"]),
    (
        "yolox_nano, gating on, static, fixed 2 s forced interval",
        ["--model", "yolox_nano", "--static", "--fixed-skip"],
    ),
    (
        "yolox_nano, gating on, static, fixed 2 s, eager colour decode",
        ["--model", "yolox_nano", "--static", "--fixed-skip", "--eager-decode"],
    ),
    (
        "yolox_nano, gating on, static, max_skip_static_s 16",
        ["--model", "yolox_nano", "--static", "--max-skip-static-s", "16"],
    ),
]
BUSY = "yolox_nano, gating on, busy"


def run_bench(frames: Path, limit: int, runs: int, extra: list[str]) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "edge_agent", "bench", "--frames", str(frames),
        "--limit", str(limit), "--runs", str(runs), "--json", *extra,
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return dict(json.loads(proc.stdout))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3, help="runs inside each bench process")
    parser.add_argument("--repeats", type=int, default=3, help="bench processes per config")
    parser.add_argument("--only", help="substring of the config labels to run")
    args = parser.parse_args()
    configs = [c for c in CONFIGS if not args.only or args.only in c[0]]
    docs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in configs}
    for _ in range(args.repeats):
        for label, extra in configs:
            docs[label].append(run_bench(args.frames, args.limit, args.runs, extra))
            print(f"done: {label}", file=sys.stderr)

    def med(label: str, key: str) -> float:
        return statistics.median(float(d[key]) for d in docs[label])

    summary: dict[str, Any] = {"load_avg_1m_at_end": os.getloadavg()[0], "configs": {}}
    rows = []
    for label, _ in configs:
        stages = {
            s: statistics.median(d["stages_ms"][s] for d in docs[label])
            for s in docs[label][0]["stages_ms"]
        }
        entry = {
            "pipeline_fps": med(label, "pipeline_fps"),
            "inference_only_fps": med(label, "inference_only_fps"),
            "ratio": med(label, "pipeline_vs_inference_per_run_median"),
            "cpu_ms_per_frame": med(label, "cpu_ms_per_frame"),
            "peak_rss_mb": med(label, "peak_rss_mb"),
            "detector_runs": docs[label][0]["detector_runs"],
            "forced_runs": docs[label][0].get("forced_runs"),
            "frames": docs[label][0]["frames"],
            "decode_reduction": docs[label][0]["decode_reduction"],
            "stages_ms": stages,
            "load_avg_1m": [d["load_avg_1m"] for d in docs[label]],
        }
        summary["configs"][label] = entry
        st = " / ".join(f"{stages[s]:.2f}" for s in stages)
        rows.append(
            f"| {label} | {entry['pipeline_fps']:.1f} | {entry['inference_only_fps']:.1f} | "
            f"{entry['ratio'] * 100:.0f} % | {entry['cpu_ms_per_frame']:.1f} | "
            f"{entry['detector_runs']}/{entry['frames']} | {entry['peak_rss_mb']:.0f} | {st} |"
        )
    if BUSY in summary["configs"]:
        # the static-scene target: CPU per frame as a share of the busy scene's
        busy_cpu = summary["configs"][BUSY]["cpu_ms_per_frame"]
        for label, entry in summary["configs"].items():
            if "static" in label:
                entry["cpu_vs_busy"] = entry["cpu_ms_per_frame"] / busy_cpu
    print(json.dumps(summary))
    print(
        "| configuration | pipeline fps | inference-only fps | ratio | CPU ms/frame | "
        "detector runs | peak RSS MB | decode / gate / pre / infer / post / track / count ms |",
        file=sys.stderr,
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |", file=sys.stderr)
    for row in rows:
        print(row, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
