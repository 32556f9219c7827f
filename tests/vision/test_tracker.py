"""ByteTracker and its Kalman filter on synthetic boxes."""

from __future__ import annotations

import numpy as np
import pytest

from vision.config import TrackerConfig
from vision.detections import Detections
from vision.tracker import ByteTracker
from vision.tracker.kalman import KalmanBoxFilter, xyah_to_xyxy, xyxy_to_xyah
from vision.tracker.matching import assign, iou_matrix

FPS = 10.0


def box(cx: float, cy: float = 200.0, w: float = 40.0, h: float = 100.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def dets(*items: tuple[list[float], float]) -> Detections:
    if not items:
        return Detections.empty()
    return Detections.from_arrays([b for b, _ in items], [s for _, s in items])


def test_box_conversions_round_trip() -> None:
    b = np.array([[10.0, 20.0, 50.0, 120.0]])
    assert np.allclose(xyah_to_xyxy(xyxy_to_xyah(b)), b)


def test_kalman_learns_constant_velocity_and_predicts_over_real_time() -> None:
    kf = KalmanBoxFilter(FPS)
    mean, cov = kf.initiate(xyxy_to_xyah([box(100)]))
    for k in range(1, 15):  # 5 px per frame to the right
        mean, cov = kf.predict(mean, cov, np.array([1 / FPS]))
        mean, cov = kf.update(mean, cov, xyxy_to_xyah([box(100 + 5 * k)]))
    assert mean[0, 4] == pytest.approx(5.0, abs=0.5)  # px per nominal frame
    # three frames skipped: the prediction moves three frames' worth, uncertainty grows
    m3, c3 = kf.predict(mean, cov, np.array([3 / FPS]))
    m1, c1 = kf.predict(mean, cov, np.array([1 / FPS]))
    assert m3[0, 0] - mean[0, 0] == pytest.approx(3 * (m1[0, 0] - mean[0, 0]), rel=1e-6)
    assert c3[0, 0, 0] > c1[0, 0, 0]


def test_iou_and_assignment() -> None:
    a = np.array([box(100), box(300)])
    b = np.array([box(305), box(110), box(900)])
    iou = iou_matrix(a, b)
    assert iou.shape == (2, 3)
    assert iou[0, 1] == pytest.approx(30 * 100 / (2 * 4000 - 30 * 100))
    matches, un_rows, un_cols = assign(iou, 0.2)
    assert sorted(map(tuple, matches.tolist())) == [(0, 1), (1, 0)]
    assert un_rows.tolist() == [] and un_cols.tolist() == [2]
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)


def test_confirmation_after_n_hits_and_no_global_state() -> None:
    for _ in range(2):  # a second tracker starts its ids at 1 again
        tr = ByteTracker(TrackerConfig(confirm_frames=2), FPS)
        assert len(tr.update(dets((box(100), 0.9)), 0.0)) == 0
        out = tr.update(dets((box(104), 0.9)), 0.1)
        assert out.track_ids.tolist() == [1]


def test_low_score_frame_keeps_the_id_through_second_stage() -> None:
    tr = ByteTracker(TrackerConfig(), FPS)
    ids = []
    for k, score in enumerate([0.9, 0.9, 0.9, 0.3, 0.25, 0.9, 0.9]):
        out = tr.update(dets((box(100 + 6 * k), score)), k / FPS)
        ids.append(out.track_ids.tolist())
    assert ids[0] == []
    assert ids[1:] == [[1]] * 6
    # a low-score box on its own never starts a track
    tr2 = ByteTracker(TrackerConfig(), FPS)
    for k in range(5):
        assert len(tr2.update(dets((box(100), 0.4)), k / FPS)) == 0
    assert tr2.live_track_count == 0


