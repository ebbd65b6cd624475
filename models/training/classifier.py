"""Training the attack classifier (see ``models.classifier``)."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from models.classifier import ENGINEERED, INPUTS, AttackClassifier, ClassifierError
from schemas.classes import BENIGN

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassifierConfig:
    family: str = "random_forest"          # or "hist_gradient_boosting" (the first bundle)
    input: str = ENGINEERED                # ENGINEERED or SCALED
    n_estimators: int = 30                 # random forest (60 in bundle v1; see the module doc)
    max_depth: int | None = 20             # random forest
    min_samples_leaf: int = 2              # random forest
    max_iter: int = 200                    # hist_gradient_boosting from here on
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    l2_regularization: float = 1e-3
    class_weight: str | None = "balanced"
    early_stopping: bool = True
    validation_fraction: float = 0.1
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)



def train_classifier(x: np.ndarray, labels: np.ndarray, config: ClassifierConfig = ClassifierConfig()) -> AttackClassifier:
    labels = np.asarray(labels, dtype=object)
    if BENIGN not in set(labels):
        raise ClassifierError("the classifier's training rows hold no Benign row; give benign data")
    if config.input not in INPUTS:
        raise ClassifierError(f"unknown classifier input {config.input!r}; expected one of {INPUTS}")
    model: Any
    if config.family == "random_forest":
        model = RandomForestClassifier(
            n_estimators=config.n_estimators, max_depth=config.max_depth, min_samples_leaf=config.min_samples_leaf,
            class_weight=config.class_weight, n_jobs=1, random_state=config.seed)
    elif config.family == "hist_gradient_boosting":
        model = HistGradientBoostingClassifier(
            max_iter=config.max_iter, learning_rate=config.learning_rate, max_leaf_nodes=config.max_leaf_nodes,
            l2_regularization=config.l2_regularization, class_weight=config.class_weight,
            early_stopping=config.early_stopping, validation_fraction=config.validation_fraction,
            random_state=config.seed)
    else:
        raise ClassifierError(f"unknown classifier family {config.family!r}; "
                              "use 'random_forest' or 'hist_gradient_boosting'")
    model.fit(np.asarray(x, dtype=np.float32), labels.astype(str))
    log.info("classifier (%s) trained: %d classes", config.family, len(model.classes_))
    return AttackClassifier(model=model, input=config.input)
