"""Reader health's reads/s follows what the reader does now."""

from __future__ import annotations

from rfid.read_rate import RATE_WINDOW_S, ReadRate


def test_rate_over_a_full_window() -> None:
    rate = ReadRate()
    rate.add(0, 100.0)  # the first poll opens the window
    for i in range(1, 51):  # then 10 reads per poll, every 0.1 s, for 5 s
        rate.add(10, 100.0 + i * 0.1)
    assert rate.hz == 500 / RATE_WINDOW_S


def test_a_quiet_reader_drops_to_zero_within_a_window() -> None:
    rate = ReadRate()
    rate.add(0, 0.0)
    rate.add(100, RATE_WINDOW_S)
    assert rate.hz > 0
    rate.add(0, 2 * RATE_WINDOW_S)
    assert rate.hz == 0.0
