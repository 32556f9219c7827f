"""`footfall-agent eval`: count people on footage or public detections, score against gt.

Two inputs, one output document:
- ``--frames DIR --model PATH``: the detector runs on every image of the directory (sorted by
  name, the first image is frame 1), then tracker, line counter and zone counter;
- ``--detections det.txt``: MOT detections replace the detector (tracking and counting only).
Frame k has timestamp (k - 1) / fps. With ``--gt``, ground-truth crossings and zone visits are
derived from the gt tracks by the same convention (vision.mot) and scored (vision.evaluation).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from vision.config import (
    CameraConfig,
    DetectorConfig,
    LineConfig,
    MotionConfig,
    TrackerConfig,
    ZoneConfig,
)
from vision.detections import Detections
from vision.evaluation import TimedCrossing, count_accuracy, line_report
from vision.events import CrossingEvent, ZoneOccupancy, ZoneVisit
from vision.models import ModelError
from vision.mot import (
    MotFormatError,
    gt_crossings,
    gt_zone_visits,
    read_detections,
    read_gt,
    seqinfo_size,
)
from vision.pipeline import CameraPipeline, FrameResult

EX_USAGE = 2
EX_DATAERR = 65
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def _parse_line(text: str) -> tuple[str, list[list[float]]]:
    ident, sep, coords = text.partition("=")
    try:
        vals = [float(v) for v in coords.split(",")]
    except ValueError:
        vals = []
    if not sep or not ident or len(vals) != 4:
        raise argparse.ArgumentTypeError(f"expected ID=x1,y1,x2,y2, got {text!r}")
    return ident, [vals[0:2], vals[2:4]]


def _parse_zone(text: str) -> tuple[str, list[list[float]]]:
    ident, sep, coords = text.partition("=")
    points: list[list[float]] = []
    try:
        for pair in coords.split(";"):
            x, y = pair.split(",")
            points.append([float(x), float(y)])
    except ValueError:
        points = []
    if not sep or not ident or len(points) < 3:
        raise argparse.ArgumentTypeError(f"expected ID=x,y;x,y;x,y[;...], got {text!r}")
    return ident, points


def _frame_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise FileNotFoundError(f"frames directory {directory} not found")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {directory}")
    return files


def _first_image_size(files: list[Path]) -> tuple[int, int] | None:
    """(width, height) of the first decodable image among the first few."""
    import cv2

    for path in files[:5]:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            return int(image.shape[1]), int(image.shape[0])
    return None


def _camera(args: argparse.Namespace, resolution: list[int] | None) -> CameraConfig:
    """The eval run as one camera config, so it goes through the daemon's CameraPipeline."""
    return CameraConfig(
        id="eval",
        resolution=resolution,
        source=str(args.frames if args.frames is not None else args.detections),
        fps=args.fps,
        realtime=False,
        model=args.model,
        anchor=args.anchor,
        detector=DetectorConfig(confidence=args.conf, threads=args.threads),
        # accuracy runs see every frame unless --motion-gating asks for the daemon's gate
        motion=MotionConfig(enabled=args.motion_gating),
        tracker=TrackerConfig(
            high_score=args.high_score,
            low_score=args.low_score,
            new_track_score=args.new_track_score,
            match_iou=args.match_iou,
            lost_s=args.lost_s,
            confirm_frames=args.confirm_frames,
        ),
        lines=[LineConfig(id=i, points=p, **args.line_opts) for i, p in args.line],
        zones=[ZoneConfig(id=i, polygon=p, **args.zone_opts) for i, p in args.zone],
    )


def _image_results(
    files: list[Path], camera: CameraConfig, stats: dict[str, Any]
) -> tuple[CameraPipeline, Iterator[FrameResult]]:
    import cv2

    from vision.detector import OnnxDetector
    from vision.models import resolve_model
    from vision.source import Frame

    # built before the timer starts: wall_s measures frames, not session creation
    detector = OnnxDetector(resolve_model(camera.model), camera.detector)
    pipeline = CameraPipeline(camera, detector, camera.fps)

    def results() -> Iterator[FrameResult]:
        for index, path in enumerate(files, start=1):
            ts = (index - 1) / camera.fps
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                # a corrupt frame is counted and skipped; the tracker just sees no detections
                stats["bad_frames"] += 1
                yield pipeline.process_detections(Detections.empty(), ts, index)
                continue
            if stats["image_size"] is None:
                stats["image_size"] = (int(image.shape[1]), int(image.shape[0]))
            yield pipeline.process(Frame(cast("npt.NDArray[np.uint8]", image), ts, index))

    return pipeline, results()


