"""footfall vs Ultralytics ObjectCounter vs supervision ByteTrack + LineZone, in one run.

Same frames, same ONNX file, same lines, same ground truth, interleaved frame by frame so
the three pipelines see the same machine load:

- footfall: vision.detector.OnnxDetector -> vision.tracker.ByteTracker -> vision.counting;
- Ultralytics: ``solutions.ObjectCounter(model=<the .onnx>)`` does its own detection and
  tracking (its default tracker) and counts one line; further lines get one more
  ObjectCounter each, fed the first counter's tracks through the public
  ``store_tracking_history`` / ``count_objects`` methods (so the model runs once per frame);
- supervision: ``sv.ByteTrack`` + one ``sv.LineZone`` per line, on footfall's detections
  (the same boxes footfall's tracker gets), so it is timed as detector + its tracker/counter.

ObjectCounter's anchor is the box centre and cannot be changed, so the comparison uses the box
centre for everyone (footfall anchor="center", LineZone triggering_anchors=[CENTER]) and the
ground truth is derived with the centre too.

Direction mapping to footfall's convention (``in`` = side value goes negative -> positive,
side = (x2-x1)*(py-y1) - (y2-y1)*(px-x1)):
- supervision computes the same cross product and counts ``in`` when it becomes negative, so
  its ``in`` is footfall's ``out`` and vice versa;
- ObjectCounter ignores the line's direction: for a mostly vertical line, IN = moving right;
  for a mostly horizontal one, IN = moving down. Moving right changes the side value by
  -(y2-y1), moving down by (x2-x1); IN maps to footfall ``in`` when that change is positive.

Needs the optional ``compare`` extra (ultralytics, supervision<0.30 for sv.ByteTrack, plus
shapely and lap for ObjectCounter) in a separate venv; footfall never imports them. Run from
the repository root, e.g.::

    PYTHONPATH=. /work/compare-venv/bin/python bench/compare_anchors.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision.config import DetectorConfig, LineConfig, TrackerConfig
from vision.counting import LineCounter
from vision.detector import OnnxDetector
from vision.evaluation import TimedCrossing, line_report
from vision.models import resolve_model
from vision.mot import gt_crossings, read_gt
from vision.tracker import ByteTracker

PETS = Path(__file__).resolve().parents[2] / "shared/data/footage/PETS09-S2L1"
DEFAULT_LINES = [
    "A=180,170,180,330",
    "B=330,180,330,360",
    "C=560,180,560,420",
    "D=620,190,620,430",
]
METHODS = ("footfall", "ultralytics", "supervision")


def _line(text: str) -> LineConfig:
    ident, _, coords = text.partition("=")
    x1, y1, x2, y2 = (float(v) for v in coords.split(","))
    return LineConfig(id=ident, points=[[x1, y1], [x2, y2]])


def ultralytics_in_direction(line: LineConfig) -> str:
    """Which footfall direction ObjectCounter's IN corresponds to on this line."""
    (x1, y1), (x2, y2) = line.points
    # ObjectCounter: a mostly vertical line counts IN when moving right, else when moving down
    change = -(y2 - y1) if abs(x1 - x2) < abs(y1 - y2) else x2 - x1
    return "in" if change > 0 else "out"


class UltralyticsCounters:
    """One ObjectCounter per line; the first runs the model and tracker."""

    def __init__(self, model: str, lines: list[LineConfig], imgsz: int, tracker: str | None):
        from ultralytics import solutions

        kwargs: dict[str, Any] = {
            "model": model,
            "classes": [0],
            "show": False,
            "verbose": False,
            "device": "cpu",
            "imgsz": imgsz,
        }
        if tracker:
            kwargs["tracker"] = tracker
        self.lines = lines
        self.counters = [
            solutions.ObjectCounter(region=[tuple(p) for p in ln.points], **kwargs) for ln in lines
        ]
        for c in self.counters[1:]:
            c.initialize_region()
            c.region_initialized = True
        self.in_map = [ultralytics_in_direction(ln) for ln in lines]
        self.events: list[tuple[str, str, int, int]] = []  # line, direction, frame, track

    def process(self, frame: np.ndarray, frame_index: int) -> None:
        before = [(c.in_count, c.out_count, set(c.counted_ids)) for c in self.counters]
        first = self.counters[0]
        first.process(frame)
        for c in self.counters[1:]:
            for box, tid, cls in zip(first.boxes, first.track_ids, first.clss, strict=False):
                c.store_tracking_history(tid, box)
                hist = c.track_history[tid]
                prev = hist[-2] if len(hist) > 1 else None
                c.count_objects(hist[-1], tid, prev, cls)
        for k, c in enumerate(self.counters):
            b_in, b_out, b_ids = before[k]
            new_ids = sorted(set(c.counted_ids) - b_ids) or [-1]
            opposite = "out" if self.in_map[k] == "in" else "in"
            for _ in range(c.in_count - b_in):
                self.events.append((self.lines[k].id, self.in_map[k], frame_index, new_ids[0]))
            for _ in range(c.out_count - b_out):
                self.events.append((self.lines[k].id, opposite, frame_index, new_ids[-1]))


