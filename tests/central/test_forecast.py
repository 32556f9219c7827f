"""Forecast and backtest on generated seasonal data with noise, and on seeded storage."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from central.forecast import (
    HOURS_PER_WEEK,
    HourlySeries,
    backtest,
    footfall_series,
    forecast_hourly,
    local_hour_of_week,
    local_week_lag,
    seasonal_naive,
)
from central.seed import SeedSpec, seed_storage
from central.storage.base import open_storage

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
# Opening hours 8-21 with a lunch and an evening peak; Saturday busiest, Sunday quiet.
DAY = np.array([0] * 8 + [2, 5, 8, 10, 12, 11, 9, 8, 10, 12, 9, 6, 3, 1] + [0, 0]) / 6.0
WEEK = np.array([1.0, 1.0, 1.05, 1.1, 1.3, 1.6, 0.4])


def seasonal(n_hours: int, level: float = 50.0) -> np.ndarray:
    t = np.arange(n_hours)
    return level * DAY[t % 24] * WEEK[(t // 24) % 7]


def poisson_series(lam: np.ndarray, seed: int = 7, tz: str = "UTC") -> HourlySeries:
    rng = np.random.default_rng(seed)
    return HourlySeries(MONDAY, rng.poisson(lam).astype(float), tz)


def test_forecast_shape_and_profile() -> None:
    s = poisson_series(seasonal(8 * HOURS_PER_WEEK))
    f = forecast_hourly(s)
    assert len(f.values) == HOURS_PER_WEEK
    assert f.start == s.end
    assert f.profile.shape == (HOURS_PER_WEEK,)
    assert abs(float(f.profile.mean()) - 1.0) < 1e-9
    # Closed hours are forecast (near) zero, Saturday noon well above Monday noon.
    expected = seasonal(9 * HOURS_PER_WEEK)[-HOURS_PER_WEEK:]
    assert np.all(f.values[expected == 0] < 0.5)
    sat_noon, mon_noon = 5 * 24 + 12, 12
    assert f.values[sat_noon] > 1.4 * f.values[mon_noon]
    assert np.mean(np.abs(f.values - expected)) < 0.15 * expected.mean()


@pytest.mark.parametrize(
    ("name", "factor"),
    [
        ("level shift up", lambda t, n: np.where(t > n - 3 * HOURS_PER_WEEK + 40, 1.6, 1.0)),
        ("level shift down", lambda t, n: np.where(t > n - 2 * HOURS_PER_WEEK - 50, 0.6, 1.0)),
        ("trend", lambda t, n: 1.0 + 0.5 * t / n),
    ],
)
def test_model_beats_seasonal_naive_with_trend_or_shift(name: str, factor: object) -> None:
    n = 10 * HOURS_PER_WEEK
    t = np.arange(n)
    lam = seasonal(n) * factor(t, n)  # type: ignore[operator]
    s = poisson_series(lam)
    bt = backtest(s, n_origins=4)
    assert len(bt.origins) == 4
    assert bt.model.n_points == bt.baseline.n_points == 4 * HOURS_PER_WEEK
    assert bt.beats_baseline, (name, bt.note)
    assert bt.model.mae < bt.baseline.mae
    assert bt.improvement_pct > 5
    assert bt.model.mase < bt.baseline.mase
    assert "beats seasonal-naive" in bt.note
    f = forecast_hourly(s)
    assert f.beats_baseline is True
    assert f.note == bt.note


def test_reports_honestly_when_seasonal_naive_wins() -> None:
    # Each hour of the week drifts as its own random walk from week to week, without noise:
    # last week's value is the best possible forecast and a smoothed profile must lose.
    rng = np.random.default_rng(3)
    weeks = 10
    walk = np.cumsum(rng.normal(0.0, 0.3, (weeks, HOURS_PER_WEEK)), axis=0)
    y = np.round(np.tile(seasonal(HOURS_PER_WEEK), (weeks, 1)) * np.exp(walk)).ravel()
    s = HourlySeries(MONDAY, y, "UTC")
    bt = backtest(s)
    assert not bt.beats_baseline
    assert bt.improvement_pct < 0
    assert "does NOT beat seasonal-naive" in bt.note
    f = forecast_hourly(s)
    assert f.beats_baseline is False
    assert "does NOT beat" in f.note


def test_short_history() -> None:
    with pytest.raises(ValueError, match="at least 168 hours"):
        forecast_hourly(poisson_series(seasonal(100)))
    # Ten days: enough to forecast, not enough to backtest, and the output says so.
    f = forecast_hourly(poisson_series(seasonal(240)))
    assert f.backtest is None
    assert f.note.startswith("not backtested")
    with pytest.raises(ValueError, match="backtest needs"):
        backtest(poisson_series(seasonal(400)))


def test_missing_hours_are_ignored_not_zero() -> None:
    n = 8 * HOURS_PER_WEEK
    lam = seasonal(n)
    s = poisson_series(lam)
    holed = s.counts.copy()
    holed[-60:-20] = np.nan  # a device offline for 40 hours near the end
    f_full = forecast_hourly(s)
    f_holed = forecast_hourly(HourlySeries(s.start, holed, "UTC"))
    assert abs(f_holed.level_per_h - f_full.level_per_h) < 0.1 * f_full.level_per_h


def test_holidays_are_left_out_of_the_fit_and_applied_to_the_horizon() -> None:
    n = 8 * HOURS_PER_WEEK
    lam = seasonal(n)
    # Closed on two past Wednesdays, and a third Wednesday in the forecast horizon.
    past = [date(2026, 3, 25), date(2026, 4, 15)]
    future = date(2026, 4, 29)
    for d in past:
        i = (d - MONDAY.date()).days * 24
        lam[i : i + 24] = 0.0
    s = poisson_series(lam)
    truth = seasonal(n + HOURS_PER_WEEK)[n:]
    plain = forecast_hourly(s, auto_closures=False)
    past_only = forecast_hourly(s, holidays=past)
    auto = forecast_hourly(s)
    aware = forecast_hourly(s, holidays=[*past, future])
    wed = slice(2 * 24, 3 * 24)
    # Ignoring the closures drags every Wednesday down; leaving them out of the fit does not.
    assert abs(past_only.values[wed].sum() / truth[wed].sum() - 1) < 0.1
    assert plain.values[wed].sum() < 0.85 * truth[wed].sum()
    assert np.mean(np.abs(past_only.values - truth)) < np.mean(np.abs(plain.values - truth))
    # Undeclared, the two closed days are found and left out all the same.
    assert auto.closures == past
    assert np.allclose(auto.values, past_only.values)
    # A holiday in the horizon takes the closure factor learnt from the past ones.
    assert aware.holidays_in_horizon == [future]
    assert aware.values[wed].sum() < 0.05 * truth[wed].sum()


def test_local_time_and_dst() -> None:
    # Europe/Berlin leaves summer time on 2026-10-25: local hours shift against UTC.
    start = datetime(2026, 10, 19, 0, tzinfo=UTC)  # Monday 02:00 local (CEST)
    how = local_hour_of_week(start, 2 * HOURS_PER_WEEK, "Europe/Berlin")
    assert how[0] == 2
    lag = local_week_lag(start, 2 * HOURS_PER_WEEK, "Europe/Berlin")
    assert lag[HOURS_PER_WEEK - 1] == -1  # the first week has no week before it
    after = 7 * 24 + 12  # Monday 26 Oct, 13:00 local (CET): same wall clock a week before
    assert after - lag[after] == HOURS_PER_WEEK + 1
    # Seasonal naive for Monday 26 Oct 01:00 CET is Monday 19 Oct 01:00 CEST: 169 h back.
    s = HourlySeries(start - timedelta(weeks=1), np.arange(336, dtype=float), "Europe/Berlin")
    naive = seasonal_naive(s, 24)
    assert naive[0] == 336 - 169
    with pytest.raises(ValueError, match="timezone-aware"):
        HourlySeries(datetime(2026, 1, 1), np.zeros(3))
    with pytest.raises(ValueError, match="negative"):
        HourlySeries(MONDAY, np.array([1.0, -1.0]))


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, SeedSpec]:
    path = Path(tmp_path_factory.mktemp("forecast")) / "seed.db"
    spec = SeedSpec(stores=2, days=63)
    with open_storage(f"sqlite://{path}") as st:
        seed_storage(st, spec)
    return f"sqlite://{path}", spec


def test_forecast_from_seeded_storage(seeded_db: tuple[str, SeedSpec]) -> None:
    url, spec = seeded_db
    with open_storage(url) as st:
        series = footfall_series(st, "store-002", spec.start, spec.end)
    assert series.timezone == "Europe/London"
    assert len(series) == spec.days * 24
    n_missing = int(np.isnan(series.counts).sum())
    assert n_missing == 3  # the three summaries the seed lost in transit
    holiday = (spec.end - timedelta(days=spec.holiday_days_before_end)).date()
    f = forecast_hourly(series, holidays=[holiday])
    assert f.backtest is not None
    # store-002 gets a 25% level shift two thirds in: the model adapts, last week does not.
    assert f.backtest.beats_baseline, f.note
    assert f.values.sum() > 0
