"""The demo's ending: central's report beside the simulated truth, as JSON and as text.

Counted figures come from central (its report on the SQLite file the demo's ingest wrote), so
the comparison covers the whole path: noisy detections -> tracker -> counters -> aggregator ->
outbox -> MQTT -> ingest -> analytics. The truth comes from the simulator, measured the same way
(see truth.py).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from central.export import export
from central.report import build_report, report_csv
from central.storage import open_storage
from edge_agent.demo import floor_plan as fp
from edge_agent.demo.run import STORE_ID, STORE_TZ, DemoRun
from edge_agent.demo.store_sim import FrameStream


def _err_pct(counted: float, true: float) -> float | None:
    return None if true == 0 else round(100.0 * (counted - true) / true, 1)


def _true_in_store_at(run: DemoRun, instants_s: list[float]) -> list[int]:
    """True number of shoppers inside (feet above the storefront) at the given sim seconds."""
    fps = run.options.fps
    frames = sorted({min(run.day.n_frames - 1, max(0, round(s * fps))) for s in instants_s})
    stream = FrameStream(run.day)
    out = []
    for f in frames:
        feet, _ = stream.at(f)
        out.append(int((feet[:, 1] < fp.STOREFRONT_Y_PX).sum()) if feet.size else 0)
    return out


def _occupancy(run: DemoRun, summaries: list[Any]) -> dict[str, Any]:
    """Running in-out total at each summary end (what central can know) vs truth then."""
    t0 = run.opening.timestamp()
    running, counted, instants = 0, [], []
    for s in sorted(summaries, key=lambda m: m.interval_end):
        for ln in s.lines:
            running += ln.in_count - ln.out_count
        counted.append(max(0, running))
        instants.append(s.interval_end.timestamp() - t0)
    true = _true_in_store_at(run, instants) if instants else [0]
    return {
        "counted_peak": max(counted, default=0),
        "true_peak_same_instants": max(true, default=0),
        "true_peak_any_frame": run.truth.occupancy_peak,
        "resolution_s": run.options.interval_s,
        "counted_end_of_day": counted[-1] if counted else 0,
    }


def _stockouts(run: DemoRun, central_stock: dict[str, Any]) -> dict[str, Any]:
    """Match central's stock-outs to the true empty-shelf spans (same product, start within
    the window after the true start), and compare when each ended (the shelf was refilled)."""
    t0 = run.opening.timestamp()
    window_s = run.stockout_window_s
    names = {p.gtin: p for p in fp.PRODUCTS}

    def rel(iso: str | None) -> float | None:
        return None if iso is None else datetime.fromisoformat(iso).timestamp() - t0

    detected = [
        (o["gtin"], rel(o["start"]), rel(o.get("end"))) for o in central_stock.get("stock_outs", [])
    ]
    used: set[int] = set()
    rows = []
    for span in run.truth.stockouts:
        match = None
        for k, (g, det_start, _end) in enumerate(detected):
            if (
                k not in used
                and g == span.gtin
                and det_start is not None
                and 0 <= det_start - span.start_s <= window_s
            ):
                match = k
                break
        end_s = span.end_s if span.end_s is not None else run.day.n_frames / run.options.fps
        row: dict[str, Any] = {
            # An empty spell shorter than absence timeout + low-stock hold ends before the
            # engine may call it out (that debounce is what keeps cross-reads quiet).
            "detectable": end_s - span.start_s >= run.stockout_min_s,
            "gtin": span.gtin,
            "product": names[span.gtin].name,
            "zone": span.zone,
            "true_start": _iso(t0 + span.start_s),
            "true_end": None if span.end_s is None else _iso(t0 + span.end_s),
            "detected_start": None,
            "detected_end": None,
            "delay_s": None,
            "end_delay_s": None,
        }
        if match is not None:
            used.add(match)
            _, det_start, det_end = detected[match]
            assert det_start is not None
            row["detected_start"] = _iso(t0 + det_start)
            row["delay_s"] = round(det_start - span.start_s, 1)
            if det_end is not None:
                row["detected_end"] = _iso(t0 + det_end)
                if span.end_s is not None:
                    row["end_delay_s"] = round(det_end - span.end_s, 1)
        rows.append(row)
    false = [
        {"gtin": g, "detected_start": None if s is None else _iso(t0 + s)}
        for k, (g, s, _e) in enumerate(detected)
        if k not in used
    ]
    return {
        "true": len(run.truth.stockouts),
        "detectable": sum(1 for r in rows if r["detectable"]),
        "min_detectable_s": run.stockout_min_s,
        "detected": sum(1 for r in rows if r["detected_start"] is not None),
        "false_alarms": len(false),
        "items": rows,
        "false_items": false,
        "match_window_s": window_s,
    }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(STORE_TZ)).isoformat(timespec="seconds")


def build(run: DemoRun) -> dict[str, Any]:
    """The comparison document (the `--json` output) and the files central exported."""
    day = run.opening.astimezone(ZoneInfo(STORE_TZ)).date()
    url = f"sqlite://{run.central_db}"
    storage = open_storage(url)
    try:
        doc = build_report(storage, STORE_ID, day, day, now=run.closing + timedelta(minutes=1))
        summaries = list(
            storage.summary_messages(
                STORE_ID, run.opening - timedelta(hours=1), run.closing + timedelta(hours=1)
            )
        )
        exported = export(storage, run.out_dir / "export", "csv", store_id=STORE_ID)
    finally:
        storage.close()
    report_json = run.out_dir / "central_report.json"
    report_json.write_text(json.dumps(doc, indent=1, default=str))
    hourly_csv = run.out_dir / "central_report_hourly.csv"
    hourly_csv.write_text(report_csv(doc))

    truth = run.truth
    lines = {}
    for key, counts in doc["footfall"]["lines"].items():
        line_id = key.split("/", 1)[1]
        t_in, t_out = truth.line_in.get(line_id, 0), truth.line_out.get(line_id, 0)
        lines[key] = {
            "in": {
                "counted": counts["in"],
                "true": t_in,
                "error_pct": _err_pct(counts["in"], t_in),
            },
            "out": {
                "counted": counts["out"],
                "true": t_out,
                "error_pct": _err_pct(counts["out"], t_out),
            },
        }
    dwell = {}
    for key, d in doc["dwell"]["zones"].items():
        zone = key.split("/", 1)[1]
        true_med = truth.zone_dwell_median_s.get(zone)
        dwell[key] = {
            "visits": {"counted": d["dwell_count"], "true": truth.zone_visits.get(zone, 0)},
            "median_s": {
                "counted": d["median_s"],
                "true": None if true_med is None else round(true_med, 1),
                "method": d["method"],
            },
        }
    conv = doc["conversion"]
    true_rate = truth.transactions / truth.visitors if truth.visitors else None
    produced = dict(run.edge.produced)
    stored = dict(run.central_stored)
    sim_s = (run.closing - run.opening).total_seconds()
    return {
        "simulation": True,
        "note": "SIMULATION: synthetic shoppers, simulated detector output and RFID radio; "
        "real tracker, counters, stock engine, aggregator, outbox, MQTT and central",
        "simulated_day": {
            "date": day.isoformat(),
            "timezone": STORE_TZ,
            "opening": _iso(run.opening.timestamp()),
            "closing": _iso(run.closing.timestamp()),
            "simulated_s": round(sim_s, 1),
            "profile": "09:00-21:00 arrival profile compressed into the simulated span; "
            "walking, browsing and queueing run at real speed",
            "fps": run.options.fps,
            "frames": round(sim_s * run.options.fps),
            "seed": run.options.seed,
            "visitors": truth.visitors,
            "passers_by": truth.passers,
        },
        "lines": lines,
        "occupancy": _occupancy(run, summaries),
        "dwell": dwell,
        "conversion": {
            "counted": {
                "visitors": conv["visitors"],
                "transactions": conv["transactions"],
                "rate": conv["conversion"],
            },
            "true": {
                "visitors": truth.visitors,
                "transactions": truth.transactions,
                "rate": None if true_rate is None else round(true_rate, 4),
            },
        },
        "stock_outs": _stockouts(run, doc["stock"]),
        "messages": {
            "produced": produced,
            "produced_total": sum(produced.values()),
            "delivered": run.edge.delivered,
            "undelivered": run.edge.undelivered,
            "stored": stored,
            "stored_total": sum(stored.values()),
            "all_stored": all(stored.get(k, 0) >= n for k, n in produced.items()),
        },
        "noise": {
            **run.detector_stats,
            "rfid_read_rate": round(
                run.reader_stats["sim"].tag_reports
                / max(1, run.reader_stats["sim"].tag_opportunities),
                3,
            ),
            "rfid_parser_rejects": run.reader_stats["parser_rejects"],
        },
        "broker": run.broker_kind,
        "timing": {"wall_s": round(run.wall_s, 1), "simulation_wall_s": round(run.sim_wall_s, 1)},
        "output": {
            "dir": str(run.out_dir),
            "frames": [str(p) for p in run.frames],
            "clip": None if run.clip is None else str(run.clip),
            "central_db": str(run.central_db),
            "central_report_json": str(report_json),
            "central_report_csv": str(hourly_csv),
            "exported_csv": {e.table: str(e.path) for e in exported},
            "dashboard_command": f"footfall-central dashboard --db {url}",
        },
        "central_report": doc,
    }


def _fmt_err(e: float | None) -> str:
    return "  n/a" if e is None else f"{e:+.1f}%"


def text(doc: dict[str, Any]) -> str:
    sd, msgs, so, occ, conv = (
        doc["simulated_day"],
        doc["messages"],
        doc["stock_outs"],
        doc["occupancy"],
        doc["conversion"],
    )
    bar = "=" * 78
    out = [
        bar,
        "  SIMULATION  -  footfall demo: a synthetic store, the real pipeline",
        bar,
        f"Simulated day   {sd['date']} {sd['opening'][11:19]}-{sd['closing'][11:19]} "
        f"{sd['timezone']} ({sd['simulated_s'] / 60:.1f} simulated min, {sd['frames']} frames "
        f"at {sd['fps']:g} fps, seed {sd['seed']})",
        f"                {sd['profile']}",
        f"Shoppers        {sd['visitors']} entered, {sd['passers_by']} walked past",
        f"Detector noise  {doc['noise']['missed']} of {doc['noise']['true_boxes']} boxes missed, "
        f"{doc['noise']['false_positives']} false positives; RFID read rate "
        f"{doc['noise']['rfid_read_rate']:.0%} per cycle",
        "",
        f"{'':30}{'counted':>10}{'true':>10}{'error':>10}",
    ]
    for key, d in doc["lines"].items():
        for direction in ("in", "out"):
            c = d[direction]
            out.append(
                f"{key + ' ' + direction:30}{c['counted']:>10}{c['true']:>10}"
                f"{_fmt_err(c['error_pct']):>10}"
            )
    out.append(
        f"{'occupancy peak (1 min)':30}{occ['counted_peak']:>10}"
        f"{occ['true_peak_same_instants']:>10}   (true peak at any frame: "
        f"{occ['true_peak_any_frame']})"
    )
    c, t = conv["counted"], conv["true"]
    rate_c = "n/a" if c["rate"] is None else f"{c['rate']:.1%}"
    rate_t = "n/a" if t["rate"] is None else f"{t['rate']:.1%}"
    out.append(
        f"{'conversion':30}{rate_c:>10}{rate_t:>10}   ({c['transactions']} transactions / "
        f"{c['visitors']} counted visitors; true {t['transactions']} / {t['visitors']})"
    )
    out += ["", f"{'dwell (median s)':30}{'counted':>10}{'true':>10}{'visits':>10}{'true':>8}"]
    for key, d in doc["dwell"].items():
        med = d["median_s"]
        out.append(
            f"{key:30}{_num(med['counted']):>10}{_num(med['true']):>10}"
            f"{d['visits']['counted']:>10}{d['visits']['true']:>8}"
        )
    out += [
        "",
        f"Stock-outs      {so['detected']} of {so['true']} detected, "
        f"{so['false_alarms']} false alarms ({so['detectable']} lasted the "
        f"{so['min_detectable_s']:.0f} s the engine needs:",
        "                absence timeout + low-stock hold); staff refill a shelf 3 min after "
        "it empties",
    ]
    for r in so["items"]:
        det = (
            f"detected {r['detected_start'][11:19]} (+{r['delay_s']:.0f} s)"
            if r["detected_start"]
            else ("NOT detected" if r["detectable"] else "too short to detect")
        )
        line = f"  {r['product']:22} {r['zone']:8} empty {r['true_start'][11:19]}  {det}"
        if r["true_end"]:
            seen = (
                f"seen {r['detected_end'][11:19]} (+{r['end_delay_s']:.0f} s)"
                if r["end_delay_s"] is not None
                else "refill NOT seen"
            )
            line += f"; refilled {r['true_end'][11:19]}, {seen}"
        out.append(line)
    for r in so["false_items"]:
        out.append(f"  false alarm: {r['gtin']} at {r['detected_start']}")
    dq = doc["central_report"].get("data_quality")
    if dq is not None:
        out.append(
            f"Data quality    central reports {dq['counts'] or 'no findings'} (expected here: the "
            "simulated devices report nothing before opening and go offline when the demo ends)"
        )
    out += [
        "",
        f"Messages        {msgs['produced_total']} produced {msgs['produced']}, "
        f"{msgs['delivered']} delivered via {doc['broker']}, {msgs['stored_total']} stored "
        f"by central{'' if msgs['all_stored'] else '  (SOME MISSING)'}",
        f"Wall time       {doc['timing']['wall_s']:.1f} s "
        f"(simulation loop {doc['timing']['simulation_wall_s']:.1f} s)",
        "",
        f"Output          {doc['output']['dir']}",
        f"  frames        {len(doc['output']['frames'])} PNG in "
        f"{doc['output']['dir']}/frames"
        + (f", clip {doc['output']['clip']}" if doc["output"]["clip"] else ""),
        f"  central DB    {doc['output']['central_db']}",
        f"  reports       {doc['output']['central_report_json']}",
        f"                {doc['output']['central_report_csv']}",
        f"  CSV export    {len(doc['output']['exported_csv'])} tables in "
        f"{doc['output']['dir']}/export ({', '.join(doc['output']['exported_csv'])})",
        f"  dashboard     {doc['output']['dashboard_command']}",
        bar,
    ]
    return "\n".join(out) + "\n"


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}"


__all__ = ["build", "text"]
