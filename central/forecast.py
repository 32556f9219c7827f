"""Hourly footfall forecast for the next days of one store, and its honest backtest.

The model is multiplicative: ``footfall(t) = level * profile[hour_of_week(t)]``.

* ``profile`` (168 values, mean 1) is the ratio of each local hour-of-week to a centred one-week
  moving average, averaged over past weeks with exponentially decaying weights, so it follows a
  slow change of opening hours or of the weekday mix.
* ``level`` (visitors per hour) is a weighted least-squares estimate over the recent hours,
  ``sum(w*y) / sum(w*profile)`` with weights halving every ``level_halflife_h`` hours. Weighting
  by the profile instead of dividing by it keeps the night hours (profile ~ 0) from blowing up.

The reference is the seasonal-naive forecast (the same hour last week), which is what a store
manager does in their head. ``backtest`` replays rolling origins over the last weeks and reports
MAE, WAPE and MASE for both; a forecast carries that verdict in ``note`` so nobody uses a model
that does not beat the baseline without being told so.

numpy only; deterministic; hour-of-week is taken in the store's local time (DST aware).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from central.storage.base import Storage

HOURS_PER_WEEK = 168
MIN_HISTORY_H = HOURS_PER_WEEK
# The model needs a full week for the profile and some more to estimate its weekly variation;
# with less than two weeks of training history a backtest origin would not be meaningful.
MIN_TRAIN_H = 2 * HOURS_PER_WEEK

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class HourlySeries:
    """Footfall per hour from ``start`` (a local hour boundary); NaN marks an hour without data."""

    start: datetime
    counts: FloatArray
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("HourlySeries.start must be timezone-aware")
        start = self.start.astimezone(UTC)
        # Local wall-clock hours start at :30 or :45 UTC in some zones, hence not minute == 0.
        if start.minute % 15 or start.second or start.microsecond:
            raise ValueError("HourlySeries.start must be on a (local) hour boundary")
        counts = np.asarray(self.counts, dtype=np.float64)
        if counts.ndim != 1:
            raise ValueError("HourlySeries.counts must be one-dimensional")
        if np.any(counts[~np.isnan(counts)] < 0):
            raise ValueError("HourlySeries.counts must not be negative")
        ZoneInfo(self.timezone)  # raises for an unknown zone
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "counts", counts)

    def __len__(self) -> int:
        return int(self.counts.shape[0])

    @property
    def end(self) -> datetime:
        """The end of the last hour (exclusive)."""
        return self.start + timedelta(hours=len(self))

    def time_at(self, index: int) -> datetime:
        return self.start + timedelta(hours=index)

    def head(self, n_hours: int) -> HourlySeries:
        return HourlySeries(self.start, self.counts[:n_hours], self.timezone)

    def hour_of_week(self, extra_h: int = 0) -> IntArray:
        """Local hour-of-week (Monday 00:00 = 0) of every hour, plus ``extra_h`` hours beyond."""
        return local_hour_of_week(self.start, len(self) + extra_h, self.timezone)

    def local_dates(self, extra_h: int = 0) -> list[date]:
        tz = ZoneInfo(self.timezone)
        return [
            (self.start + timedelta(hours=i)).astimezone(tz).date()
            for i in range(len(self) + extra_h)
        ]


def local_hour_of_week(start: datetime, n_hours: int, timezone: str) -> IntArray:
    tz = ZoneInfo(timezone)
    out = np.empty(n_hours, dtype=np.int64)
    for i in range(n_hours):
        local = (start + timedelta(hours=i)).astimezone(tz)
        out[i] = local.weekday() * 24 + local.hour
    return out


def local_week_lag(start: datetime, n_hours: int, timezone: str) -> IntArray:
    """For each hour, the index of the same local wall-clock hour one week earlier (-1: none).

    Across a DST change this is 167 or 169 UTC hours back, not 168.
    """
    tz = ZoneInfo(timezone)
    index: dict[datetime, int] = {}
    naive = []
    for i in range(n_hours):
        local = (start + timedelta(hours=i)).astimezone(tz).replace(tzinfo=None)
        naive.append(local)
        index.setdefault(local, i)
    week = timedelta(days=7)
    return np.array([index.get(t - week, -1) for t in naive], dtype=np.int64)


@dataclass(frozen=True)
class ModelParams:
    level_halflife_h: float = 48.0
    profile_halflife_weeks: float = 8.0


@dataclass(frozen=True)
class Metrics:
    """Errors of one method over all backtest points (visitors per hour)."""

    mae: float
    wape_pct: float  # sum|error| / sum(actual): MAPE that survives the zero hours at night
    mase: float  # MAE / in-sample MAE of the seasonal-naive forecast (below 1 beats it)
    n_points: int


@dataclass(frozen=True)
class BacktestResult:
    horizon_h: int
    origins: list[datetime]
    model: Metrics
    baseline: Metrics  # seasonal naive: the same hour one week earlier
    beats_baseline: bool
    improvement_pct: float  # MAE reduction against the baseline; negative when worse
    note: str


@dataclass(frozen=True)
class Forecast:
    start: datetime  # first forecast hour (UTC)
    values: FloatArray  # expected visitors per hour
    timezone: str
    level_per_h: float
    profile: FloatArray  # 168 multiplicative hour-of-week factors, mean 1
    history_h: int
    backtest: BacktestResult | None = None
    note: str = ""
    holidays_in_horizon: list[date] = field(default_factory=list)
    closures: list[date] = field(default_factory=list)  # past days left out of the fit

    @property
    def times(self) -> list[datetime]:
        return [self.start + timedelta(hours=i) for i in range(len(self.values))]

    @property
    def beats_baseline(self) -> bool | None:
        return None if self.backtest is None else self.backtest.beats_baseline


def _centred_weekly_mean(y: FloatArray) -> FloatArray:
    """2x168 centred moving average (classical decomposition), NaN-aware, edges held."""
    n = len(y)
    kernel = np.ones(HOURS_PER_WEEK + 1)
    kernel[0] = kernel[-1] = 0.5
    valid = ~np.isnan(y)
    sums = np.convolve(np.where(valid, y, 0.0), kernel, mode="same")
    weights = np.convolve(valid.astype(np.float64), kernel, mode="same")
    half = HOURS_PER_WEEK // 2
    out = np.full(n, np.nan)
    # Only a window that is (nearly) complete gives a deseasonalised mean.
    ok = weights >= 0.8 * HOURS_PER_WEEK
    ok[:half] = False
    ok[n - half :] = False
    out[ok] = sums[ok] / weights[ok]
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        mean = float(np.nanmean(y)) if valid.any() else 0.0
        return np.full(n, mean)
    # Hold the first and last complete value at the edges (and across interior holes).
    filled = np.interp(np.arange(n), idx, out[idx])
    return filled.astype(np.float64)


def _fit(
    y: FloatArray, how: IntArray, params: ModelParams, holiday: npt.NDArray[np.bool_]
) -> tuple[FloatArray, float, float]:
    """Return (profile[168], level per hour, holiday factor) from a history."""
    n = len(y)
    y_fit = np.where(holiday, np.nan, y)
    ma = _centred_weekly_mean(y_fit)
    valid = ~np.isnan(y_fit) & (ma > 0)
    age_weeks = (n - 1 - np.arange(n)) / HOURS_PER_WEEK
    w = 0.5 ** (age_weeks / params.profile_halflife_weeks)
    num = np.bincount(how[valid], weights=(w * y_fit)[valid], minlength=HOURS_PER_WEEK)
    den = np.bincount(how[valid], weights=(w * ma)[valid], minlength=HOURS_PER_WEEK)
    profile = np.full(HOURS_PER_WEEK, np.nan)
    seen = den > 0
    profile[seen] = num[seen] / den[seen]
    if not seen.all():
        # An hour-of-week never observed: borrow the same hour of the day from the other days.
        by_hour = np.array(
            [np.nanmean(profile[h::24]) if seen[h::24].any() else 1.0 for h in range(24)]
        )
        profile[~seen] = by_hour[np.flatnonzero(~seen) % 24]
    mean = float(profile.mean())
    profile = profile / mean if mean > 0 else np.ones(HOURS_PER_WEEK)

    k = 0.5 ** (1.0 / params.level_halflife_h)
    wl = k ** (n - 1 - np.arange(n, dtype=np.float64))
    p_at = profile[how]
    lv = ~np.isnan(y_fit)
    den_l = float(np.sum((wl * p_at)[lv]))
    level = float(np.sum((wl * y_fit)[lv]) / den_l) if den_l > 0 else 0.0

    hol_valid = holiday & ~np.isnan(y) & (ma > 0)
    hol_den = float(np.sum((ma * profile[how])[hol_valid]))
    holiday_factor = float(np.sum(y[hol_valid]) / hol_den) if hol_den > 0 else 1.0
    return profile, level, holiday_factor


def _holiday_mask(
    series: HourlySeries, extra_h: int, holidays: Collection[date]
) -> npt.NDArray[np.bool_]:
    if not holidays:
        return np.zeros(len(series) + extra_h, dtype=bool)
    days = series.local_dates(extra_h)
    hol = set(holidays)
    return np.array([d in hol for d in days], dtype=bool)


def _predict(
    series: HourlySeries,
    horizon_h: int,
    *,
    params: ModelParams,
    holidays: Collection[date],
    how_all: IntArray | None = None,
    hol_all: npt.NDArray[np.bool_] | None = None,
) -> tuple[FloatArray, FloatArray, float, float]:
    n = len(series)
    how = how_all if how_all is not None else series.hour_of_week(horizon_h)
    hol = hol_all if hol_all is not None else _holiday_mask(series, horizon_h, holidays)
    profile, level, hfac = _fit(series.counts, how[:n], params, hol[:n])
    values = level * profile[how[n : n + horizon_h]]
    values = np.where(hol[n : n + horizon_h], values * hfac, values)
    return values, profile, level, hfac


def forecast_hourly(
    series: HourlySeries,
    horizon_h: int = HOURS_PER_WEEK,
    *,
    holidays: Collection[date] = (),
    params: ModelParams | None = None,
    backtest_origins: int = 4,
    auto_closures: bool = True,
) -> Forecast:
    """Forecast the next ``horizon_h`` hours after the end of ``series``.

    ``holidays`` are local dates (past ones are left out of the fit, future ones get the
    closure factor learnt from the past ones). With ``auto_closures``, past days on which the
    store was evidently closed are left out of the fit too (see ``detect_closures``).
    When the history allows it, a rolling-origin backtest runs too and its verdict against the
    seasonal-naive baseline is in ``Forecast.note`` (and ``Forecast.backtest``).

    Raises:
        ValueError: when the series has less than one week of data.
    """
    params = params or ModelParams()
    if horizon_h < 1:
        raise ValueError("horizon_h must be at least 1")
    n_valid = int(np.count_nonzero(~np.isnan(series.counts)))
    if len(series) < MIN_HISTORY_H or n_valid < MIN_HISTORY_H // 2:
        raise ValueError(
            f"need at least {MIN_HISTORY_H} hours of history to forecast, got {len(series)} "
            f"({n_valid} with data)"
        )
    closures = (
        [d for d in detect_closures(series) if d not in set(holidays)] if auto_closures else []
    )
    fit_days = set(holidays) | set(closures)
    values, profile, level, _ = _predict(series, horizon_h, params=params, holidays=fit_days)
    bt: BacktestResult | None = None
    try:
        bt = backtest(
            series,
            horizon_h=min(horizon_h, HOURS_PER_WEEK),
            n_origins=backtest_origins,
            holidays=fit_days,
            params=params,
        )
        note = bt.note
    except ValueError as exc:
        note = f"not backtested: {exc}"
    days = series.local_dates(horizon_h)[len(series) :]
    hol_days = sorted({d for d in days if d in set(holidays)})
    return Forecast(
        start=series.end,
        values=values,
        timezone=series.timezone,
        level_per_h=level,
        profile=profile,
        history_h=len(series),
        backtest=bt,
        note=note,
        holidays_in_horizon=hol_days,
        closures=closures,
    )


def detect_closures(
    series: HourlySeries, *, max_share: float = 0.1, min_usual: float = 20.0
) -> list[date]:
    """Past local days with (almost) no footfall where the same weekday is normally busy.

    A store closed for a holiday, a strike or a refit says nothing about the next weeks, so
    such days are left out of the fit like declared holidays. A day counts when its total is
    below ``max_share`` of the median of its weekday and that median is at least ``min_usual``.
    """
    days = series.local_dates()
    totals: dict[date, float] = {}
    for d, v in zip(days, series.counts, strict=True):
        if not np.isnan(v):
            totals[d] = totals.get(d, 0.0) + float(v)
    by_weekday: dict[int, list[float]] = {}
    for d, t in totals.items():
        by_weekday.setdefault(d.weekday(), []).append(t)
    out = []
    for d, t in sorted(totals.items()):
        usual = float(np.median(by_weekday[d.weekday()]))
        if len(by_weekday[d.weekday()]) >= 2 and usual >= min_usual and t < max_share * usual:
            out.append(d)
    return out


def seasonal_naive(series: HourlySeries, horizon_h: int, lag: IntArray | None = None) -> FloatArray:
    """The same local hour one week earlier (two weeks, ... for horizons beyond a week)."""
    n = len(series)
    lag = lag if lag is not None else local_week_lag(series.start, n + horizon_h, series.timezone)
    out = np.full(horizon_h, np.nan)
    for j in range(horizon_h):
        i = n + j
        while i >= n:
            i = int(lag[i])
        if i >= 0:
            out[j] = series.counts[i]
    return out


def _metrics(err: FloatArray, actual: FloatArray, scale: float) -> Metrics:
    n = int(err.size)
    mae = float(np.mean(np.abs(err))) if n else float("nan")
    total = float(np.sum(actual))
    wape = 100.0 * float(np.sum(np.abs(err))) / total if total > 0 else float("nan")
    mase = mae / scale if scale > 0 else float("nan")
    return Metrics(mae=mae, wape_pct=wape, mase=mase, n_points=n)


def backtest(
    series: HourlySeries,
    *,
    horizon_h: int = HOURS_PER_WEEK,
    n_origins: int = 4,
    step_h: int = HOURS_PER_WEEK,
    holidays: Collection[date] = (),
    params: ModelParams | None = None,
) -> BacktestResult:
    """Rolling-origin backtest over the end of ``series`` against seasonal naive.

    Origins are ``step_h`` apart and the last one leaves exactly ``horizon_h`` hours to score.
    Each origin trains on everything before it, so no future data leaks in. Both methods are
    scored on the same hours (those with actual data and a naive value). If the history is too
    short for ``n_origins``, fewer are used; with none possible this raises ValueError.
    """
    params = params or ModelParams()
    n = len(series)
    usable = (n - horizon_h - MIN_TRAIN_H) // step_h + 1
    k = min(n_origins, usable)
    if k < 1:
        raise ValueError(f"backtest needs {MIN_TRAIN_H + horizon_h} hours of history, have {n}")
    origins_idx: Sequence[int] = [n - horizon_h - i * step_h for i in range(k)][::-1]
    how_all = series.hour_of_week()
    lag_all = local_week_lag(series.start, n, series.timezone)
    hol_all = _holiday_mask(series, 0, holidays)
    y = series.counts
    errs_m: list[FloatArray] = []
    errs_b: list[FloatArray] = []
    acts: list[FloatArray] = []
    for o in origins_idx:
        train = series.head(o)
        pred, _, _, _ = _predict(
            train,
            horizon_h,
            params=params,
            holidays=holidays,
            how_all=how_all[: o + horizon_h],
            hol_all=hol_all[: o + horizon_h],
        )
        naive = seasonal_naive(train, horizon_h, lag_all[: o + horizon_h])
        actual = y[o : o + horizon_h]
        ok = ~np.isnan(actual) & ~np.isnan(naive) & ~hol_all[o : o + horizon_h]
        errs_m.append(pred[ok] - actual[ok])
        errs_b.append(naive[ok] - actual[ok])
        acts.append(actual[ok])
    first = origins_idx[0]
    has_lag = lag_all[:first] >= 0
    in_sample = y[:first][has_lag] - y[lag_all[:first][has_lag]]
    scale = float(np.nanmean(np.abs(in_sample))) if np.any(~np.isnan(in_sample)) else float("nan")
    actual_all = np.concatenate(acts)
    m = _metrics(np.concatenate(errs_m), actual_all, scale)
    b = _metrics(np.concatenate(errs_b), actual_all, scale)
    if m.n_points == 0:
        raise ValueError("backtest window has no hours with data")
    beats = m.mae < b.mae
    improvement = 100.0 * (1.0 - m.mae / b.mae) if b.mae > 0 else 0.0
    span = f"{k} origin(s) x {horizon_h} h"
    if beats:
        note = (
            f"model beats seasonal-naive on the backtest ({span}): MAE {m.mae:.1f} vs "
            f"{b.mae:.1f} visitors/h ({improvement:.0f}% lower), WAPE {m.wape_pct:.1f}% vs "
            f"{b.wape_pct:.1f}%"
        )
    else:
        note = (
            f"WARNING: model does NOT beat seasonal-naive on the backtest ({span}): MAE "
            f"{m.mae:.1f} vs {b.mae:.1f} visitors/h; prefer last week's counts for this store"
        )
    return BacktestResult(
        horizon_h=horizon_h,
        origins=[series.time_at(o) for o in origins_idx],
        model=m,
        baseline=b,
        beats_baseline=beats,
        improvement_pct=improvement,
        note=note,
    )


def footfall_series(
    storage: Storage, store_id: str, start: datetime, end: datetime
) -> HourlySeries:
    """Visitors per store-local hour (entries over every counting line) from the rollups.

    An hour without any stored summary is NaN (missing), not zero: devices send zero intervals,
    so silence means no data.
    """
    tz = storage.store_timezone(store_id) or "UTC"
    start_h = local_hour_floor(start, tz)
    n = max(0, int(-(-(end - start_h).total_seconds() // 3600)))
    counts = np.full(n, np.nan)
    for row in storage.footfall_hours(store_id, start_h, end):
        i = int((row.hour_start - start_h).total_seconds() // 3600)
        if 0 <= i < n:
            counts[i] = row.in_count if np.isnan(counts[i]) else counts[i] + row.in_count
    return HourlySeries(start_h, counts, tz)


def local_hour_floor(ts: datetime, timezone: str) -> datetime:
    local = ts.astimezone(ZoneInfo(timezone))
    return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)


__all__ = [
    "HOURS_PER_WEEK",
    "BacktestResult",
    "Forecast",
    "HourlySeries",
    "Metrics",
    "ModelParams",
    "backtest",
    "detect_closures",
    "footfall_series",
    "forecast_hourly",
    "local_hour_floor",
    "local_hour_of_week",
    "local_week_lag",
    "seasonal_naive",
]