class SupervisionCounters:
    def __init__(self, lines: list[LineConfig], fps: float):
        import supervision as sv

        self.sv = sv
        self.tracker = sv.ByteTrack(frame_rate=fps)
        self.lines = lines
        self.zones = [
            sv.LineZone(
                start=sv.Point(*ln.points[0]),
                end=sv.Point(*ln.points[1]),
                triggering_anchors=[sv.Position.CENTER],
            )
            for ln in lines
        ]
        self.events: list[tuple[str, str, int, int]] = []

    def process(self, xyxy: np.ndarray, scores: np.ndarray, frame_index: int) -> None:
        sv = self.sv
        dets = sv.Detections(
            xyxy=xyxy.astype(np.float32).reshape(-1, 4),
            confidence=scores.astype(np.float32),
            class_id=np.zeros(len(scores), dtype=int),
        )
        tracked = self.tracker.update_with_detections(dets)
        for ln, zone in zip(self.lines, self.zones, strict=True):
            crossed_in, crossed_out = zone.trigger(tracked)
            # supervision's "in" is the side value turning negative: footfall's "out"
            for i in np.flatnonzero(crossed_in):
                self.events.append((ln.id, "out", frame_index, int(tracked.tracker_id[i])))
            for i in np.flatnonzero(crossed_out):
                self.events.append((ln.id, "in", frame_index, int(tracked.tracker_id[i])))