def _detection_results(
    per_frame: list[Detections], camera: CameraConfig, min_score: float
) -> tuple[CameraPipeline, Iterator[FrameResult]]:
    pipeline = CameraPipeline(camera, None, camera.fps)

    def results() -> Iterator[FrameResult]:
        for index, dets in enumerate(per_frame, start=1):
            kept = dets[dets.scores >= min_score] if min_score > 0 else dets
            yield pipeline.process_detections(kept, (index - 1) / camera.fps, index)

    return pipeline, results()


def _eval(args: argparse.Namespace) -> int:
    from edge_agent.cli import emit_json

    stats: dict[str, Any] = {"bad_frames": 0, "image_size": None}
    files: list[Path] = []
    per_frame: list[Detections] = []
    try:
        if args.frames is not None:
            files = _frame_files(args.frames)
            size = _first_image_size(files)
            # lines and zones are checked against the real frame size, as check-config does
            resolution = list(size) if size else None
        else:
            per_frame = read_detections(args.detections)
            resolution = list(args.image_size) if args.image_size else None
    except (FileNotFoundError, MotFormatError) as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return EX_DATAERR
    try:
        camera = _camera(args, resolution)
    except ValueError as exc:
        print(f"eval: invalid settings: {exc}", file=sys.stderr)
        return EX_USAGE
    lines, zones = camera.lines, camera.zones
    try:
        if args.frames is not None:
            n_frames = len(files)
            pipeline, results = _image_results(files, camera, stats)
        else:
            n_frames = len(per_frame)
            pipeline, results = _detection_results(per_frame, camera, args.min_score)
    except ModelError as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return EX_DATAERR

    crossings: list[CrossingEvent] = []
    visits: list[ZoneVisit] = []
    max_occupancy = {z.id: 0 for z in zones}
    start = time.perf_counter()
    ts = 0.0
    detector_runs = 0
    for result in results:
        ts = result.ts
        detector_runs += int(result.ran_detector)
        for ev in result.events:
            if isinstance(ev, CrossingEvent):
                crossings.append(ev)
            elif isinstance(ev, ZoneVisit):
                visits.append(ev)
            elif isinstance(ev, ZoneOccupancy):
                for zid, n in ev.counts.items():
                    max_occupancy[zid] = max(max_occupancy[zid], n)
    visits.extend(v for v in pipeline.close(ts) if isinstance(v, ZoneVisit))
    wall_s = time.perf_counter() - start

    doc: dict[str, Any] = {
        "frames": n_frames,
        "wall_s": round(wall_s, 4),
        "fps": round(n_frames / wall_s, 2) if wall_s > 0 else None,
        "source": "frames" if args.frames is not None else "detections",
        "bad_frames": stats["bad_frames"],
        "detector_runs": detector_runs if args.frames is not None else None,
        "lines": {
            c.id: {
                "in": sum(1 for e in crossings if e.line_id == c.id and e.direction == "in"),
                "out": sum(1 for e in crossings if e.line_id == c.id and e.direction == "out"),
                "events": [
                    {"frame": e.frame_index, "direction": e.direction, "track_id": e.track_id}
                    for e in crossings
                    if e.line_id == c.id
                ],
            }
            for c in lines
        },
        "zones": {
            z.id: {
                "visits": sum(1 for v in visits if v.zone_id == z.id),
                "mean_dwell_s": _mean([v.dwell_s for v in visits if v.zone_id == z.id]),
                "max_occupancy": max_occupancy[z.id],
            }
            for z in zones
        },
    }
    if args.gt is not None:
        err = _score_gt(
            args, doc=doc, lines=lines, zones=zones, crossings=crossings, visits=visits, stats=stats
        )
        if err:
            return err
    if args.json:
        emit_json(doc)
    else:
        _print_text(doc)
    return 0


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def _score_gt(
    args: argparse.Namespace,
    *,
    doc: dict[str, Any],
    lines: list[LineConfig],
    zones: list[ZoneConfig],
    crossings: list[CrossingEvent],
    visits: list[ZoneVisit],
    stats: dict[str, Any],
) -> int:
    size = stats["image_size"] or (tuple(args.image_size) if args.image_size else None)
    if size is None:
        size = seqinfo_size(args.gt.parent) or seqinfo_size(args.gt.parent.parent)
    try:
        gt = read_gt(args.gt, size)
    except MotFormatError as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return EX_DATAERR
    truth = [
        TimedCrossing(c.line_id, c.direction, c.frame)
        for c in gt_crossings(gt, lines, args.anchor, args.fps)
    ]
    counted = [TimedCrossing(e.line_id, e.direction, e.frame_index) for e in crossings]
    report = line_report([c.id for c in lines], counted, truth, args.fps)
    for lid, entry in report.items():
        doc["lines"][lid]["gt"] = entry
    gt_visits = gt_zone_visits(gt, zones, args.anchor, args.fps)
    for z in zones:
        mine = [v for v in gt_visits if v.zone_id == z.id]
        doc["zones"][z.id]["gt"] = {
            "visits": len(mine),
            "mean_dwell_s": _mean([v.dwell_s for v in mine]),
            "visits_accuracy": round(count_accuracy(doc["zones"][z.id]["visits"], len(mine)), 4),
        }
    doc["gt"] = {"path": str(args.gt), "image_size": list(size) if size else None}
    return 0


