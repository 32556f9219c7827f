"""Report latency on a year of data for a fleet, and forecast accuracy over that fleet.

1. Generates `--stores` x `--days` with `central.seed` (hourly summaries of a counting device
   with 2 doors and 4 zones, item-level RFID events, POS rows, the seeded faults) and writes it
   through the storage interface; reports how long generating and loading took. With
   `--fine-days N` one extra store gets N days of 1-minute summaries (the edge default), so the
   report also runs on a store with 60x more summary rows.
2. Times `central.report.build_report` (what `footfall-central report --json` and the
   dashboard run: footfall, occupancy, conversion, dwell, transitions, stock, data quality)
   for a 30-day range ending on the last day:
   - cold: a new process-level connection for a store not queried before, with the database
     file's pages dropped from the OS page cache first (posix_fadvise DONTNEED: only this
     file, no root, the rest of the machine is untouched). SQLite only.
   - warm: the same report again on an open connection.
   - cold, `Storage.seq_gaps` alone for the same range (the query the data-quality part
     spends its cold time in).
   Medians of `--runs`, and the split by part for the warm runs.
3. Forecast: for every store, `forecast_hourly` on the 12 weeks before the end with its
   rolling-origin backtest (4 weeks x 168 h) against seasonal naive; how many stores the
   model beats the baseline on, and the median errors.

Usage:
  .venv/bin/python bench/central_report.py [--db sqlite:///PATH] [--stores 100] [--days 365]
      [--runs 5] [--fine-days 60] [--reuse]
Writes artifacts/bench/central_report.json or --out (and prints it). PostgreSQL: pass
--db postgresql://...; a fresh database is expected (cold there = new connection only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from central import analytics, quality, report  # noqa: E402
from central.forecast import footfall_series, forecast_hourly  # noqa: E402
from central.seed import SeedSpec, seed_storage  # noqa: E402
from central.storage.base import Storage, open_storage  # noqa: E402

DEFAULT_DB = REPO / "artifacts" / "bench" / "central-year.db"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sqlite_path(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite://")) if url.startswith("sqlite://") else None


def drop_file_cache(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if p.exists():
            _evict(p)


def _evict(p: Path) -> None:
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cold_cluster(cluster: Any) -> None:
    """A truly cold PostgreSQL: the server stopped (its shared buffers gone), every file of
    its data directory evicted from the OS page cache, the server started again."""
    cluster.halt()
    for dirpath, _dirs, files in os.walk(cluster.data):
        for name in files:
            _evict(Path(dirpath) / name)
    cluster.start()


def seed(url: str, spec: SeedSpec, fine_days: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    with open_storage(url) as st:
        res = seed_storage(
            st,
            spec,
            batch_size=5000,
            progress=lambda m: log(m) if m.endswith("0 POS rows") else None,
        )
        out: dict[str, Any] = {
            "stores": spec.stores,
            "days": spec.days,
            "interval_s": spec.interval_s,
            "messages": res.messages,
            "pos_rows": res.pos_rows,
            "visitors": res.visitors,
            "generate_s": round(res.generate_s, 1),
            "write_s": round(res.write_s, 1),
        }
        if fine_days:
            fine = SeedSpec(
                stores=1, days=fine_days, interval_s=60, end=spec.end, seed=spec.seed + 1,
                store_prefix="fine-", faults=False,
            )  # fmt: skip
            rf = seed_storage(st, fine, batch_size=5000)
            out["fine_store"] = {
                "store": fine.store_id(0),
                "days": fine_days,
                "interval_s": 60,
                "messages": rf.messages,
                "generate_s": round(rf.generate_s, 1),
                "write_s": round(rf.write_s, 1),
            }
    out["total_s"] = round(time.perf_counter() - t0, 1)
    path = sqlite_path(url)
    if path is not None:
        out["db_bytes"] = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    return out


def last_days(st: Storage, store_id: str, end: datetime, days: int = 30) -> tuple[date, date]:
    """The `days` local dates ending with the last (mostly) complete day before `end`."""
    tz = ZoneInfo(st.store_timezone(store_id) or "UTC")
    last = (end - timedelta(hours=12)).astimezone(tz).date()
    return last - timedelta(days=days - 1), last


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def parts(st: Storage, store_id: str, first: date, last: date, now: datetime) -> dict[str, float]:
    """Milliseconds per part of the report, as build_report composes it."""
    rng = analytics.report_range(st, store_id, first, last)
    out: dict[str, float] = {}
    t, ff = timed(lambda: analytics.footfall(st, rng))
    out["footfall"] = t
    out["occupancy"] = timed(lambda: analytics.occupancy(st, rng, ff))[0]
    out["conversion"] = timed(lambda: analytics.conversion(st, rng, ff))[0]
    out["dwell"] = timed(lambda: analytics.dwell(st, rng))[0]
    out["transitions"] = timed(lambda: analytics.transitions(st, rng))[0]
    out["stock"] = timed(lambda: analytics.stock(st, rng, now))[0]
    out["quality"] = timed(lambda: quality.assess(st, store_id, rng.start, rng.end, now=now))[0]
    return {k: round(v * 1000, 1) for k, v in out.items()}


def latency(
    url: str, stores: list[str], end: datetime, runs: int, cluster: Any = None
) -> dict[str, Any]:
    path = sqlite_path(url)
    # `runs` cold runs, on different stores while there are enough (the page cache is dropped
    # before each, so a repeated store is as cold as a new one).
    cold_stores = [stores[i % len(stores)] for i in range(runs)]
    cold: list[float] = []
    for store_id in cold_stores:
        if path is not None:
            drop_file_cache(path)
        if cluster is not None:
            cold_cluster(cluster)
        t0 = time.perf_counter()
        with open_storage(url) as st:
            first, last = last_days(st, store_id, end)
            report.build_report(st, store_id, first, last, now=end)
        cold.append(time.perf_counter() - t0)
    # The data-quality part's lost-message query alone, cold (it read a store's whole history
    # before migration 2; now only the range's seq span of the covering index).
    gaps_cold: list[float] = []
    for store_id in cold_stores:
        if path is not None:
            drop_file_cache(path)
        if cluster is not None:
            cold_cluster(cluster)
        with open_storage(url) as st:
            first, last = last_days(st, store_id, end)
            rng = analytics.report_range(st, store_id, first, last)
            t0 = time.perf_counter()
            st.seq_gaps(store_id, rng.start, rng.end)
            gaps_cold.append(time.perf_counter() - t0)
    per_store: dict[str, Any] = {}
    with open_storage(url) as st:
        for store_id in stores[:3]:
            first, last = last_days(st, store_id, end)
            report.build_report(st, store_id, first, last, now=end)  # warm-up
            warm = []
            for _ in range(runs):
                t0 = time.perf_counter()
                report.build_report(st, store_id, first, last, now=end)
                warm.append(time.perf_counter() - t0)
            per_store[store_id] = {
                "range": [first.isoformat(), last.isoformat()],
                "warm_median_ms": round(statistics.median(warm) * 1000, 1),
                "warm_runs_ms": [round(w * 1000, 1) for w in warm],
                "parts_ms": parts(st, store_id, first, last, end),
            }
    return {
        "cold_median_ms": round(statistics.median(cold) * 1000, 1),
        "cold_runs_ms": [round(c * 1000, 1) for c in cold],
        "cold_note": "new connection, store not queried before"
        + (", DB file evicted from the page cache" if path is not None else "")
        + (
            ", server restarted with its data directory evicted from the page cache"
            if cluster is not None
            else ""
        ),
        "cold_seq_gaps_median_ms": round(statistics.median(gaps_cold) * 1000, 1),
        "cold_seq_gaps_runs_ms": [round(c * 1000, 1) for c in gaps_cold],
        "warm": per_store,
    }


def forecasts(url: str, end: datetime) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with open_storage(url) as st:
        for s in st.stores():
            series = footfall_series(st, s.store_id, end - timedelta(weeks=12), end)
            t0 = time.perf_counter()
            fc = forecast_hourly(series)
            t = time.perf_counter() - t0
            bt = fc.backtest
            if bt is None:
                continue
            rows.append(
                {
                    "store": s.store_id,
                    "seconds": t,
                    "beats": bt.beats_baseline,
                    "model_mae": bt.model.mae,
                    "naive_mae": bt.baseline.mae,
                    "model_wape": bt.model.wape_pct,
                    "naive_wape": bt.baseline.wape_pct,
                    "model_mase": bt.model.mase,
                    "improvement_pct": bt.improvement_pct,
                    "closures": [d.isoformat() for d in fc.closures],
                }
            )
    med = statistics.median
    return {
        "stores": len(rows),
        "beats_baseline": sum(r["beats"] for r in rows),
        "median_model_mae": round(med(r["model_mae"] for r in rows), 2),
        "median_naive_mae": round(med(r["naive_mae"] for r in rows), 2),
        "median_model_wape_pct": round(med(r["model_wape"] for r in rows), 1),
        "median_naive_wape_pct": round(med(r["naive_wape"] for r in rows), 1),
        "median_model_mase": round(med(r["model_mase"] for r in rows), 3),
        "median_improvement_pct": round(med(r["improvement_pct"] for r in rows), 1),
        "min_improvement_pct": round(min(r["improvement_pct"] for r in rows), 1),
        "median_forecast_ms": round(med(r["seconds"] for r in rows) * 1000, 1),
        "not_beating": [r["store"] for r in rows if not r["beats"]],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default=f"sqlite://{DEFAULT_DB}")
    ap.add_argument("--stores", type=int, default=100)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--interval-s", type=int, default=3600)
    ap.add_argument("--fine-days", type=int, default=60)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--reuse", action="store_true", help="skip seeding, use the existing data")
    ap.add_argument("--skip-forecast", action="store_true")
    ap.add_argument(
        "--pg-cluster",
        type=Path,
        help="use a throwaway PostgreSQL cluster kept in this directory (made on first use) "
        "instead of --db; cold runs then restart it with its files evicted from the page cache",
    )
    ap.add_argument(
        "--out", type=Path, default=REPO / "artifacts" / "bench" / "central_report.json"
    )
    args = ap.parse_args()
    spec = SeedSpec(stores=args.stores, days=args.days, interval_s=args.interval_s)
    result: dict[str, Any] = {
        "db": args.db,
        "loadavg_start": os.getloadavg(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    cluster = None
    if args.pg_cluster is not None:
        from tests.central.conftest import PgCluster

        cluster = PgCluster(durable=True, root=args.pg_cluster.resolve()).start()
        args.db = result["db"] = cluster.url("footfall_report")
        if not args.reuse:
            import psycopg

            with psycopg.connect(cluster.url(), autocommit=True) as conn:
                conn.execute("DROP DATABASE IF EXISTS footfall_report")
                conn.execute("CREATE DATABASE footfall_report")
    path = sqlite_path(args.db)
    if not args.reuse:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                p.unlink(missing_ok=True)
        log(f"seeding {spec.stores} stores x {spec.days} days into {args.db}")
        result["seed"] = seed(args.db, spec, args.fine_days)
        log(f"seeded: {result['seed']}")
    stores = [spec.store_id(i) for i in range(0, spec.stores, max(1, spec.stores // 10))]
    log("report latency")
    result["report_30d"] = latency(args.db, stores, spec.end, args.runs, cluster)
    if args.fine_days:
        fine = latency(args.db, ["fine-001"], spec.end, args.runs, cluster)
        result["report_30d_fine_store"] = fine
    if not args.skip_forecast:
        log("forecast backtests")
        result["forecast"] = forecasts(args.db, spec.end)
    result["loadavg_end"] = os.getloadavg()
    if cluster is not None:
        cluster.halt()
    print(json.dumps(result, indent=2, default=str))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
