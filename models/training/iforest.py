"""Training the Isolation Forest on benign training rows; hyperparameters chosen on validation
data only (see ``models.iforest``)."""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from models.iforest import IForestDetector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IForestGrid:
    n_estimators: tuple[int, ...] = (50, 100, 200)
    max_samples: tuple[int | str, ...] = (256, 1024)
    max_features: tuple[float, ...] = (0.5, 0.8, 1.0)
    seed: int = 0
    max_validation_attacks: int = 10000
    tolerance: float = 0.002   # validation ROC-AUC a cheaper setting may give up (see the module doc)



def _cost(params: dict[str, Any]) -> tuple[float, float]:
    """Scoring cost order: trees first, then tree depth (``max_samples``; "auto" is 256)."""
    samples = params["max_samples"]
    return (float(params["n_estimators"]), float(256 if samples == "auto" else samples))



def choose(results: list[dict[str, Any]], tolerance: float) -> int:
    """Index of the cheapest result whose ``validation_roc_auc`` is within ``tolerance`` of the best
    (ties in cost: the higher AUC, then the earlier)."""
    best = max(r["validation_roc_auc"] for r in results)
    eligible = [i for i, r in enumerate(results) if r["validation_roc_auc"] >= best - tolerance]
    return min(eligible, key=lambda i: (_cost(results[i]), -results[i]["validation_roc_auc"], i))



def fit_forest(x: np.ndarray, params: dict[str, Any], seed: int) -> IsolationForest:
    """An Isolation Forest with ``params`` (a grid point) fitted on ``x``."""
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
    models: list[IsolationForest] = []
    for n_estimators, max_samples, max_features in itertools.product(
            grid.n_estimators, grid.max_samples, grid.max_features):
        params = {"n_estimators": n_estimators, "max_samples": max_samples, "max_features": max_features}
        model = fit_forest(benign_train, params, grid.seed)
        auc = float(roc_auc_score(y_val, -model.score_samples(x_val)))
        results.append({**params, "validation_roc_auc": round(auc, 6)})
        models.append(model)
        log.info("iforest %s: validation ROC-AUC %.4f", params, auc)
    if not results:
        raise ValueError("the Isolation Forest grid is empty")
    chosen = choose(results, grid.tolerance)
    params = {k: v for k, v in results[chosen].items() if k != "validation_roc_auc"}
    log.info("iforest chose %s (validation ROC-AUC %.4f, best %.4f, tolerance %.4f)", params,
             results[chosen]["validation_roc_auc"], max(r["validation_roc_auc"] for r in results), grid.tolerance)
    return IForestDetector(model=models[chosen], params=params, selection=results, tolerance=grid.tolerance)
