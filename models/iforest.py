"""Isolation Forest on benign training rows; hyperparameters chosen on validation data only.

Score: ``-score_samples(x)`` (higher = more anomalous). ``contamination`` only moves scikit-learn's own
``predict`` offset, which IoMT-AD never uses (thresholds come from :mod:`models.thresholds`), so it is
not searched. The grid is scored by ROC-AUC on benign validation rows against the classifier-train
attack rows (a seeded subsample); test rows are never seen.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IForestGrid:
    n_estimators: tuple[int, ...] = (100, 200)
    max_samples: tuple[int | str, ...] = (256, 1024)
    max_features: tuple[float, ...] = (0.5, 0.8, 1.0)
    seed: int = 0
    max_validation_attacks: int = 10000


@dataclass
class IForestDetector:
    """``model`` is the scikit-learn forest; ``compiled`` (when the bundle has ``iforest.onnx.gz``,
    see :mod:`models.compiled`) scores the same trees with onnxruntime and is used instead (``model``
    is then None when the bundle was loaded for serving)."""

    model: IsolationForest | None
    params: dict[str, Any]
    selection: list[dict[str, Any]]
    compiled: Any | None = None

    def score(self, x: np.ndarray) -> np.ndarray:
        scorer = self.compiled if self.compiled is not None else self.model
        return -scorer.score_samples(np.asarray(x, dtype=np.float32))


def _fit(x: np.ndarray, params: dict[str, Any], seed: int) -> IsolationForest:
    max_samples = params["max_samples"]
    if isinstance(max_samples, int):
        max_samples = min(max_samples, len(x))
    return IsolationForest(n_estimators=params["n_estimators"], max_samples=max_samples,
                           max_features=params["max_features"], random_state=seed, n_jobs=1).fit(x)


def train_iforest(benign_train: np.ndarray, benign_validation: np.ndarray, attack_validation: np.ndarray,
                  grid: IForestGrid = IForestGrid()) -> IForestDetector:
    """Grid search by validation ROC-AUC, then the chosen parameters' model (fitted on benign train)."""
    rng = np.random.default_rng(grid.seed)
    attacks = np.asarray(attack_validation)
    if len(attacks) > grid.max_validation_attacks:
        attacks = attacks[rng.choice(len(attacks), grid.max_validation_attacks, replace=False)]
    x_val = np.concatenate([benign_validation, attacks])
    y_val = np.r_[np.zeros(len(benign_validation)), np.ones(len(attacks))]
    results: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any], IsolationForest] | None = None
    for n_estimators, max_samples, max_features in itertools.product(
            grid.n_estimators, grid.max_samples, grid.max_features):
        params = {"n_estimators": n_estimators, "max_samples": max_samples, "max_features": max_features}
        model = _fit(benign_train, params, grid.seed)
        auc = float(roc_auc_score(y_val, -model.score_samples(x_val)))
        results.append({**params, "validation_roc_auc": round(auc, 6)})
        log.info("iforest %s: validation ROC-AUC %.4f", params, auc)
        if best is None or auc > best[0] + 1e-4:
            best = (auc, params, model)
    assert best is not None
    log.info("iforest chose %s (validation ROC-AUC %.4f)", best[1], best[0])
    return IForestDetector(model=best[2], params=best[1], selection=results)