def run(args: argparse.Namespace) -> dict[str, Any]:
    lines = [_line(t) for t in (args.line or DEFAULT_LINES)]
    files = sorted((args.frames).glob("*.jpg"))[: args.max_frames or None]
    if not files:
        raise SystemExit(f"no .jpg frames in {args.frames}")
    detector = OnnxDetector(
        resolve_model(str(args.model)), DetectorConfig(confidence=args.conf, threads=args.threads)
    )
    tracker = ByteTracker(TrackerConfig(), args.fps)
    counter = LineCounter("compare", lines, args.anchor)
    ul = UltralyticsCounters(str(args.model), lines, args.imgsz, args.ul_tracker)
    svc = SupervisionCounters(lines, args.fps)

    # warm-up on a blank frame (no people): model loading and lazy set-up are not timed
    first_frame = cv2.imread(str(files[0]))
    if first_frame is None:
        raise SystemExit(f"cannot decode {files[0]}")
    blank = np.zeros_like(first_frame)
    ul.counters[0].process(blank.copy())
    detector.detect(blank)

    t = {k: 0.0 for k in ("decode", "detect", "footfall", "supervision", "ultralytics")}
    ours: list[tuple[str, str, int, int]] = []
    for index, path in enumerate(files, start=1):
        ts = (index - 1) / args.fps
        t0 = time.perf_counter()
        frame = cv2.imread(str(path))
        t1 = time.perf_counter()
        t["decode"] += t1 - t0
        if frame is None:
            raise SystemExit(f"cannot decode {path}")
        ul_frame = frame.copy()  # ObjectCounter draws on its input
        t1 = time.perf_counter()
        ul.process(ul_frame, index)
        t2 = time.perf_counter()
        dets = detector.detect(frame)
        t3 = time.perf_counter()
        tracks = tracker.update(dets, ts)
        for ev in counter.update(tracks, ts, index):
            ours.append((ev.line_id, ev.direction, index, ev.track_id))
        t4 = time.perf_counter()
        svc.process(dets.xyxy, dets.scores, index)
        t5 = time.perf_counter()
        t["ultralytics"] += t2 - t1
        t["detect"] += t3 - t2
        t["footfall"] += t4 - t3
        t["supervision"] += t5 - t4

    n = len(files)
    wall = {
        "footfall": t["decode"] + t["detect"] + t["footfall"],
        "supervision": t["decode"] + t["detect"] + t["supervision"],
        "ultralytics": t["decode"] + t["ultralytics"],
    }
    events = {"footfall": ours, "ultralytics": ul.events, "supervision": svc.events}
    doc: dict[str, Any] = {
        "frames": n,
        "fps_footage": args.fps,
        "model": str(args.model),
        "anchor": args.anchor,
        "lines": {ln.id: ln.points for ln in lines},
        "stage_s": {k: round(v, 3) for k, v in t.items()},
        "methods": {},
    }
    truth: list[TimedCrossing] = []
    if args.gt is not None:
        h, w = blank.shape[:2]
        gt = read_gt(args.gt, (w, h))
        truth = [
            TimedCrossing(c.line_id, c.direction, c.frame)
            for c in gt_crossings(gt, lines, args.anchor, args.fps)
            if c.frame <= n
        ]
    for m in METHODS:
        evs = events[m]
        entry: dict[str, Any] = {
            "fps": round(n / wall[m], 2),
            "wall_s": round(wall[m], 3),
            "lines": {
                ln.id: {
                    "in": sum(1 for e in evs if e[0] == ln.id and e[1] == "in"),
                    "out": sum(1 for e in evs if e[0] == ln.id and e[1] == "out"),
                }
                for ln in lines
            },
        }
        if args.gt is not None:
            counted = [TimedCrossing(e[0], e[1], e[2]) for e in evs]  # type: ignore[arg-type]
            report = line_report([ln.id for ln in lines], counted, truth, args.fps)
            for lid, rep in report.items():
                entry["lines"][lid]["gt"] = rep
            entry["min_f1"] = min(r["f1"] for r in report.values())
            entry["mean_f1"] = round(statistics.mean(r["f1"] for r in report.values()), 4)
            entry["min_accuracy"] = min(
                min(r["accuracy_in"], r["accuracy_out"]) for r in report.values()
            )
        doc["methods"][m] = entry
    return doc


def _table(doc: dict[str, Any]) -> str:
    rows = [f"{doc['frames']} frames, anchor {doc['anchor']}"]
    for m, e in doc["methods"].items():
        head = f"{m:12s} {e['fps']:7.2f} frames/s"
        if "min_f1" in e:
            head += f"  min F1 {e['min_f1']:.3f}  mean F1 {e['mean_f1']:.3f}"
            head += f"  min accuracy {e['min_accuracy']:.3f}"
        rows.append(head)
        for lid, le in e["lines"].items():
            g = le.get("gt")
            cell = f"    {lid}: in {le['in']} out {le['out']}"
            if g:
                cell += (
                    f" (gt {g['gt_in']}/{g['gt_out']}) acc {g['accuracy_in']:.3f}/"
                    f"{g['accuracy_out']:.3f} P {g['precision']:.3f} R {g['recall']:.3f}"
                    f" F1 {g['f1']:.3f}"
                )
            rows.append(cell)
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=Path, default=PETS / "img1")
    p.add_argument("--gt", type=Path, default=PETS / "gt/gt.txt")
    p.add_argument("--fps", type=float, default=7.0)
    p.add_argument(
        "--model",
        type=Path,
        default=Path(__file__).resolve().parents[2]
        / "shared/models/yolox_nano_ultralytics_io.onnx",
    )
    p.add_argument("--line", action="append", metavar="ID=x1,y1,x2,y2")
    p.add_argument("--anchor", default="center", choices=["center", "bottom_center"])
    p.add_argument("--conf", type=float, default=0.1, help="footfall detector threshold")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--imgsz", type=int, default=416)
    p.add_argument("--ul-tracker", default=None, help="e.g. bytetrack.yaml (default: its own)")
    p.add_argument("--max-frames", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    # Ultralytics prints its settings to fd 1; keep stdout for our one document
    sys.stdout.flush()
    saved_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        doc = run(args)
    finally:
        sys.stdout.flush()
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)
    if args.json:
        sys.stdout.write(json.dumps(doc) + "\n")
    else:
        print(_table(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
