"""Thresholding, kept apart from scoring: a detector returns scores (higher = more anomalous), a
:class:`Threshold` turns them into decisions. Thresholds are calibrated on benign validation rows only."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


class ThresholdError(ValueError):
    """Calibration that cannot be done (no scores, a target rate outside (0, 1), non-finite scores)."""


@dataclass(frozen=True)
class Threshold:
    """``score > value`` is flagged. ``achieved_fpr`` is the flagged fraction of the calibration rows."""

    value: float
    target_fpr: float
    n_calibration: int
    achieved_fpr: float

    def flag(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float64) > self.value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Threshold":
        return cls(value=float(values["value"]), target_fpr=float(values["target_fpr"]),
                   n_calibration=int(values["n_calibration"]), achieved_fpr=float(values["achieved_fpr"]))


