"""ByteTracker across gaps in the frames: a track unseen for longer than lost_s is gone.

A stalled stream or a camera reconnect delivers no frames at all, so no update marks the
tracks lost; the first frame after the gap must still not match them to whoever stands there.
"""

from __future__ import annotations

from vision.config import TrackerConfig
from vision.detections import Detections
from vision.tracker import ByteTracker

FPS = 10.0
T0 = 1_700_000_000.0


def at(x: float, score: float = 0.9) -> Detections:
    return Detections.from_arrays([[x - 20, 100, x + 20, 200]], [score])


def stand(tr: ByteTracker, x: float, start_ts: float, n: int) -> list[list[int]]:
    return [tr.update(at(x), start_ts + k / FPS).track_ids.tolist() for k in range(n)]


def test_a_person_at_the_same_spot_after_a_long_gap_gets_a_new_id() -> None:
    tr = ByteTracker(TrackerConfig(lost_s=2.0), FPS)
    assert stand(tr, 120, T0, 30)[-1] == [1]
    # 60 s without frames; then someone stands (almost) where track 1 was last seen
    ids = stand(tr, 122, T0 + 63, 5)
    assert ids[0] == []  # a new, tentative track: not track 1 carried across the gap
    assert ids[-1] == [2]
    assert tr.live_track_count == 1  # track 1 and its memory are gone


def test_a_gap_within_lost_s_keeps_the_id() -> None:
    tr = ByteTracker(TrackerConfig(lost_s=2.0), FPS)
    stand(tr, 120, T0, 30)
    assert stand(tr, 121, T0 + 2.9 + 1.5, 3) == [[1]] * 3


def test_a_still_gap_counts_as_seen_so_a_later_miss_keeps_the_lost_buffer() -> None:
    # The motion gate skipped 8 s (nobody moved), the forced detection then misses the person
    # (a low-score dip), and they are found again 0.5 s later: within lost_s of being last
    # known there (held until the forced detection), so the id is kept.
    tr = ByteTracker(TrackerConfig(lost_s=2.0), FPS)
    stand(tr, 120, T0, 30)
    t = T0 + 2.9 + 8.0
    assert tr.update(Detections.empty(), t, still_until_ts=t).track_ids.tolist() == []
    assert tr.update(at(120), t + 0.5).track_ids.tolist() == [1]
