"""RateMeter: frames/s and reads/s as health reports them, with time passed in."""

from __future__ import annotations

import pytest

from edge_agent.workers import RATE_WINDOW_S, RateMeter


def test_rate_is_events_over_the_last_full_window() -> None:
    meter = RateMeter(since=100.0)
    for i in range(50):  # 10 events/s for one window
        meter.add(1, 100.0 + (i + 1) * RATE_WINDOW_S / 50)
    assert meter.rate(100.0 + RATE_WINDOW_S + 0.1) == pytest.approx(10.0)
    # Within the next window the last full window still stands.
    assert meter.rate(100.0 + RATE_WINDOW_S * 1.5) == pytest.approx(10.0)


def test_a_stalled_source_decays_to_zero() -> None:
    meter = RateMeter(since=0.0)
    for i in range(50):
        meter.add(1, (i + 1) * RATE_WINDOW_S / 50)
    assert meter.rate(RATE_WINDOW_S) == pytest.approx(10.0)
    # No event since: once a full window has passed without one, the rate is 0, not the last
    # value for ever.
    assert meter.rate(2 * RATE_WINDOW_S + 0.01) == 0.0
    assert meter.rate(100 * RATE_WINDOW_S) == 0.0


def test_a_slowing_source_is_read_over_the_window_in_progress() -> None:
    meter = RateMeter(since=0.0)
    for i in range(50):
        meter.add(1, (i + 1) * RATE_WINDOW_S / 50)
    # Two events in the window that started at the last roll, read when it is 1.5 windows old.
    meter.add(1, RATE_WINDOW_S + 1.0)
    meter.add(1, RATE_WINDOW_S + 2.0)
    assert meter.rate(2.5 * RATE_WINDOW_S) == pytest.approx(2 / (1.5 * RATE_WINDOW_S))
    # Then events resume: the next full window counts them.
    meter.add(3, 2.6 * RATE_WINDOW_S)
    assert meter.rate(2.6 * RATE_WINDOW_S) == pytest.approx(5 / (1.6 * RATE_WINDOW_S))


def test_no_event_ever_reads_zero() -> None:
    assert RateMeter(since=0.0).rate(0.5) == 0.0
    assert RateMeter(since=0.0).rate(3 * RATE_WINDOW_S) == 0.0
