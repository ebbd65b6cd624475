"""Supervised attack classifier: names the class (19) and category (6) of a record.

A Random Forest (30 trees, depth <= 20, min_samples_leaf 2, ``class_weight="balanced"``) trained on the
benign training rows and the classifier-train attack rows; benign rows are only ~4% of the data, and
unweighted models flag many benign rows as attacks (measured: 41% of benign validation rows).
Its input (``input="engineered"``) is the *cleaned* matrix (infinities capped, NaN imputed; no log, no
scaling or clipping, which trees do not need) plus the derived columns of :func:`engineered_features`.

Chosen on an inner split (attack training rows with split bucket >= 0.56 and the benign validation
rows as validation, the rest of the training rows to fit; test rows never read), 19-class macro-F1 /
category macro-F1 / benign rows called attacks / predict rows/s on one core:
HistGradientBoosting as in the first bundle (early stopping, 44 iterations) 0.749 / 0.849 / 0.119 / 23k;
HGB 300 iterations without early stopping 0.759 / 0.862 / 0.162 / 2k; HGB 150 x 63 leaves 0.756 /
0.860 / 0.185 / 3k; ExtraTrees 100 0.731 / 0.846 / 0.106; RF 100 depth 20 0.772 / 0.865 / 0.109;
RF unbounded depth 0.742 (benign called attacks 0.365); RF without class weights 0.763 (0.415);
RF 60 trees depth 20 with the engineered columns 0.774 / 0.866 / 0.120 / ~60-100k rows/s and 11 MB
(seeds 1, 2: 0.777, 0.767; without them 0.767, 0.767). Per-class probability re-weighting tuned for
macro-F1 on one half of the validation rows lowered it on the other half (0.775 -> 0.763), so none
is applied. A bundle with ``input="scaled"`` (the first bundle's HGB on the preprocessed matrix) still
loads and scores.

Trees: 30 since bundle v2 (60 in v1). The forest runs on every streamed record and its cost grows with
the number of trees: halving it took the classifier from ~9 to ~3.5 us a row on one core (compiled,
:mod:`models.compiled`). The price, measured: inner split (3 seeds, ``docs/model-selection.md``)
macro-F1 0.766 +- 0.004 for 30 trees against 0.770 +- 0.001 for 60; held-out rows (bundle v2 against
v1) 0.769 against 0.772, category 0.836 against 0.838.

The category probability is the sum of its classes' probabilities; ``attack_probability = 1 - P(Benign)``, and ``attack_logit =
log(sum of attack-class probabilities) - log(P(Benign))`` (both floored at 1e-300), computed from the two
parts separately so that confident attacks (P(Benign) ~ 1e-12) keep their order instead of all
rounding to ``p = 1``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schemas.classes import BENIGN, CATEGORIES, CATEGORY_OF_CLASS
from schemas.flow_record import FEATURES

log = logging.getLogger(__name__)


LOG_FLOOR = 1e-300
SCALED = "scaled"            # the preprocessed (log, scaled, clipped) matrix: the first bundle
ENGINEERED = "engineered"    # cleaned matrix + engineered_features columns
INVARIANT = "invariant"      # the cleaned model inputs + the ratios that do not depend on the window
INPUTS = (SCALED, ENGINEERED, INVARIANT)
ENGINEERED_NAMES: tuple[str, ...] = (
    "Rate*IAT", "Rate*Number", "IAT*Number", "Tot sum/Number", "Header_Length/Number", "Std/|AVG|",
    "Max-Min", "IAT/Rate", "frac(1000*log1p(|IAT|))")


def engineered_features(cleaned: np.ndarray) -> np.ndarray:
    """The cleaned (n, 39) matrix in FEATURES order with the columns of ``ENGINEERED_NAMES`` appended
    (float32). Divisions add 1e-9 to the denominator; ratios that separate DDoS from DoS floods of one
    protocol (rate against inter-arrival time and window size) are not single-feature splits for a tree.
    Every value is finite (the compiled forests rely on it, :mod:`models.compiled`): where a denominator
    cancels to 0 (a count of exactly -1e-9), 0/0 gives 0, and +-inf or a finite value beyond float32
    (a cleaned cell can hold 1e300) gives the float32 limits. Such rows raise no numpy warnings."""
    c = np.asarray(cleaned, dtype=np.float64)
    col = {name: c[:, j] for j, name in enumerate(FEATURES)}
    eps = 1e-9
    n_base = c.shape[1]
    out = np.empty((c.shape[0], n_base + len(ENGINEERED_NAMES)), dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # made finite below
        out[:, :n_base] = c  # each column computed in float64, then rounded to float32 as before
        for k, extra in enumerate((
                col["Rate"] * col["IAT"], col["Rate"] * col["Number"], col["IAT"] * col["Number"],
                col["Tot sum"] / (col["Number"] + eps), col["Header_Length"] / (col["Number"] + eps),
                col["Std"] / (np.abs(col["AVG"]) + eps), col["Max"] - col["Min"], col["IAT"] / (col["Rate"] + eps),
                np.log1p(np.abs(col["IAT"])) * 1e3 % 1.0)):
            out[:, n_base + k] = extra
    if not np.isfinite(out).all():  # contrived inputs only: no real row takes this branch
        np.nan_to_num(out, copy=False, nan=0.0)
    return out


INVARIANT_RATIOS: tuple[str, ...] = ("Rate*IAT", "Std/|AVG|", "Max-Min", "IAT/Rate", "frac(1000*log1p(|IAT|))")


def invariant_features(cleaned: np.ndarray, features: tuple[str, ...], inputs: tuple[str, ...]) -> np.ndarray:
    """The cleaned ``inputs`` columns (of a matrix whose columns are ``features``) with the
    engineered ratios that read no window-dependent feature (:data:`INVARIANT_RATIOS`) appended."""
    full = engineered_features(cleaned)
    base = [features.index(name) for name in inputs]
    extra = [len(features) + ENGINEERED_NAMES.index(name) for name in INVARIANT_RATIOS]
    return full[:, base + extra]


def attack_logit(attack_proba: np.ndarray, benign_proba: np.ndarray) -> np.ndarray:
    """``log(attack) - log(benign)``, each probability floored at 1e-300 (so within about +-690.8)."""
    attack = np.maximum(np.asarray(attack_proba, dtype=np.float64), LOG_FLOOR)
    benign = np.maximum(np.asarray(benign_proba, dtype=np.float64), LOG_FLOOR)
    return np.log(attack) - np.log(benign)


class ClassifierError(ValueError):
    """A classifier that cannot be trained or used (e.g. no benign class in its training labels)."""


@dataclass
class AttackClassifier:
    """``model`` is the scikit-learn classifier; ``compiled`` (when the bundle has
    ``classifier.onnx.gz``, see :mod:`models.compiled`) gives the same probabilities through
    onnxruntime and is used instead. A bundle loaded for serving with its compiled form holds no
    scikit-learn model (``model`` is None: ~150 MB less per worker)."""

    model: Any
    input: str = SCALED
    compiled: Any | None = None
    _layout: tuple[np.ndarray, list[int], int] | None = field(default=None, init=False, repr=False)

    def inputs(self, preprocessor: Any, data: Any, scaled: np.ndarray | None = None,
               cleaned: np.ndarray | None = None) -> np.ndarray:
        """The model's input matrix for raw ``data`` (a frame or an (n, 39) array); ``scaled`` is
        ``preprocessor.transform(data)`` and ``cleaned`` ``preprocessor.clean(data)`` when the caller
        already has them."""
        if self.input == SCALED:
            return scaled if scaled is not None else preprocessor.transform(data)
        if self.input == ENGINEERED:
            return engineered_features(cleaned if cleaned is not None else preprocessor.clean(data))
        if self.input == INVARIANT:
            return invariant_features(cleaned if cleaned is not None else preprocessor.clean(data),
                                      tuple(preprocessor.features), tuple(preprocessor.inputs))
        raise ClassifierError(f"unknown classifier input {self.input!r}; expected one of {INPUTS}")

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in (self.model if self.model is not None else self.compiled).classes_]

    def proba(self, x: np.ndarray) -> np.ndarray:
        scorer = self.compiled if self.compiled is not None else self.model
        return scorer.predict_proba(np.asarray(x, dtype=np.float32))

    def layout(self) -> tuple[np.ndarray, list[int], int]:
        """(class names, each class's category index, Benign's column), worked out once per loaded
        model."""
        if self._layout is None:
            classes = self.classes
            to_category = [CATEGORIES.index(CATEGORY_OF_CLASS[cls]) for cls in classes]
            self._layout = (np.asarray(classes, dtype=object), to_category, classes.index(BENIGN))
        return self._layout

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(class names, category names, attack probability, attack logit) per row."""
        return self.predict_with_confidence(x)[:4]

    def predict_with_confidence(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`predict` plus the probability of each row's predicted class (explanations cite it)."""
        proba = np.asarray(self.proba(x), dtype=np.float64)
        classes, to_category, benign_index = self.layout()
        predicted = classes[proba.argmax(axis=1)]
        category_proba = np.zeros((len(proba), len(CATEGORIES)))
        for j, c in enumerate(to_category):  # summed in class order, as before
            category_proba[:, c] += proba[:, j]
        category = np.asarray(CATEGORIES, dtype=object)[category_proba.argmax(axis=1)]
        benign = proba[:, benign_index]
        attack = np.delete(proba, benign_index, axis=1).sum(axis=1)  # same summation order as before
        return predicted, category, 1.0 - benign, attack_logit(attack, benign), proba.max(axis=1)


