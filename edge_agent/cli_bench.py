"""`footfall-agent bench` (speed and memory of one camera's pipeline) and `snapshot` (a PNG of a
camera frame with lines, zones and detections, to check placement)."""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.capture import PreparedFeed, grab_one
from edge_agent.config_report import EX_CONFIG, ConfigError, load_config
from vision.config import CameraConfig, DetectorConfig, LineConfig, MotionConfig, ZoneConfig
from vision.detections import Detections
from vision.detector import OnnxDetector
from vision.draw import render
from vision.models import ModelError, resolve_model
from vision.pipeline import CameraPipeline, PreparedFrame
from vision.source import (
    ImageDirSource,
    SourceError,
    VideoFileSource,
    source_kind,
)

STAGES = ("decode", "gate", "preprocess", "inference", "postprocess", "track", "count")
# Pre-made input tensors for the inference-only ceiling, cycled: the ceiling should not need
# every frame's 2 MB tensor in memory (inference time does not depend on the picture).
CEILING_TENSORS = 4
EX_USAGE = 64
EX_NOINPUT = 66


def _parse_line(text: str) -> LineConfig:
    try:
        line_id, coords = text.split("=", 1)
        x1, y1, x2, y2 = (float(v) for v in coords.split(","))
        return LineConfig(id=line_id, points=[[x1, y1], [x2, y2]])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--line {text!r}: expected ID=x1,y1,x2,y2 ({exc})"
        ) from exc


def _parse_zone(text: str) -> ZoneConfig:
    try:
        zone_id, coords = text.split("=", 1)
        points = [[float(v) for v in p.split(",")] for p in coords.split(";") if p.strip()]
        return ZoneConfig(id=zone_id, polygon=points)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--zone {text!r}: expected ID=x,y;x,y;x,y ({exc})"
        ) from exc


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _default_lines(width: int, height: int) -> list[LineConfig]:
    """Two lines across the middle of the frame, so the count stage does real work."""
    return [
        LineConfig(id="vertical", points=[[width / 2, 0.0], [width / 2, float(height)]]),
        LineConfig(id="horizontal", points=[[0.0, height / 2], [float(width), height / 2]]),
    ]


def _ceiling_tensors(
    frames_dir: Path, detector: OnnxDetector, args: argparse.Namespace
) -> list[npt.NDArray[np.float32]]:
    """Input tensors made beforehand from the first frames, for the inference-only ceiling."""
    source = ImageDirSource(
        frames_dir,
        1.0,
        False,
        input_size=None if args.full_decode else detector.input_size,
        stretch=detector.stretches_input,
        limit=CEILING_TENSORS,
    )
    return [detector.preprocess(f.image, f.scale)[0].copy() for f in source]


