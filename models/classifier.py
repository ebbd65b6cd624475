"""Supervised attack classifier: names the class (19) and category (6) of a record.

A histogram gradient-boosting model (compact on disk, fast to predict) trained on the benign training
rows and the classifier-train attack rows with ``class_weight="balanced"``: benign rows are only ~4%
of the data, and unweighted models flag many benign rows as attacks. The category probability is the
sum of its classes' probabilities; ``attack_probability = 1 - P(Benign)``, and ``attack_logit =
log(sum of attack-class probabilities) - log(P(Benign))`` (both floored at 1e-300), computed from the two
parts separately so that confident attacks (P(Benign) ~ 1e-12) keep their order instead of all
rounding to ``p = 1``.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from schemas.classes import BENIGN, CATEGORIES, CATEGORY_OF_CLASS

log = logging.getLogger(__name__)


LOG_FLOOR = 1e-300


def attack_logit(attack_proba: np.ndarray, benign_proba: np.ndarray) -> np.ndarray:
    """``log(attack) - log(benign)``, each probability floored at 1e-300 (so within about +-690.8)."""
    attack = np.maximum(np.asarray(attack_proba, dtype=np.float64), LOG_FLOOR)
    benign = np.maximum(np.asarray(benign_proba, dtype=np.float64), LOG_FLOOR)
    return np.log(attack) - np.log(benign)


class ClassifierError(ValueError):
    """A classifier that cannot be trained or used (e.g. no benign class in its training labels)."""


@dataclass(frozen=True)
class ClassifierConfig:
    max_iter: int = 200
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    l2_regularization: float = 1e-3
    class_weight: str | None = "balanced"
    early_stopping: bool = True
    validation_fraction: float = 0.1
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AttackClassifier:
    model: HistGradientBoostingClassifier

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.model.classes_]

    def proba(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(np.asarray(x, dtype=np.float32))

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(class names, category names, attack probability, attack logit) per row."""
        proba = self.proba(x)
        classes = np.asarray(self.classes, dtype=object)
        predicted = classes[proba.argmax(axis=1)]
        category_proba = np.zeros((len(proba), len(CATEGORIES)))
        for j, cls in enumerate(self.classes):
            category_proba[:, CATEGORIES.index(CATEGORY_OF_CLASS[cls])] += proba[:, j]
        category = np.asarray(CATEGORIES, dtype=object)[category_proba.argmax(axis=1)]
        benign_index = self.classes.index(BENIGN)
        benign = proba[:, benign_index]
        attack = np.delete(proba, benign_index, axis=1).sum(axis=1)
        return predicted, category, 1.0 - benign, attack_logit(attack, benign)


def train_classifier(x: np.ndarray, labels: np.ndarray, config: ClassifierConfig = ClassifierConfig()) -> AttackClassifier:
    labels = np.asarray(labels, dtype=object)
    if BENIGN not in set(labels):
        raise ClassifierError("the classifier's training rows hold no Benign row; give benign data")
    model = HistGradientBoostingClassifier(
        max_iter=config.max_iter, learning_rate=config.learning_rate, max_leaf_nodes=config.max_leaf_nodes,
        l2_regularization=config.l2_regularization, class_weight=config.class_weight,
        early_stopping=config.early_stopping, validation_fraction=config.validation_fraction,
        random_state=config.seed)
    model.fit(np.asarray(x, dtype=np.float32), labels.astype(str))
    log.info("classifier trained: %d classes, %d iterations", len(model.classes_), model.n_iter_)
    return AttackClassifier(model=model)
