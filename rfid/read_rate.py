"""A reader's reads per second, as reported in its health (time passed in)."""

from __future__ import annotations

from dataclasses import dataclass

RATE_WINDOW_S = 5.0


@dataclass
class ReadRate:
    """Reads per second over consecutive windows of at least `RATE_WINDOW_S`.

    A window closes on the first poll after it is full, reads or not, so a reader that goes
    quiet while still polled drops to 0 within one window instead of keeping its last rate.
    """

    hz: float = 0.0
    _start_ts: float | None = None
    _count: int = 0

    def add(self, n_reads: int, now: float) -> None:
        if self._start_ts is None:
            self._start_ts = now
        self._count += n_reads
        elapsed = now - self._start_ts
        if elapsed >= RATE_WINDOW_S:
            self.hz = self._count / elapsed
            self._start_ts = now
            self._count = 0


__all__ = ["RATE_WINDOW_S", "ReadRate"]
