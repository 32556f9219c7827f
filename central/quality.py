"""Data quality: can the numbers of a store be trusted for a period?

Three families of findings, each a typed dataclass with a one-line ``message``:

* devices offline (the latest retained status says offline, or an edge device not heard for
  too long: tills are exempt from the silence rule, they send only sales) and sources
  (cameras, readers) that a status reports as not connected;
* missing intervals: holes in a device's ``seq`` stream (messages lost on the way) and hours in
  which a device that normally counts sent no summary at all;
* sudden count drops: a line whose hourly count falls far below the same hour-of-week in the
  previous weeks. When the store's other cameras carry on as usual the camera was probably
  blocked or moved; when lines on at least two cameras drop together it is a store-wide drop
  (holiday, closure, power cut) and is reported as information, not as a device fault. The
  lines of one camera are no witnesses for each other (covering the camera drops them all),
  so in a store whose lines are all on one camera every drop is a warning.

The detectors are pure functions over the storage row types; ``assess`` fetches the rows.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np

from central.forecast import local_week_lag
from central.storage.base import (
    DeviceRow,
    FootfallHour,
    SeqGap,
    Storage,
    SummaryRow,
    ZoneHour,
)

Severity = Literal["error", "warning", "info"]
HEALTHY_SOURCE_STATES = frozenset({"connected", "ok", "running", "streaming", "reading"})
H = timedelta(hours=1)


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: Severity
    store_id: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            out[key] = value.isoformat() if isinstance(value, datetime) else value
        return out


@dataclass(frozen=True)
class DeviceOffline(Finding):
    device_id: str = ""
    last_seen: datetime | None = None
    reason: str = ""  # "status offline" or "silent"


@dataclass(frozen=True)
class SourceUnhealthy(Finding):
    device_id: str = ""
    source_id: str = ""
    source_kind: str = ""
    state: str = ""
    status_at: datetime | None = None


@dataclass(frozen=True)
class MissingData(Finding):
    device_id: str = ""
    start: datetime | None = None
    end: datetime | None = None
    cause: str = ""  # "lost_messages" (seq gap) or "no_summaries" (time gap)
    missing_messages: int | None = None
    missing_hours: float = 0.0
    cameras: tuple[str, ...] = ()  # for hour gaps found in the hourly rollups
    devices: tuple[str, ...] = ()  # the device of each of `cameras` ("" when unknown)


@dataclass(frozen=True)
class CountDrop(Finding):
    device_id: str = ""
    camera_id: str = ""
    line_id: str = ""  # "" for a store-wide drop
    start: datetime | None = None
    end: datetime | None = None
    expected: float = 0.0  # visitors the same hours of previous weeks suggest
    actual: float = 0.0
    scope: str = "line"  # "line" (camera blocked/moved) or "store" (every door dropped)


@dataclass(frozen=True)
class QualityReport:
    store_id: str
    start: datetime
    end: datetime
    checked_at: datetime
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity in ("error", "warning") for f in self.findings)

    def by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for f in self.findings:
            counts[f.kind] += 1
        return dict(counts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "store_id": self.store_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "checked_at": self.checked_at.isoformat(),
            "ok": self.ok,
            "counts": self.by_kind(),
            "findings": [f.to_dict() for f in self.findings],
        }


def _fmt(ts: datetime | None) -> str:
    return "never" if ts is None else ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def find_offline_devices(
    devices: Sequence[DeviceRow],
    now: datetime,
    *,
    silent_after_s: float = 900.0,
    expected_to_send: Collection[str] | None = None,
) -> list[Finding]:
    """Devices whose latest status is offline or that have been silent too long, and sources
    a status reports as unhealthy. Silence is a fault only for the devices in
    ``expected_to_send`` (all when None): a till sends nothing between sales."""
    out: list[Finding] = []
    for d in devices:
        silent_s = (now - d.last_seen).total_seconds()
        if d.state == "offline":
            out.append(
                DeviceOffline(
                    kind="device_offline",
                    severity="error",
                    store_id=d.store_id,
                    message=f"device {d.device_id} reported offline at {_fmt(d.status_at)} "
                    f"(last message {_fmt(d.last_seen)})",
                    device_id=d.device_id,
                    last_seen=d.last_seen,
                    reason="status offline",
                )
            )
            continue
        watched = expected_to_send is None or d.device_id in expected_to_send
        if watched and silent_s > silent_after_s:
            out.append(
                DeviceOffline(
                    kind="device_offline",
                    severity="error",
                    store_id=d.store_id,
                    message=f"device {d.device_id} silent for {silent_s / 3600:.1f} h "
                    f"(last message {_fmt(d.last_seen)})",
                    device_id=d.device_id,
                    last_seen=d.last_seen,
                    reason="silent",
                )
            )
        out.extend(_unhealthy_sources(d))
    return out


def _status_sources(d: DeviceRow) -> list[Any]:
    if not d.status_json:
        return []
    try:
        sources = json.loads(d.status_json).get("sources", [])
    except (ValueError, AttributeError):
        return []
    return sources if isinstance(sources, list) else []


def _unhealthy_sources(d: DeviceRow) -> list[Finding]:
    out: list[Finding] = []
    for s in _status_sources(d):
        if not isinstance(s, dict):
            continue
        state = str(s.get("state", ""))
        if state.lower() in HEALTHY_SOURCE_STATES:
            continue
        out.append(
            SourceUnhealthy(
                kind="source_unhealthy",
                severity="warning",
                store_id=d.store_id,
                message=f"{s.get('kind', 'source')} {s.get('id', '?')} on {d.device_id} is "
                f"{state or 'in an unknown state'} (status of {_fmt(d.status_at)})",
                device_id=d.device_id,
                source_id=str(s.get("id", "")),
                source_kind=str(s.get("kind", "")),
                state=state,
                status_at=d.status_at,
            )
        )
    return out


def find_lost_messages(gaps: Sequence[SeqGap]) -> list[Finding]:
    return [
        MissingData(
            kind="missing_data",
            severity="warning",
            store_id=g.store_id,
            message=f"{g.missing} message(s) from {g.device_id} never arrived "
            f"(seq {g.after_seq + 1}..{g.before_seq - 1}, between {_fmt(g.after_at)} and "
            f"{_fmt(g.before_at)})",
            device_id=g.device_id,
            start=g.after_at,
            end=g.before_at,
            cause="lost_messages",
            missing_messages=g.missing,
            missing_hours=(g.before_at - g.after_at).total_seconds() / 3600,
        )
        for g in gaps
    ]


def find_missing_summaries(
    summaries: Sequence[SummaryRow], start: datetime, end: datetime, *, min_gap_intervals: int = 1
) -> list[Finding]:
    """Stretches of [start, end) in which a summarising device sent nothing (to the interval).

    ``assess`` works per hour from the rollups instead (cheaper at 1-minute summaries); this
    one is for callers that need interval precision for a device.

    Only devices with at least one summary in the range are considered (a device that never
    counts is not a camera device); a device that stops before ``end`` shows up as a trailing
    gap, one that starts late as a leading gap.
    """
    per_device: dict[tuple[str, str], list[SummaryRow]] = defaultdict(list)
    for s in summaries:
        per_device[(s.store_id, s.device_id)].append(s)
    out: list[Finding] = []
    for (store_id, device_id), rows in sorted(per_device.items()):
        rows.sort(key=lambda r: r.interval_start)
        widths = [(r.interval_end - r.interval_start).total_seconds() for r in rows]
        interval_s = float(np.median(widths))
        cursor = start
        gaps: list[tuple[datetime, datetime]] = []
        for r in rows:
            if (r.interval_start - cursor).total_seconds() >= min_gap_intervals * interval_s:
                gaps.append((cursor, r.interval_start))
            cursor = max(cursor, r.interval_end)
        if (end - cursor).total_seconds() >= min_gap_intervals * interval_s:
            gaps.append((cursor, end))
        for g0, g1 in gaps:
            hours = (g1 - g0).total_seconds() / 3600
            n_int = round((g1 - g0).total_seconds() / interval_s)
            out.append(
                MissingData(
                    kind="missing_data",
                    severity="warning",
                    store_id=store_id,
                    message=f"no summaries from {device_id} for {hours:.1f} h "
                    f"({n_int} interval(s), {_fmt(g0)} - {_fmt(g1)})",
                    device_id=device_id,
                    start=g0,
                    end=g1,
                    cause="no_summaries",
                    missing_hours=hours,
                )
            )
    return out


def find_missing_hours(
    store_id: str,
    rows: Sequence[FootfallHour | ZoneHour],
    hours: Sequence[datetime],
) -> list[Finding]:
    """Runs of ``hours`` (local hour starts, as UTC instants) in which a camera that counts in
    this store sent nothing, from the hourly rollups (devices send zero intervals, so a
    counting camera has a row every hour). Cameras missing the same hours (one device down)
    are reported together. ``rows`` may reach further back than ``hours``: a camera seen only
    there and silent throughout ``hours`` is reported too. A camera is a (device, camera id)
    pair: ids are unique only per device, and a live `door` must not hide a dead one.
    """
    seen: dict[tuple[str, str], set[datetime]] = defaultdict(set)
    for r in rows:
        seen[(r.device_id, r.camera_id)].add(r.hour_start)
    runs: dict[tuple[datetime, datetime], list[tuple[str, str]]] = defaultdict(list)
    for camera, have in sorted(seen.items()):
        run_start: datetime | None = None
        for h in [*hours, None]:
            missing = h is not None and h not in have
            if missing and run_start is None:
                run_start = h
            elif not missing and run_start is not None:
                end = h if h is not None else hours[-1] + H
                runs[(run_start, end)].append(camera)
                run_start = None
    out: list[Finding] = []
    for (g0, g1), cameras in sorted(runs.items()):
        n = (g1 - g0).total_seconds() / 3600
        names = ", ".join(f"{c} on {d}" if d else c for d, c in cameras)
        devices = {d for d, _ in cameras}
        out.append(
            MissingData(
                kind="missing_data",
                severity="warning",
                store_id=store_id,
                message=f"no data from camera{'s' if len(cameras) > 1 else ''} {names} for "
                f"{n:.0f} h ({_fmt(g0)} - {_fmt(g1)})",
                device_id=devices.pop() if len(devices) == 1 else "",
                start=g0,
                end=g1,
                cause="no_summaries",
                missing_hours=n,
                cameras=tuple(c for _, c in cameras),
                devices=tuple(d for d, _ in cameras),
            )
        )
    return out


def _local_hours(start: datetime, end: datetime, timezone: str) -> list[datetime]:
    """Local wall-clock hour starts in [start, end) as UTC instants (the rollup keys)."""
    tz = ZoneInfo(timezone)
    t = start.astimezone(tz).replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    out = []
    while t < end:
        if t >= start:
            out.append(t)
        t = (t + H).astimezone(tz).replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    return out


@dataclass(frozen=True)
class DropParams:
    baseline_weeks: int = 4
    min_expected_per_h: float = 8.0  # quiet hours cannot show a drop
    max_ratio: float = 0.3  # actual below 30% of the usual count
    min_sigma: float = 4.0  # and at least 4 Poisson standard deviations below it
    min_hours: int = 2  # a run of at least this many hours
    others_ok_ratio: float = 0.6  # other cameras at >= 60% of usual: this line's camera is at fault


def _line_matrix(
    rows: Sequence[FootfallHour], history_start: datetime, n_hours: int
) -> tuple[list[tuple[str, str, str]], np.ndarray]:
    """One row per (device, camera, line): camera ids are unique only per device."""
    keys = sorted({(r.device_id, r.camera_id, r.line_id) for r in rows})
    index = {k: i for i, k in enumerate(keys)}
    mat = np.full((len(keys), n_hours), np.nan)
    for r in rows:
        h = int((r.hour_start - history_start).total_seconds() // 3600)
        if 0 <= h < n_hours:
            i = index[(r.device_id, r.camera_id, r.line_id)]
            mat[i, h] = r.in_count if math.isnan(mat[i, h]) else mat[i, h] + r.in_count
    return keys, mat


def _baseline(mat: np.ndarray, weeks: int, lag: np.ndarray) -> np.ndarray:
    """Median of the same local hour in each of the previous `weeks` weeks (NaN when < 2
    known). ``lag`` maps an hour to the same local hour a week earlier (-1: none)."""
    lags = np.full((weeks, *mat.shape), np.nan)
    idx = np.arange(mat.shape[-1])
    for k in range(weeks):
        idx = np.where(idx >= 0, lag[np.maximum(idx, 0)], -1)
        ok = idx >= 0
        lags[k][..., ok] = mat[..., idx[ok]]
    known = np.sum(~np.isnan(lags), axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: handled just below
        med = np.nanmedian(lags, axis=0)
    return np.where(known >= 2, med, np.nan)


def _flagged(actual: np.ndarray, expected: np.ndarray, p: DropParams) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (
            ~np.isnan(actual)
            & (expected >= p.min_expected_per_h)
            & (actual <= p.max_ratio * expected)
            & (expected - actual >= p.min_sigma * np.sqrt(np.maximum(expected, 1e-9)))
        )


def _runs(flags: np.ndarray, quiet: np.ndarray) -> list[tuple[int, int]]:
    """Runs of flagged hours; quiet hours (too few expected to judge) do not break a run."""
    runs: list[tuple[int, int]] = []
    i, n = 0, len(flags)
    while i < n:
        if not flags[i]:
            i += 1
            continue
        j = last = i
        while j + 1 < n and (flags[j + 1] or quiet[j + 1]):
            j += 1
            if flags[j]:
                last = j
        runs.append((i, last + 1))
        i = last + 1
    return runs


def _camera_sums(
    mat: np.ndarray, base: np.ndarray, cam_of: np.ndarray, n_cameras: int
) -> tuple[np.ndarray, np.ndarray]:
    """Actual (NaN in hours none of its lines reported) and expected count per camera."""
    act = np.full((n_cameras, mat.shape[1]), np.nan)
    exp = np.zeros((n_cameras, mat.shape[1]))
    for j in range(n_cameras):
        sel = cam_of == j
        known = np.any(~np.isnan(mat[sel]), axis=0)
        act[j] = np.where(known, np.nansum(mat[sel], axis=0), np.nan)
        exp[j] = np.nansum(base[sel], axis=0)
    return act, exp


def find_count_drops(
    rows: Sequence[FootfallHour],
    store_id: str,
    start: datetime,
    end: datetime,
    *,
    params: DropParams | None = None,
    timezone: str = "UTC",
) -> list[Finding]:
    """Sudden drops in [start, end); ``rows`` must also cover the baseline weeks before start.

    The baseline is the same local hour of the week (DST aware) in the previous weeks. A line
    that drops is a warning unless lines of other cameras (device, camera id) drop with it;
    a drop of lines on at least two cameras at once is one store-wide, informational finding.
    """
    p = params or DropParams()
    history_start = start - timedelta(weeks=p.baseline_weeks)
    n_hours = math.ceil((end - history_start).total_seconds() / 3600)
    if not rows:
        return []
    keys, mat = _line_matrix(rows, history_start, n_hours)
    base = _baseline(mat, p.baseline_weeks, local_week_lag(history_start, n_hours, timezone))
    first = p.baseline_weeks * 168
    cameras = {cam: j for j, cam in enumerate(sorted({(d, c) for d, c, _ in keys}))}
    cam_of = np.array([cameras[(d, c)] for d, c, _ in keys])
    cam_act, cam_exp = _camera_sums(mat, base, cam_of, len(cameras))
    # Store-wide drops first: a line whose other cameras dropped with it is left to the
    # store-wide finding only when there is one for those hours (else it is reported alone).
    store_out: list[Finding] = []
    store_wide = np.zeros(n_hours, dtype=bool)
    if len(cameras) > 1:
        store_act = np.nansum(mat, axis=0)
        store_exp = np.nansum(base, axis=0)
        store_known = np.any(~np.isnan(mat), axis=0)
        with np.errstate(invalid="ignore"):
            cameras_down = np.sum(cam_act < p.others_ok_ratio * cam_exp, axis=0)
        store_flags = _flagged(np.where(store_known, store_act, np.nan), store_exp, p)
        store_flags &= cameras_down >= 2
        store_flags[:first] = False
        quiet = ~(store_exp >= p.min_expected_per_h)
        for a, b in _runs(store_flags, quiet):
            if b - a < p.min_hours:
                continue
            store_wide[a:b] = True
            t0, t1 = history_start + a * H, history_start + b * H
            exp_sum = float(np.sum(store_exp[a:b]))
            act_sum = float(np.sum(store_act[a:b]))
            store_out.append(
                CountDrop(
                    kind="count_drop",
                    severity="info",
                    store_id=store_id,
                    message=f"every door counted less: {act_sum:.0f} instead of about "
                    f"{exp_sum:.0f} over {b - a} h from {_fmt(t0)} (holiday or closure?)",
                    start=t0,
                    end=t1,
                    expected=exp_sum,
                    actual=act_sum,
                    scope="store",
                )
            )
    out: list[Finding] = []
    for i, (device_id, camera_id, line_id) in enumerate(keys):
        flags = _flagged(mat[i], base[i], p)
        flags[:first] = False
        quiet = ~(base[i] >= p.min_expected_per_h)
        others = np.arange(len(cameras)) != cam_of[i]
        for a, b in _runs(flags, quiet):
            if b - a < p.min_hours:
                continue
            exp_sum = float(np.nansum(base[i, a:b]))
            act_sum = float(np.nansum(mat[i, a:b]))
            # Only other cameras can tell a closure from a blocked camera: the lines of one
            # camera drop together when it is covered. A camera that sent nothing is no
            # evidence either way (its silence is a missing-data finding of its own).
            o_act, o_exp = cam_act[others, a:b], cam_exp[others, a:b]
            heard = ~np.isnan(o_act)
            others_act, others_exp = float(np.sum(o_act[heard])), float(np.sum(o_exp[heard]))
            others_dropped = others_exp > 0 and others_act < p.others_ok_ratio * others_exp
            if others_dropped and store_wide[a:b].any():
                continue  # other cameras dropped too: the store-wide finding covers it
            t0, t1 = history_start + a * H, history_start + b * H
            if len(keys) == 1:
                alone = " (the store's only counting line)"
            elif len(cameras) == 1:
                alone = " (every counting line of the store is on this camera)"
            else:
                alone = ""
            on = f" ({device_id})" if device_id else ""
            out.append(
                CountDrop(
                    kind="count_drop",
                    severity="warning",
                    store_id=store_id,
                    message=f"line {line_id} on camera {camera_id}{on} counted {act_sum:.0f} "
                    f"instead of about {exp_sum:.0f} over {b - a} h from {_fmt(t0)}; camera "
                    f"blocked or moved?{alone}",
                    device_id=device_id,
                    camera_id=camera_id,
                    line_id=line_id,
                    start=t0,
                    end=t1,
                    expected=exp_sum,
                    actual=act_sum,
                    scope="line",
                )
            )
    out += store_out
    return out


# How far before its last message to look for what a device sends. A counting device sends a
# summary every interval (at most an hour), zero intervals too, so its last summary is close
# to its last message; a day leaves room for a late backlog and clock skew.
KIND_LOOKBACK = timedelta(days=1)


def _expected_to_send(storage: Storage, devices: Sequence[DeviceRow]) -> set[str]:
    """The ``devices`` whose silence is a fault: edge devices, known by a status listing
    sources (cameras, readers; the agent publishes one every minute) or by the summaries
    (counting) or stock events (RFID) they sent before falling silent. What is left sent
    neither, normally a till or POS bridge, which has nothing to send between sales."""
    out: set[str] = set()
    for d in devices:
        if _status_sources(d):
            out.add(d.device_id)
            continue
        lo, hi = d.last_seen - KIND_LOOKBACK, d.last_seen + H
        if storage.summaries(d.store_id, lo, hi, device_id=d.device_id) or any(
            e.device_id == d.device_id for e in storage.stock_events(d.store_id, lo, hi)
        ):
            out.add(d.device_id)
    return out


def assess(
    storage: Storage,
    store_id: str,
    start: datetime,
    end: datetime,
    *,
    now: datetime | None = None,
    silent_after_s: float = 900.0,
    drop_params: DropParams | None = None,
) -> QualityReport:
    """All data-quality findings of one store for [start, end), as of ``now``."""
    now = now or datetime.now(UTC)
    p = drop_params or DropParams()
    findings: list[Finding] = []
    devices = storage.devices(store_id)
    silent = [
        d
        for d in devices
        if d.state != "offline" and (now - d.last_seen).total_seconds() > silent_after_s
    ]
    findings += find_offline_devices(
        devices,
        now,
        silent_after_s=silent_after_s,
        expected_to_send=_expected_to_send(storage, silent),
    )
    findings += find_lost_messages(storage.seq_gaps(store_id, start, end))
    tz = storage.store_timezone(store_id) or "UTC"
    history_start = start - timedelta(weeks=p.baseline_weeks)
    rows = storage.footfall_hours(store_id, history_start, end)
    # Only hours that are over by `now` can be missing. Hour gaps come from the hourly rollups
    # (one row per camera and hour) rather than from the summaries: at the edge's default of
    # one summary a minute, a month of summaries is 60x more rows to read.
    hours = [h for h in _local_hours(start, end, tz) if h + H <= now]
    if hours:
        zone_rows = storage.zone_hours(store_id, start, end)
        findings += find_missing_hours(store_id, [*rows, *zone_rows], hours)
    findings += find_count_drops(rows, store_id, start, end, params=p, timezone=tz)
    order = {"error": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda f: (order[f.severity], f.kind))
    return QualityReport(store_id=store_id, start=start, end=end, checked_at=now, findings=findings)


__all__ = [
    "CountDrop",
    "DeviceOffline",
    "DropParams",
    "Finding",
    "MissingData",
    "QualityReport",
    "SourceUnhealthy",
    "assess",
    "find_count_drops",
    "find_lost_messages",
    "find_missing_hours",
    "find_missing_summaries",
    "find_offline_devices",
]
