"""Fitting the ensemble rule on benign validation scores (see ``models.ensemble``)."""
from __future__ import annotations

import numpy as np

from models.ensemble import EnsembleError, EnsembleRule, Normaliser, squash
from models.thresholds import Threshold
from models.training.thresholds import threshold_at_fpr


def fit_ensemble(benign_validation_scores: dict[str, np.ndarray], target_fpr: float = 0.01) -> EnsembleRule:
    normalisers = {name: Normaliser.fit(scores) for name, scores in benign_validation_scores.items()}
    partial = EnsembleRule(normalisers=normalisers, threshold=Threshold(np.inf, target_fpr, 0, 0.0))
    combined = partial.score(benign_validation_scores)
    return EnsembleRule(normalisers=normalisers, threshold=threshold_at_fpr(combined, target_fpr))



def fit_stacked_ensemble(benign_validation_scores: dict[str, np.ndarray], attack_scores: dict[str, np.ndarray],
                         target_fpr: float = 0.01, regularisation: float = 1.0) -> EnsembleRule:
    """The ``"stacked"`` rule: normalisers and the output normaliser and threshold from the benign
    validation scores only; the weights from a class-balanced logistic regression of benign validation
    (0) against ``attack_scores`` (1), refitted without any detector whose weight came out negative."""
    from sklearn.linear_model import LogisticRegression

    names = list(benign_validation_scores)
    if set(attack_scores) != set(names):
        raise EnsembleError(f"attack scores for {sorted(attack_scores)} but benign scores for {sorted(names)}")
    normalisers = {name: Normaliser.fit(benign_validation_scores[name]) for name in names}

    def features(scores: dict[str, np.ndarray], kept: list[str]) -> np.ndarray:
        return np.column_stack([squash(normalisers[name](scores[name])) for name in kept])

    n_benign = len(next(iter(benign_validation_scores.values())))
    n_attack = len(next(iter(attack_scores.values())))
    y = np.r_[np.zeros(n_benign), np.ones(n_attack)]
    kept = list(names)
    weights: dict[str, float] = {}
    while kept:
        x = np.vstack([features(benign_validation_scores, kept), features(attack_scores, kept)])
        model = LogisticRegression(C=regularisation, class_weight="balanced", max_iter=2000).fit(x, y)
        coef = dict(zip(kept, model.coef_[0].astype(float)))
        negative = [name for name, w in coef.items() if w < 0]
        if not negative:
            weights = coef
            break
        kept = [name for name in kept if name not in negative]
    if not weights or sum(weights.values()) <= 0:
        raise EnsembleError("no detector separates benign validation from attack rows; check the training data")
    weights = {name: weights.get(name, 0.0) for name in names}
    partial = EnsembleRule(normalisers=normalisers, threshold=Threshold(np.inf, target_fpr, 0, 0.0), weights=weights)
    output = Normaliser.fit(partial.score(benign_validation_scores))
    rule = EnsembleRule(normalisers=normalisers, threshold=Threshold(np.inf, target_fpr, 0, 0.0), weights=weights,
                        output=output)
    return EnsembleRule(normalisers=normalisers, threshold=threshold_at_fpr(rule.score(benign_validation_scores), target_fpr),
                        weights=weights, output=output)