def _print_text(doc: dict[str, Any]) -> None:
    print(f"{doc['frames']} frames in {doc['wall_s']:.2f} s ({doc['fps']} frames/s)")
    for lid, entry in doc["lines"].items():
        text = f"line {lid}: in {entry['in']} out {entry['out']}"
        gt = entry.get("gt")
        if gt:
            text += (
                f" | gt in {gt['gt_in']} out {gt['gt_out']} | accuracy in {gt['accuracy_in']:.3f}"
                f" out {gt['accuracy_out']:.3f} | P {gt['precision']:.3f} R {gt['recall']:.3f}"
                f" F1 {gt['f1']:.3f}"
            )
        print(text)
    for zid, entry in doc["zones"].items():
        text = (
            f"zone {zid}: {entry['visits']} visits, mean dwell {entry['mean_dwell_s']} s, "
            f"max occupancy {entry['max_occupancy']}"
        )
        gt = entry.get("gt")
        if gt:
            text += f" | gt {gt['visits']} visits, mean dwell {gt['mean_dwell_s']} s"
        print(text)


def _register_eval(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tracker = TrackerConfig()
    line = LineConfig(id="x", points=[[0, 0], [1, 1]])
    zone = ZoneConfig(id="x", polygon=[[0, 0], [1, 0], [0, 1]])
    p = sub.add_parser(
        "eval",
        help="count on an image directory or MOT detections; score against MOT ground truth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--frames", type=Path, help="directory of numbered images")
    src.add_argument("--detections", type=Path, help="MOT detections frame,-1,x,y,w,h,score,...")
    p.add_argument("--fps", type=float, required=True, help="frame rate of the footage")
    p.add_argument("--model", default="yolox_nano", help="manifest name or .onnx path")
    p.add_argument(
        "--line", type=_parse_line, action="append", default=[], metavar="ID=x1,y1,x2,y2"
    )
    p.add_argument(
        "--zone", type=_parse_zone, action="append", default=[], metavar="ID=x,y;x,y;..."
    )
    p.add_argument("--gt", type=Path, help="MOT ground truth (2DMOT2015: flag 0 rows not scored)")
    p.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("W", "H"),
        help="frame size for clipping gt boxes when only detections are given",
    )
    p.add_argument("--anchor", choices=["bottom_center", "center"], default="bottom_center")
    p.add_argument("--conf", type=float, default=DetectorConfig().confidence, help="detector")
    p.add_argument(
        "--threads", type=int, default=None, help="ORT threads (default: one less than the cores)"
    )
    p.add_argument("--min-score", type=float, default=0.0, help="drop MOT detections below")
    p.add_argument("--high-score", type=float, default=tracker.high_score)
    p.add_argument("--low-score", type=float, default=tracker.low_score)
    p.add_argument("--new-track-score", type=float, default=tracker.new_track_score)
    p.add_argument("--match-iou", type=float, default=tracker.match_iou)
    p.add_argument("--lost-s", type=float, default=tracker.lost_s)
    p.add_argument("--confirm-frames", type=int, default=tracker.confirm_frames)
    p.add_argument("--hysteresis-px", type=float, default=line.hysteresis_px)
    p.add_argument("--min-frames-on-side", type=int, default=line.min_frames_on_side)
    p.add_argument("--min-visit-s", type=float, default=zone.min_visit_s)
    p.add_argument("--occlusion-grace-s", type=float, default=zone.occlusion_grace_s)
    p.add_argument(
        "--motion-gating",
        action="store_true",
        help="skip inference on still frames as the daemon does (default: detect every frame)",
    )
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=_eval_entry)


def _eval_entry(args: argparse.Namespace) -> int:
    if args.fps <= 0:
        print("eval: --fps must be positive", file=sys.stderr)
        return EX_USAGE
    args.line_opts = {
        "hysteresis_px": args.hysteresis_px,
        "min_frames_on_side": args.min_frames_on_side,
    }
    args.zone_opts = {
        "min_visit_s": args.min_visit_s,
        "occlusion_grace_s": args.occlusion_grace_s,
    }
    return _eval(args)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands to the CLI."""
    _register_eval(sub)


__all__ = ["register"]
