"""RFID throughput: serial frame parsers (frames/s) and the stock engine (reads/s), one core.

Parsers: a stream of N single-tag frames per protocol (12-byte EPCs; RDM6300 cards), fed in
4096-byte chunks as a serial read would deliver them, optionally with a fraction of frames
corrupted and noise bytes between frames. The Chafon 288 multi-tag case (8 tags per response)
is also reported in reads/s. LLRP: N RO_ACCESS_REPORT messages of one TagReportData each (EPC-96,
AntennaID, PeakRSSI, FirstSeenTimestampUTC, TagSeenCount: what the client's ROSpec asks for),
fed in 4096-byte chunks as TCP reads deliver them, and reports of 8 tags in reads/s.

Stock engine: 2,000 SGTIN tags on 8 shelves (2 readers x 4 antennas), each inventory cycle reads
65 % of the tags on their own shelf plus 30 % cross-reads from each neighbour; reads are
ingested per cycle and `tick` runs after every cycle, so the figure includes arrival, zone and
expiry judgement. The tags stay present (steady state, the common case) except 1 % taken.

Shelf hour: the scenario of tests/rfid/test_shelf_sim.py (4 shelves, 48 items, 65 % per-cycle
reads with cross-reads, an item taken every 150 s, 3 moves) for 5 seeds, adaptive window on and
off: false and missed removals, removal latency from the take, move events vs real moves.

Rates are per CPU second of this process (`time.process_time`): the machine is shared, and
wall-clock time would mostly measure the other processes' share of the 2 cores. The code is
single-threaded, so a CPU second is one core's worth of work.

Usage: .venv/bin/python bench/rfid_speed.py [--frames 100000] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rfid.config import SINGLE_ANTENNA_PROTOCOLS, AntennaConfig, ReaderConfig  # noqa: E402
from rfid.epc import sgtin96_from_gtin  # noqa: E402
from rfid.events import TagRead  # noqa: E402
from rfid.protocols import PROTOCOLS, chafon, llrp, m100, rdm6300  # noqa: E402
from rfid.stock import StockEngine  # noqa: E402

CHUNK = 4096
SHELF_RUNS = [(1, True), (2, True), (3, True), (4, False), (5, False)]


def frame_for(protocol: str, epc: bytes, k: int) -> bytes:
    if protocol == "rdm6300":
        return rdm6300.build_frame(epc[:5].hex())
    if protocol == "m100":
        return m100.build_notification(epc, -40 - k % 40)
    if protocol == "chafon18":
        return chafon.build_inventory_response([(epc, None)])
    return chafon.build_inventory_response([(epc, 30 + k % 60)], antenna=1 + k % 4)


def make_stream(protocol: str, n: int, noise: float, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    epcs = [bytes(rng.randrange(256) for _ in range(12)) for _ in range(500)]
    out = bytearray()
    for k in range(n):
        frame = frame_for(protocol, epcs[k % len(epcs)], k)
        if noise and rng.random() < noise:
            bad = bytearray(frame)
            bad[len(bad) // 2] ^= 0x5A
            out += bytes(rng.randrange(256) for _ in range(3)) + bad
        out += frame
    return bytes(out)


def reader_cfg(protocol: str, rid: str = "r1") -> ReaderConfig:
    return ReaderConfig(
        id=rid,
        port="/dev/null",
        protocol=protocol,  # type: ignore[arg-type]
        antennas={
            i: AntennaConfig(zone=f"{rid}-z{i}")
            for i in ([1] if protocol in SINGLE_ANTENNA_PROTOCOLS else range(1, 5))
        },
    )


WALL: list[float] = []  # wall-clock seconds of the last timed section, reported alongside


def time_parser(protocol: str, stream: bytes) -> tuple[float, int]:
    parser = PROTOCOLS[protocol].make_parser(reader_cfg(protocol), "r1", 0.2)
    view = memoryview(stream)
    n_reads = 0
    w0, t0 = time.perf_counter(), time.process_time()
    for i in range(0, len(stream), CHUNK):
        n_reads += len(parser.feed(view[i : i + CHUNK], 1000.0))
    WALL.append(time.perf_counter() - w0)
    return time.process_time() - t0, n_reads


def make_llrp_stream(n_reports: int, tags_per_report: int, seed: int = 4) -> bytes:
    rng = random.Random(seed)
    epcs = [bytes(rng.randrange(256) for _ in range(12)).hex().upper() for _ in range(500)]
    out = bytearray()
    ts_us = 1_750_000_000_000_000
    for k in range(n_reports):
        tags = [
            llrp.TagReport(
                epcs[(k * tags_per_report + i) % len(epcs)],
                1 + (k + i) % 4,
                -40 - (k + i) % 40,
                ts_us + k * 1000,
                None,
                1,
            )
            for i in range(tags_per_report)
        ]
        out += llrp.build_ro_access_report(k + 1, tags)
    return bytes(out)


def time_llrp(stream: bytes) -> tuple[float, int]:
    parser = llrp.LlrpParser("r1")
    view = memoryview(stream)
    n_reads = 0
    w0, t0 = time.perf_counter(), time.process_time()
    for i in range(0, len(stream), CHUNK):
        n_reads += len(parser.feed(view[i : i + CHUNK], 1000.0))
    WALL.append(time.perf_counter() - w0)
    return time.process_time() - t0, n_reads


def make_cycles(n_tags: int, n_cycles: int, seed: int = 2) -> list[list[TagRead]]:
    rng = random.Random(seed)
    gtins = ["80614141123458", "08719139005740", "00008000011378"]
    tags = [sgtin96_from_gtin(gtins[i % 3], 7, i) for i in range(n_tags)]
    shelf = {e: i % 8 for i, e in enumerate(tags)}
    taken = set(rng.sample(tags, n_tags // 100))
    cycles = []
    for c in range(n_cycles):
        now = 5000.0 + c * 1.0
        reads = []
        for e in tags:
            if e in taken and c > n_cycles // 2:
                continue
            s = shelf[e]
            for z in (s - 1, s, s + 1):
                if not 0 <= z < 8 or rng.random() >= (0.65 if z == s else 0.3):
                    continue
                rid, ant = f"r{z // 4 + 1}", z % 4 + 1
                rssi = rng.gauss(-55.0 if z == s else -68.0, 3.0)
                reads.append(TagRead(e, now, rid, ant, rssi))
        cycles.append(reads)
    return cycles


def time_engine(cycles: list[list[TagRead]]) -> tuple[float, int, int]:
    engine = StockEngine([reader_cfg("chafon288", "r1"), reader_cfg("chafon288", "r2")], {})
    n = 0
    n_events = 0
    w0, t0 = time.perf_counter(), time.process_time()
    for reads in cycles:
        now = reads[0].ts if reads else 0.0
        engine.set_reader_health("r1", True, now)
        engine.set_reader_health("r2", True, now)
        engine.ingest(reads)
        n_events += len(engine.tick(now))
        n += len(reads)
    WALL.append(time.perf_counter() - w0)
    return time.process_time() - t0, n, n_events


def shelf_hour(seed: int, adaptive: bool) -> dict[str, object]:
    """The hour-long shelf scenario of tests/rfid/test_shelf_sim.py, summarised."""
    from rfid.events import ItemMoved, ItemRemoved
    from tests.rfid.shelf_sim import GTINS, READER_ID, ShelfSim, shelf_reader_config

    cfg = shelf_reader_config()
    cfg = cfg.model_copy(
        update={"presence": cfg.presence.model_copy(update={"adaptive": adaptive})}
    )
    sim = ShelfSim(seed=seed)
    sim.stock(per_shelf=12)
    engine = StockEngine([cfg], dict.fromkeys(GTINS, 3))
    rng = random.Random(seed * 101)
    taken: dict[str, float] = {}
    moved: dict[str, str] = {}
    removed: dict[str, float] = {}
    moves: list[ItemMoved] = []
    n_reads = 0
    for t in range(3600):
        now = 1_750_000_000.0 + t
        if t >= 120 and t % 150 == 0:
            e = rng.choice(sorted(set(sim.items) - set(moved)))
            del sim.items[e]
            taken[e] = now
        if t in (600, 1500, 2400):
            e = rng.choice(sorted(set(sim.items) - set(moved)))
            sim.items[e] = (sim.items[e] + 2) % sim.n_shelves
            moved[e] = f"shelf-{sim.items[e] + 1}"
        reads = sim.cycle(now)
        n_reads += len(reads)
        engine.set_reader_health(READER_ID, True, now)
        engine.ingest(reads)
        for ev in engine.tick(now):
            if isinstance(ev, ItemRemoved):
                removed[ev.epc] = ev.ts
            elif isinstance(ev, ItemMoved):
                moves.append(ev)
    latencies = sorted(removed[e] - taken[e] for e in removed if e in taken)
    return {
        "seed": seed,
        "adaptive": adaptive,
        "reads": n_reads,
        "taken": len(taken),
        "false_removals": len(set(removed) - set(taken)),
        "missed_removals": len(set(taken) - set(removed)),
        "removal_latency_s": {
            "min": latencies[0],
            "median": statistics.median(latencies),
            "max": latencies[-1],
        },
        "real_moves": len(moved),
        "move_events": len(moves),
        "wrong_moves": sum(1 for m in moves if moved.get(m.epc) != m.zone),
    }


def median_rate(fn: Callable[[], tuple[float, int]], runs: int) -> tuple[float, list[float], float]:
    """(median per CPU second, all rates, median per wall-clock second)."""
    rates = []
    walls = []
    for _ in range(runs):
        elapsed, count = fn()
        rates.append(count / elapsed)
        walls.append(count / WALL[-1])
    return statistics.median(rates), rates, statistics.median(walls)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tags", type=int, default=2000)
    ap.add_argument("--cycles", type=int, default=120)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    results: dict[str, object] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "runs": args.runs,
    }
    parsers: dict[str, dict[str, float]] = {}
    for protocol in sorted(PROTOCOLS):
        for noise in (0.0, 0.05):
            stream = make_stream(protocol, args.frames, noise)

            def run(s: bytes = stream, p: str = protocol) -> tuple[float, int]:
                elapsed, _ = time_parser(p, s)
                return elapsed, args.frames

            med, rates, wall = median_rate(run, args.runs)
            _, n_reads = time_parser(protocol, stream)
            assert n_reads == args.frames, (protocol, noise, n_reads)
            parsers[f"{protocol}{'+noise5%' if noise else ''}"] = {
                "frames_per_s": round(med),
                "min": round(min(rates)),
                "max": round(max(rates)),
                "wall_frames_per_s": round(wall),
            }
    rng = random.Random(3)
    multi = bytearray()
    for k in range(args.frames // 8):
        tags = [(bytes(rng.randrange(256) for _ in range(12)), 40 + i) for i in range(8)]
        multi += chafon.build_inventory_response(tags, antenna=1 + k % 4, status=3)

    def run_multi() -> tuple[float, int]:
        return time_parser("chafon288", bytes(multi))

    med, rates, wall = median_rate(run_multi, args.runs)
    parsers["chafon288 8 tags/frame (reads/s)"] = {
        "frames_per_s": round(med),
        "min": round(min(rates)),
        "max": round(max(rates)),
        "wall_frames_per_s": round(wall),
    }
    for per_report in (1, 8):
        stream = make_llrp_stream(args.frames // per_report, per_report)

        def run_llrp(s: bytes = stream) -> tuple[float, int]:
            return time_llrp(s)

        med, rates, wall = median_rate(run_llrp, args.runs)
        _, n_reads = time_llrp(stream)
        assert n_reads == args.frames // per_report * per_report, (per_report, n_reads)
        name = "llrp (1 tag/report)" if per_report == 1 else "llrp 8 tags/report (reads/s)"
        parsers[name] = {
            "frames_per_s": round(med),  # reports/s with one tag each, else reads/s
            "min": round(min(rates)),
            "max": round(max(rates)),
            "wall_frames_per_s": round(wall),
        }
    results["parsers"] = parsers

    cycles = make_cycles(args.tags, args.cycles)
    eng_rates = []
    eng_walls = []
    for _ in range(args.runs):
        elapsed, n, n_events = time_engine(cycles)
        eng_rates.append(n / elapsed)
        eng_walls.append(n / WALL[-1])
    results["stock_engine"] = {
        "reads_per_s": round(statistics.median(eng_rates)),
        "min": round(min(eng_rates)),
        "max": round(max(eng_rates)),
        "wall_reads_per_s": round(statistics.median(eng_walls)),
        "reads": n,
        "events": n_events,
        "tags": args.tags,
        "cycles": args.cycles,
    }
    results["shelf_hour"] = [shelf_hour(seed, adaptive) for seed, adaptive in SHELF_RUNS]
    results["loadavg_end"] = os.getloadavg()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name, r in parsers.items():
            print(
                f"{name:36} {r['frames_per_s']:>9,} /CPU-s (min {r['min']:,}, max {r['max']:,});"
                f" wall {r['wall_frames_per_s']:,} /s"
            )
        e = results["stock_engine"]
        assert isinstance(e, dict)
        print(
            f"{'stock engine (reads)':36} {e['reads_per_s']:>9,} /CPU-s (min {e['min']:,}, "
            f"max {e['max']:,}); wall {e['wall_reads_per_s']:,} /s; {e['reads']:,} reads,"
            f" {e['events']} events"
        )
        for r in results["shelf_hour"]:  # type: ignore[attr-defined]
            print(f"shelf hour {r}")
        print(f"load average {results['loadavg_start']} -> {results['loadavg_end']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
