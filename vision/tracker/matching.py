"""IoU and optimal assignment between tracks and detections."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

F64 = npt.NDArray[np.float64]
Ints = npt.NDArray[np.intp]


def iou_matrix(a_xyxy: npt.ArrayLike, b_xyxy: npt.ArrayLike) -> F64:
    """(N, M) intersection over union of two box sets."""
    a = np.asarray(a_xyxy, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b_xyxy, dtype=np.float64).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.asarray(np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0))


def assign(similarity: F64, min_similarity: float) -> tuple[Ints, Ints, Ints]:
    """Maximise total similarity; pairs below min_similarity are left unmatched.

    Returns (matches (K, 2) of row/col indices, unmatched rows, unmatched cols).
    """
    n, m = similarity.shape
    if n == 0 or m == 0:
        return np.zeros((0, 2), dtype=np.intp), np.arange(n), np.arange(m)
    # pairs that may not match get a cost no valid assignment would choose
    cost = np.where(similarity >= min_similarity, 1.0 - similarity, 1e6)
    rows, cols = linear_sum_assignment(cost)
    keep = similarity[rows, cols] >= min_similarity
    rows, cols = rows[keep], cols[keep]
    matches = np.stack([rows, cols], axis=1).astype(np.intp)
    free_rows = np.ones(n, dtype=bool)
    free_rows[rows] = False
    free_cols = np.ones(m, dtype=bool)
    free_cols[cols] = False
    return matches, np.flatnonzero(free_rows), np.flatnonzero(free_cols)


__all__ = ["assign", "iou_matrix"]
