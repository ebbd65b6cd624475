"""Isolation Forest scoring (trained by :mod:`models.training.iforest` on benign training rows;
hyperparameters chosen on validation data only).

Score: ``-score_samples(x)`` (higher = more anomalous). ``contamination`` only moves scikit-learn's own
``predict`` offset, which IoMT-AD never uses (thresholds come from :mod:`models.thresholds`), so it is
not searched. The grid is scored by ROC-AUC on benign validation rows against the classifier-train
attack rows (a seeded subsample); test rows are never seen.

Choice: the cheapest setting (fewest trees, then the smallest ``max_samples``, i.e. the shallowest
trees) whose validation ROC-AUC is within ``IForestGrid.tolerance`` (0.002) of the best. Scoring cost
grows with trees x depth (the forest runs on every streamed record) while validation AUCs closer than
that are within the noise of one seed: bundle v1's 100 and 200 trees scored 0.9165 and 0.9139.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest

log = logging.getLogger(__name__)


@dataclass
class IForestDetector:
    """``model`` is the scikit-learn forest; ``compiled`` (when the bundle has ``iforest.onnx.gz``,
    see :mod:`models.compiled`) scores the same trees with onnxruntime and is used instead (``model``
    is then None when the bundle was loaded for serving)."""

    model: IsolationForest | None
    params: dict[str, Any]
    selection: list[dict[str, Any]]
    compiled: Any | None = None
    tolerance: float | None = None   # the choice rule's AUC tolerance (None: a bundle from before the rule)

    def score(self, x: np.ndarray) -> np.ndarray:
        scorer = self.compiled if self.compiled is not None else self.model
        return -scorer.score_samples(np.asarray(x, dtype=np.float32))


