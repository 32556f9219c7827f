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


def walk_then_stop(tr: ByteTracker, frames: int = 21, step_px: float = 10.0) -> float:
    """A person walks right at step_px per frame and stops dead; returns where they stand."""
    for k in range(frames):
        out = tr.update(dets((box(100 + step_px * k), 0.9)), k / FPS)
    assert out.track_ids.tolist() == [1]
    return 100 + step_px * (frames - 1)


@pytest.mark.parametrize("gap_s", [2.0, 4.0, 8.0])
def test_a_still_gap_holds_a_stopped_walker_in_place(gap_s: float) -> None:
    # Motion gating: the person stopped, the gate skipped every frame for gap_s, then a forced
    # detection finds them where they stand. Predicting on at walking pace would put the box
    # 10 px x 10 fps x gap_s away (200-800 px: no overlap) and the person would get a new id.
    tr = ByteTracker(TrackerConfig(lost_s=2.0), FPS)
    x = walk_then_stop(tr)
    t_stop = 20 / FPS
    out = tr.update(dets((box(x + 2), 0.9)), t_stop + gap_s, still_until_ts=t_stop + gap_s)
    assert out.track_ids.tolist() == [1]
    assert tr.live_track_count == 1
    # held, not carried on: the box is within a few px of the detection
    assert float((out.xyxy[0, 0] + out.xyxy[0, 2]) / 2) == pytest.approx(x + 2, abs=1.0)
    # further still gaps (the gate backing off to 8 s) keep the id and do not drift
    t = t_stop + gap_s
    for _ in range(3):
        t += 8.0
        out = tr.update(dets((box(x + 2), 0.9)), t, still_until_ts=t)
        assert out.track_ids.tolist() == [1]
        assert float((out.xyxy[0, 0] + out.xyxy[0, 2]) / 2) == pytest.approx(x + 2, abs=0.5)


def test_the_same_gap_without_still_evidence_is_predicted_at_walking_pace() -> None:
    # The contrast: told nothing about the gap (it may have been an occlusion), the tracker
    # predicts across it, the stopped walker's box leaves them, and they get a new id.
    tr = ByteTracker(TrackerConfig(lost_s=2.0), FPS)
    x = walk_then_stop(tr)
    t = 20 / FPS + 2.0
    tr.update(dets((box(x + 2), 0.9)), t)
    assert tr.update(dets((box(x + 2), 0.9)), t + 0.1).track_ids.tolist() == [2]


def test_a_gap_with_motion_keeps_the_normal_prediction() -> None:
    # Frames dropped (or the person occluded) for 1 s while walking: they reappear where
    # constant velocity puts them, 100 px on, with no overlap with where they were last seen.
    tr = ByteTracker(TrackerConfig(), FPS)
    x = walk_then_stop(tr)
    out = tr.update(dets((box(x + 10 * 10), 0.9)), 20 / FPS + 1.0)
    assert out.track_ids.tolist() == [1]
    # a still span that ended before the gap's motion: the same walker, held then predicted,
    # is not found 100 px on (the evidence says they stood still for most of the second)
    tr2 = ByteTracker(TrackerConfig(), FPS)
    walk_then_stop(tr2)
    out2 = tr2.update(dets((box(x + 10 * 10), 0.9)), 20 / FPS + 1.0, still_until_ts=20 / FPS + 0.9)
    assert out2.track_ids.tolist() == []


def test_a_stopped_walker_who_walks_off_again_keeps_the_id() -> None:
    # Stands 4 s (still), then walks back left at 8 px per frame: the gate sees motion at the
    # first step, so only the last frame interval of the gap is predicted (on zero velocity:
    # the walking velocity is gone), and the new velocity is learned from the next frames.
    tr = ByteTracker(TrackerConfig(), FPS)
    x = walk_then_stop(tr)
    t0 = 20 / FPS + 4.0
    out = tr.update(dets((box(x - 8), 0.9)), t0, still_until_ts=t0 - 1 / FPS)
    assert out.track_ids.tolist() == [1]
    for k in range(1, 15):
        out = tr.update(dets((box(x - 8 - 8 * k), 0.9)), t0 + k / FPS)
        assert out.track_ids.tolist() == [1]
    # the velocity now points left; a 0.5 s occlusion is bridged by predicting it
    t = t0 + 14 / FPS
    out = tr.update(dets((box(x - 8 - 8 * 19), 0.9)), t + 0.5)
    assert out.track_ids.tolist() == [1]


def test_kalman_hold_keeps_boxes_and_zeroes_velocity() -> None:
    kf = KalmanBoxFilter(FPS)
    mean, cov = kf.initiate(xyxy_to_xyah([box(100), box(300)]))
    for k in range(1, 10):
        mean, cov = kf.predict(mean, cov, np.array([1 / FPS, 1 / FPS]))
        mean, cov = kf.update(mean, cov, xyxy_to_xyah([box(100 + 5 * k), box(300 - 5 * k)]))
    held, held_cov = kf.hold(mean, cov, np.array([2.0, 0.0]))
    # the first track crossed 2 s of stillness: same box, no velocity, no position-velocity
    # correlation left, position uncertainty grown
    np.testing.assert_array_equal(held[0, :4], mean[0, :4])
    np.testing.assert_array_equal(held[0, 4:], np.zeros(4))
    np.testing.assert_array_equal(held_cov[0, :4, 4:], np.zeros((4, 4)))
    assert held_cov[0, 0, 0] > cov[0, 0, 0]
    # a zero span leaves the second track as it was
    np.testing.assert_array_equal(held[1], mean[1])
    np.testing.assert_array_equal(held_cov[1], cov[1])
    # and a prediction after a hold stays put
    after, _ = kf.predict(held, held_cov, np.array([1.0, 0.0]))
    np.testing.assert_allclose(after[0, :4], mean[0, :4])