def _pass(
    frames_dir: Path,
    camera: CameraConfig,
    detector: OnnxDetector,
    tensors: list[npt.NDArray[np.float32]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The pipeline over the frames, interleaved with the inference-only ceiling.

    After every `--chunk` frames the pipeline clock stops and the same session runs inference
    alone on pre-made tensors for as many frames. Both figures then see the same load from the
    rest of the machine, which on a shared box moves more than the difference being measured.
    """
    input_size = None if args.full_decode else detector.input_size
    files = ImageDirSource(
        frames_dir,
        camera.fps,
        False,
        input_size=input_size,
        stretch=detector.stretches_input,
        limit=args.limit,
        defer_decode=not args.eager_decode,
    )
    pipeline = CameraPipeline(camera, detector)
    feed = None if args.no_prefetch else PreparedFeed(files, pipeline)
    sums = dict.fromkeys(STAGES, 0.0)
    frames = 0
    pipe_wall = pipe_cpu = ceiling_wall = 0.0
    ceiling_frames = 0
    ended = False
    while not ended:
        chunk = 0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        while chunk < args.chunk:
            # decode: the wait for the next frame (with the feed, only what it could not hide)
            t0 = time.perf_counter()
            item = files.read() if feed is None else feed.read()
            sums["decode"] += time.perf_counter() - t0
            if item is None:
                ended = True
                break
            if isinstance(item, PreparedFrame):
                t = pipeline.process_prepared(item).timings
            else:
                t = pipeline.process(item).timings
            sums["gate"] += t.gate_s
            sums["preprocess"] += t.preprocess_s
            sums["inference"] += t.inference_s
            sums["postprocess"] += t.postprocess_s
            sums["track"] += t.track_s
            sums["count"] += t.count_s
            chunk += 1
        pipe_wall += time.perf_counter() - wall0
        pipe_cpu += time.process_time() - cpu0
        frames += chunk
        start = time.perf_counter()
        for i in range(chunk):
            detector.infer(tensors[(ceiling_frames + i) % len(tensors)])
        ceiling_wall += time.perf_counter() - start
        ceiling_frames += chunk
    (files if feed is None else feed).close()
    pipeline.close(frames / camera.fps)
    return {
        "frames": frames,
        "fps": frames / pipe_wall if pipe_wall > 0 else 0.0,
        "ceiling_fps": ceiling_frames / ceiling_wall if ceiling_wall > 0 else 0.0,
        "cpu_ms_per_frame": 1000.0 * pipe_cpu / max(1, frames),
        "stages_ms": {k: 1000.0 * v / max(1, frames) for k, v in sums.items()},
        "detector_runs": pipeline.detector_runs,
        "forced_runs": pipeline.forced_runs,
        "gate_grey_decodes": pipeline.gate.grey_decodes,
        "corrupt_frames": files.counters.corrupt,
        "decode_reduction": files.reduction or 1,
    }


def _static_dir(frames_dir: Path, count: int, into: Path) -> Path:
    """A directory of `count` links to the first image: a scene where nothing moves."""
    first = ImageDirSource(frames_dir, 1.0, False, limit=1).files[0]
    for i in range(1, count + 1):
        (into / f"{i:06d}{first.suffix}").symlink_to(first.resolve())
    return into


def _bench(args: argparse.Namespace) -> int:
    try:
        spec = resolve_model(args.model)
        detector = OnnxDetector(spec, DetectorConfig(threads=args.threads))
    except ModelError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return EX_NOINPUT
    with tempfile.TemporaryDirectory(prefix="footfall-bench-") as tmp:
        frames_dir: Path = args.frames
        try:
            if args.static:
                frames_dir = _static_dir(args.frames, args.limit or 100, Path(tmp))
            probe = ImageDirSource(frames_dir, args.fps, False, limit=1).read()
        except SourceError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return EX_NOINPUT
        assert probe is not None
        lines = args.line or _default_lines(probe.width, probe.height)
        max_skip_static_s = (
            args.max_skip_s
            if args.fixed_skip
            else args.max_skip_static_s
            if args.max_skip_static_s is not None
            else MotionConfig().max_skip_static_s
        )
        camera = CameraConfig(
            id="bench",
            source=str(frames_dir),
            fps=args.fps,
            model=args.model,
            motion=MotionConfig(
                enabled=not args.no_motion,
                max_skip_s=args.max_skip_s,
                max_skip_static_s=max_skip_static_s,
            ),
            lines=lines,
        )
        # One untimed pass warms ONNX Runtime's kernels and the page cache of the frames.
        CameraPipeline(camera, detector).process(probe)
        tensors = _ceiling_tensors(frames_dir, detector, args)
        runs = [_pass(frames_dir, camera, detector, tensors, args) for _ in range(args.runs)]
    pipeline_fps = statistics.median(r["fps"] for r in runs)
    ceiling_fps = statistics.median(r["ceiling_fps"] for r in runs)
    doc: dict[str, Any] = {
        "model": spec.name,
        "model_file": str(spec.path),
        "layout": spec.layout,
        "frames_dir": str(args.frames),
        "static_scene": bool(args.static),
        "frames": runs[0]["frames"],
        "runs": args.runs,
        "threads": detector.cfg.effective_threads(),
        "motion_gating": not args.no_motion,
        "max_skip_s": args.max_skip_s,
        "max_skip_static_s": camera.motion.max_skip_static_s,
        "deferred_decode": not args.eager_decode,
        "decode_reduction": runs[0]["decode_reduction"],
        # With prefetch, decode/gate/preprocess run on the reader thread, off the critical path:
        # their stage times are real work but do not add to the time per frame.
        "prefetch": not args.no_prefetch,
        "stages_ms": {s: statistics.median(r["stages_ms"][s] for r in runs) for s in STAGES},
        "pipeline_fps": pipeline_fps,
        "inference_only_fps": ceiling_fps,
        "pipeline_vs_inference": pipeline_fps / ceiling_fps if ceiling_fps > 0 else None,
        "pipeline_vs_inference_per_run_median": statistics.median(
            r["fps"] / r["ceiling_fps"] for r in runs if r["ceiling_fps"] > 0
        ),
        "cpu_ms_per_frame": statistics.median(r["cpu_ms_per_frame"] for r in runs),
        "detector_runs": runs[0]["detector_runs"],
        # detections the gate forced on a static scene, and frames it judged from a reduced
        # greyscale decode (all but the forced ones were never decoded in colour)
        "forced_runs": runs[0]["forced_runs"],
        "gate_grey_decodes": runs[0]["gate_grey_decodes"],
        "corrupt_frames": runs[0]["corrupt_frames"],
        # includes the pre-made ceiling tensors (CEILING_TENSORS x 4 bytes x input pixels x 3)
        "peak_rss_mb": _peak_rss_mb(),
        "load_avg_1m": os.getloadavg()[0],
        "per_run": [
            {
                "pipeline_fps": r["fps"],
                "inference_only_fps": r["ceiling_fps"],
                "cpu_ms": r["cpu_ms_per_frame"],
            }
            for r in runs
        ],
    }
    if args.json:
        from edge_agent.cli import emit_json

        emit_json(doc)
    else:
        _print_bench(doc)
    return 0


def _print_bench(doc: dict[str, Any]) -> None:
    print(
        f"model {doc['model']} ({doc['layout']}), {doc['frames']} frames x {doc['runs']} runs, "
        f"{doc['threads']} threads, motion gating {'on' if doc['motion_gating'] else 'off'}, "
        f"decode 1/{doc['decode_reduction']}"
    )
    print(f"{'stage':<12}{'ms/frame':>10}")
    for stage, ms in doc["stages_ms"].items():
        print(f"{stage:<12}{ms:>10.2f}")
    print(f"{'pipeline':<24}{doc['pipeline_fps']:>8.1f} frames/s")
    print(f"{'inference only':<24}{doc['inference_only_fps']:>8.1f} frames/s")
    ratio = doc["pipeline_vs_inference"]
    print(f"{'pipeline / inference':<24}{(ratio or 0) * 100:>7.1f} %")
    print(f"{'CPU per frame':<24}{doc['cpu_ms_per_frame']:>8.2f} ms")
    print(f"{'detector runs':<24}{doc['detector_runs']:>8d}")
    print(f"{'peak RSS':<24}{doc['peak_rss_mb']:>8.1f} MB")


def _snapshot_frame(source: str | int, frame_no: int | None) -> tuple[np.ndarray, int]:
    kind = source_kind(source)
    if kind == "images":
        src = ImageDirSource(str(source), 1.0, False)
        for frame in src:
            if frame_no is None or frame.index >= frame_no:
                return frame.image, frame.index
        raise SourceError(f"{source}: no decodable frame {frame_no or ''}".strip())
    if kind == "video":
        video = VideoFileSource(str(source))
        try:
            for frame in video:
                if frame_no is None or frame.index >= frame_no:
                    return frame.image, frame.index
        finally:
            video.close()
        raise SourceError(f"{source}: no decodable frame {frame_no or ''}".strip())
    return grab_one(source, timeout_s=15.0), 1


def _snapshot(args: argparse.Namespace) -> int:
    if args.config is not None:
        if args.camera is None:
            print("snapshot: --config needs --camera ID", file=sys.stderr)
            return EX_USAGE
        try:
            cfg = load_config(args.config)
        except ConfigError as exc:
            for issue in exc.issues:
                print(issue, file=sys.stderr)
            return EX_CONFIG
        found = [c for c in cfg.cameras if c.id == args.camera]
        if not found:
            known = ", ".join(c.id for c in cfg.cameras) or "none"
            print(
                f"snapshot: no camera {args.camera!r} in {args.config} (known: {known})",
                file=sys.stderr,
            )
            return EX_USAGE
        camera = found[0]
    else:
        camera = CameraConfig(
            id="snapshot",
            source=args.source,
            model=args.model or "yolox_nano",
            lines=args.line or [],
            zones=args.zone or [],
        )
    out: Path = args.out or Path(f"snapshot-{camera.id}.png")
    try:
        image, index = _snapshot_frame(camera.source, args.frame)
    except SourceError as exc:
        print(f"snapshot: {exc}", file=sys.stderr)
        return EX_NOINPUT
    detections: Detections | None = None
    if not args.no_detect:
        try:
            detector = OnnxDetector(resolve_model(args.model or camera.model), camera.detector)
            detections = detector.detect(image)
        except ModelError as exc:
            # Placement can still be checked without boxes; say why they are missing.
            print(f"snapshot: no detections drawn: {exc}", file=sys.stderr)
    picture = render(image, camera.lines, camera.zones, detections)
    if not cv2.imwrite(str(out), picture):
        print(f"snapshot: cannot write {out}", file=sys.stderr)
        return EX_NOINPUT
    doc = {
        "out": str(out),
        "camera": camera.id,
        "frame": index,
        "size": [int(image.shape[1]), int(image.shape[0])],
        "detections": None if detections is None else len(detections),
        "lines": [line.id for line in camera.lines],
        "zones": [zone.id for zone in camera.zones],
    }
    if args.json:
        from edge_agent.cli import emit_json

        emit_json(doc)
    else:
        print(f"wrote {out} (frame {index}, {doc['detections']} detections)", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `bench` and `snapshot` to the CLI."""
    b = sub.add_parser("bench", help="per-stage speed, frames/s and peak memory of one camera")
    b.add_argument("--frames", type=Path, required=True, help="directory of numbered images")
    b.add_argument("--model", default="yolox_nano", help="manifest name or .onnx path")
    b.add_argument("--limit", type=int, help="use only the first N frames")
    b.add_argument("--fps", type=float, default=7.0, help="frame rate of the footage (for ts)")
    b.add_argument("--no-motion", action="store_true", help="run the detector on every frame")
    b.add_argument(
        "--max-skip-s",
        type=float,
        default=MotionConfig().max_skip_s,
        help="with gating: run the detector at least this often on a static scene",
    )
    b.add_argument(
        "--max-skip-static-s",
        type=float,
        default=None,
        help=(
            "with gating: longest forced-detection interval while forced detections find "
            f"nothing new (default {MotionConfig().max_skip_static_s:g})"
        ),
    )
    b.add_argument(
        "--fixed-skip",
        action="store_true",
        help="with gating: force a detection every --max-skip-s, never longer (the old policy)",
    )
    b.add_argument(
        "--eager-decode",
        action="store_true",
        help=(
            "decode every JPEG in colour when it is read (default: the colour decode waits "
            "until the detector needs it; the gate uses a reduced greyscale decode)"
        ),
    )
    b.add_argument(
        "--static",
        action="store_true",
        help="repeat the first frame --limit times (default 100): an empty scene",
    )
    b.add_argument(
        "--full-decode",
        action="store_true",
        help="decode JPEGs at full size (default: reduced when the model is smaller)",
    )
    b.add_argument(
        "--no-prefetch",
        action="store_true",
        help=(
            "decode, gate and preprocess on the pipeline thread (default: a reader thread "
            "prepares the next frames while the current one is inferred)"
        ),
    )
    b.add_argument(
        "--threads",
        type=int,
        default=None,
        help="ONNX Runtime intra-op threads (default: as the daemon, one less than the cores)",
    )
    b.add_argument("--runs", type=int, default=3, help="repeat and report medians")
    b.add_argument(
        "--chunk", type=int, default=25, help="frames between pipeline/ceiling alternations"
    )
    b.add_argument("--line", type=_parse_line, action="append", help="ID=x1,y1,x2,y2")
    b.add_argument("--json", action="store_true", help="one JSON document on stdout")
    b.set_defaults(func=_bench)

    s = sub.add_parser("snapshot", help="PNG of a camera frame with lines, zones and detections")
    s.add_argument("--config", type=Path, help="device config (with --camera)")
    s.add_argument("--camera", help="camera id in --config")
    s.add_argument("--source", help="image directory, video file, device or URL (without --config)")
    s.add_argument("--line", type=_parse_line, action="append", help="ID=x1,y1,x2,y2")
    s.add_argument("--zone", type=_parse_zone, action="append", help="ID=x,y;x,y;x,y")
    s.add_argument("--model", default=None, help="manifest name or .onnx path (default: camera's)")
    s.add_argument("--frame", type=int, help="frame number of a file source (default: first)")
    s.add_argument("--no-detect", action="store_true", help="draw lines and zones only")
    s.add_argument("--out", type=Path, help="PNG to write (default snapshot-<camera>.png)")
    s.add_argument("--json", action="store_true", help="one JSON document on stdout")
    s.set_defaults(func=_snapshot_entry)


def _snapshot_entry(args: argparse.Namespace) -> int:
    if (args.config is None) == (args.source is None):
        print("snapshot: give either --config PATH --camera ID, or --source", file=sys.stderr)
        return EX_USAGE
    return _snapshot(args)


__all__ = ["register"]