def test_lost_buffer_reidentifies_within_lost_s_only() -> None:
    cfg = TrackerConfig(lost_s=1.0)
    tr = ByteTracker(cfg, FPS)
    t = 0.0
    for k in range(5):
        t = k / FPS
        tr.update(dets((box(100 + 4 * k), 0.9)), t)
    # gone for 0.6 s (occluded), then back where constant velocity puts it
    for k in range(5, 11):
        tr.update(Detections.empty(), k / FPS)
    out = tr.update(dets((box(100 + 4 * 11), 0.9)), 11 / FPS)
    assert out.track_ids.tolist() == [1]
    # gone for 1.5 s: the track is dropped, the person gets a new id
    for k in range(12, 27):
        tr.update(Detections.empty(), k / FPS)
    tr.update(dets((box(100 + 4 * 27), 0.9)), 27 / FPS)
    out = tr.update(dets((box(100 + 4 * 28), 0.9)), 28 / FPS)
    assert out.track_ids.tolist() == [2]


def test_skipped_frames_are_bridged_by_time() -> None:
    tr = ByteTracker(TrackerConfig(), FPS)
    for k in range(6):
        tr.update(dets((box(100 + 15 * k), 0.9)), k / FPS)
    # next detection 0.4 s later, 60 px on: no IoU with the last box, but with the prediction
    out = tr.update(dets((box(100 + 15 * 9), 0.9)), 9 / FPS)
    assert out.track_ids.tolist() == [1]


def test_coast_predicts_without_losing_tracks() -> None:
    tr = ByteTracker(TrackerConfig(), FPS)
    for k in range(10):
        tr.update(dets((box(100 + 10 * k), 0.9)), k / FPS)
    coasted = [tr.coast(k / FPS) for k in range(10, 13)]
    assert all(c.track_ids.tolist() == [1] for c in coasted)
    centres = [float((c.xyxy[0, 0] + c.xyxy[0, 2]) / 2) for c in coasted]
    assert centres == sorted(centres) and centres[-1] > 200  # keeps moving right
    out = tr.update(dets((box(100 + 10 * 13), 0.9)), 13 / FPS)
    assert out.track_ids.tolist() == [1]


def test_long_coast_of_a_still_person_is_no_loss() -> None:
    # motion gating: nothing moves for 2.4 s (> lost_s), the detector is skipped
    tr = ByteTracker(TrackerConfig(lost_s=2.0), FPS)
    for k in range(5):
        tr.update(dets((box(300), 0.9)), k / FPS)
    for k in range(5, 29):
        assert tr.coast(k / FPS).track_ids.tolist() == [1]
    assert tr.update(dets((box(301), 0.9)), 2.9).track_ids.tolist() == [1]


def test_two_crossing_people_keep_their_ids() -> None:
    tr = ByteTracker(TrackerConfig(), FPS)
    last = None
    for k in range(30):
        a = box(100 + 8 * k, cy=200)
        b = box(332 - 8 * k, cy=260)  # passes a with some overlap
        out = tr.update(dets((a, 0.9), (b, 0.85)), k / FPS)
        if len(out) == 2:
            by_x = dict(
                zip(out.track_ids.tolist(), ((out.xyxy[:, 1] + out.xyxy[:, 3]) / 2), strict=True)
            )
            last = by_x
    assert last is not None
    assert last[1] == pytest.approx(200, abs=3) and last[2] == pytest.approx(260, abs=3)


def test_memory_freed_when_people_leave() -> None:
    tr = ByteTracker(TrackerConfig(lost_s=0.5), FPS)
    t = 0
    for person in range(40):
        for k in range(5):
            tr.update(dets((box(50 + 200 * (person % 3) + 5 * k), 0.9)), t / FPS)
            t += 1
        for _ in range(8):
            tr.update(Detections.empty(), t / FPS)
            t += 1
    assert tr.live_track_count == 0


def test_rejects_time_going_backwards_and_bad_boxes() -> None:
    tr = ByteTracker(TrackerConfig(), FPS)
    tr.update(dets((box(100), 0.9), ([5, 5, 5, 5], 0.9), ([np.nan, 0, 1, 1], 0.9)), 1.0)
    assert tr.live_track_count == 1  # the empty and the NaN box are dropped
    with pytest.raises(ValueError, match="backwards"):
        tr.update(Detections.empty(), 0.5)
