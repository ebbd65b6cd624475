"""Calibrating a threshold on benign validation scores (see ``models.thresholds``)."""
from __future__ import annotations

import math

import numpy as np

from models.thresholds import Threshold, ThresholdError


def threshold_at_fpr(benign_scores: np.ndarray, target_fpr: float = 0.01) -> Threshold:
    """The smallest observed benign score such that at most ``target_fpr`` of the benign calibration
    scores lie strictly above it: with ``n`` scores sorted ascending and ``k = floor(target_fpr * n)``
    rows allowed above, the threshold is the ``(k + 1)``-th largest score."""
    if not 0.0 < target_fpr < 1.0:
        raise ThresholdError(f"target_fpr must lie in (0, 1), got {target_fpr}")
    scores = np.sort(np.asarray(benign_scores, dtype=np.float64).ravel())
    if scores.size == 0:
        raise ThresholdError("no benign validation scores to calibrate on: the split gave no benign "
                             "validation rows; give more benign data or a larger benign_validation fraction")
    if not np.isfinite(scores).all():
        raise ThresholdError("benign validation scores contain NaN or inf; check the preprocessing")
    allowed = int(math.floor(target_fpr * scores.size + 1e-9))
    value = float(scores[scores.size - 1 - allowed])
    achieved = float((scores > value).mean())
    return Threshold(value=value, target_fpr=float(target_fpr), n_calibration=int(scores.size),
                     achieved_fpr=achieved)
