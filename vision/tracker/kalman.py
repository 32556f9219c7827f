"""Constant-velocity Kalman filter over boxes in (cx, cy, aspect, height) space.

Vectorised over tracks: means are (N, 8), covariances (N, 8, 8). Noise scales with the box
height (as in SORT/ByteTrack) so near and far people are treated alike. Time is explicit:
velocities are in units per nominal frame (1 / fps) and a predict over ``dt_s`` advances by
``dt_s * fps`` frames, so skipped frames and irregular timestamps are handled. ``hold`` is
the other way to cross a gap: for spans in which the caller saw nothing move.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

_STD_POSITION = 1.0 / 20.0
_STD_VELOCITY = 1.0 / 160.0
_NDIM = 4


def xyxy_to_xyah(xyxy: npt.ArrayLike) -> F64:
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    w = np.maximum(b[:, 2] - b[:, 0], 1e-3)
    h = np.maximum(b[:, 3] - b[:, 1], 1e-3)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, w / h, h], axis=1)


def xyah_to_xyxy(xyah: npt.ArrayLike) -> F64:
    arr = np.asarray(xyah, dtype=np.float64)
    m = arr.reshape(-1, arr.shape[-1])[:, :4]
    h = m[:, 3]
    w = m[:, 2] * h
    return np.stack([m[:, 0] - w / 2, m[:, 1] - h / 2, m[:, 0] + w / 2, m[:, 1] + h / 2], axis=1)


def _initial_velocity_std(h: F64) -> F64:
    """(N, 4) velocity std of a track that has no velocity evidence yet (boxes of height h)."""
    return np.stack(
        [
            10 * _STD_VELOCITY * h,
            10 * _STD_VELOCITY * h,
            np.full(h.shape[0], 1e-5),
            10 * _STD_VELOCITY * h,
        ],
        axis=1,
    )


class KalmanBoxFilter:
    """Stateless maths; the tracker owns the (mean, cov) arrays."""

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = float(fps)
        self._update_mat = np.eye(_NDIM, 2 * _NDIM)

    def initiate(self, xyah: F64) -> tuple[F64, F64]:
        """New tracks from measured boxes (N, 4): zero velocity, wide velocity variance."""
        n = xyah.shape[0]
        mean = np.concatenate([xyah, np.zeros((n, _NDIM))], axis=1)
        h = xyah[:, 3]
        std = np.stack(
            [
                2 * _STD_POSITION * h,
                2 * _STD_POSITION * h,
                np.full(n, 1e-2),
                2 * _STD_POSITION * h,
            ],
            axis=1,
        )
        std = np.concatenate([std, _initial_velocity_std(h)], axis=1)
        cov = np.zeros((n, 8, 8))
        idx = np.arange(8)
        cov[:, idx, idx] = std**2
        return mean, cov

    def predict(self, mean: F64, cov: F64, dt_s: F64) -> tuple[F64, F64]:
        """Advance each track by its own dt_s (N,) seconds."""
        n = mean.shape[0]
        if n == 0:
            return mean, cov
        k = np.maximum(np.asarray(dt_s, dtype=np.float64), 0.0) * self.fps
        motion = np.broadcast_to(np.eye(8), (n, 8, 8)).copy()
        motion[:, np.arange(4), np.arange(4) + 4] = k[:, None]
        h = mean[:, 3]
        std = np.stack(
            [
                _STD_POSITION * h,
                _STD_POSITION * h,
                np.full(n, 1e-2),
                _STD_POSITION * h,
                _STD_VELOCITY * h,
                _STD_VELOCITY * h,
                np.full(n, 1e-5),
                _STD_VELOCITY * h,
            ],
            axis=1,
        )
        q = np.zeros((n, 8, 8))
        idx = np.arange(8)
        # process noise grows with the number of nominal frames skipped
        q[:, idx, idx] = std**2 * k[:, None]
        new_mean = np.einsum("nij,nj->ni", motion, mean)
        new_cov = motion @ cov @ motion.transpose(0, 2, 1) + q
        return new_mean, new_cov

    def hold(self, mean: F64, cov: F64, dt_s: F64) -> tuple[F64, F64]:
        """Cross dt_s (N,) seconds in which the boxes were seen not to move.

        A person who stopped keeps the velocity they walked with, so predicting over a long
        still span carries the box away from where they stand. Here the box stays put and its
        velocity becomes zero, uncertain again as a new track's, so that it is relearned from
        the next detections if they walk off; position uncertainty still grows with the span
        (small shifts the caller could not see). Tracks with dt_s 0 are left unchanged.
        """
        n = mean.shape[0]
        k = np.maximum(np.asarray(dt_s, dtype=np.float64), 0.0) * self.fps
        spanned = k > 0
        if n == 0 or not spanned.any():
            return mean, cov
        h = mean[:, 3]
        pos_var = (
            np.stack(
                [_STD_POSITION * h, _STD_POSITION * h, np.full(n, 1e-2), _STD_POSITION * h], axis=1
            )
            ** 2
            * k[:, None]
        )
        vel_var = _initial_velocity_std(h) ** 2
        held_mean = mean.copy()
        held_mean[:, _NDIM:] = 0.0
        held_cov = np.zeros_like(cov)
        held_cov[:, :_NDIM, :_NDIM] = cov[:, :_NDIM, :_NDIM]
        idx = np.arange(_NDIM)
        held_cov[:, idx, idx] += pos_var
        held_cov[:, idx + _NDIM, idx + _NDIM] = vel_var
        return (
            np.where(spanned[:, None], held_mean, mean),
            np.where(spanned[:, None, None], held_cov, cov),
        )

    def update(self, mean: F64, cov: F64, xyah: F64) -> tuple[F64, F64]:
        """Correct tracks (N,) with their matched measurements (N, 4)."""
        n = mean.shape[0]
        if n == 0:
            return mean, cov
        h = mean[:, 3]
        std = np.stack(
            [_STD_POSITION * h, _STD_POSITION * h, np.full(n, 1e-1), _STD_POSITION * h], axis=1
        )
        r = np.zeros((n, 4, 4))
        idx = np.arange(4)
        r[:, idx, idx] = std**2
        hm = self._update_mat
        proj_mean = mean[:, :4]
        proj_cov = hm @ cov @ hm.T + r
        gain = np.linalg.solve(proj_cov, (cov @ hm.T).transpose(0, 2, 1)).transpose(0, 2, 1)
        innovation = xyah - proj_mean
        new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
        new_cov = cov - gain @ proj_cov @ gain.transpose(0, 2, 1)
        return new_mean, new_cov


__all__ = ["KalmanBoxFilter", "xyah_to_xyxy", "xyxy_to_xyah"]
