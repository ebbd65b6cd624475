"""The ensemble decision (``is_anomaly``, the one the product acts on).

Rule (all values fitted on benign validation rows, stored in the manifest):

1. Each detector score ``s`` (AE reconstruction MSE, IF score, and, when enabled, the logit of the
   classifier's attack probability, ``classifier_logit``) is normalised against its benign validation
   distribution:
   ``n(s) = (s - q50) / max(q99 - q50, eps)``: 0 is a typical benign row, 1 the benign 99th percentile.
2. Combination, one of:
   - ``"max"`` (the first bundle): ``ensemble_score = max(n_ae, n_if[, n_clf])``: a row is as anomalous as its
     most alarmed detector, so known attacks are caught by the classifier and unknown ones by the
     unsupervised scores.
   - ``"stacked"`` (the default; bundles v1 and v2): ``t = sum_k w_k * sign(n_k) * log1p(|n_k|)`` with non-negative
     weights ``w`` of a class-balanced logistic regression fitted on benign validation rows against
     attack training rows (the classifier's scores for those come out of fold, from forests that did not
     see them; the AE and IF never see attacks). A detector whose fitted weight is negative is dropped
     (weight 0) and the rest refitted, so a higher detector score never lowers the ensemble score.
     ``ensemble_score = (t - q50) / (q99 - q50)`` over the benign validation rows' ``t``, so 0 is a
     typical benign row and 1 the benign 99th percentile, as for the parts.
     Measured on the inner validation split (RF fitted without those rows; benign validation vs attack
     training rows with bucket >= 0.56): ROC-AUC max(AE, IF, clf) 0.9727, max(AE, clf) 0.9798,
     classifier alone 0.9827, stacked (5-fold CV) 0.9827; detection at 1% FPR 0.888 / 0.890 / 0.908 /
     0.910; without ARP spoofing rows 0.9948 / 0.9966 / 0.9971 / 0.9971.
3. ``is_anomaly = ensemble_score > threshold``, the threshold taken from the ensemble scores of the
   benign validation rows at the target false-positive rate (default 1%), so the *combined* rule,
   not each part, is calibrated.
   The classifier enters as a logit (``models.classifier.attack_logit``), not a probability: a
   probability is bounded at 1, so when 1% of benign validation rows get p ~ 0.99 its q99 sits at the
   ceiling and no attack can exceed the ensemble threshold through the classifier (measured: ensemble
   detection 0.667 vs 0.911 for the classifier alone at the same 1% FPR). The logit keeps
   p = 1 - 1e-12 far above p = 0.99.
4. Severity of a flagged row from the margin ``m = ensemble_score - threshold`` (in units of the benign
   q50..q99 spread): ``low`` m <= 1, ``medium`` m <= 4, ``high`` m <= 16, else ``critical``;
   unflagged rows get ``none``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.thresholds import Threshold

EPS = 1e-12
SEVERITY_EDGES: tuple[float, float, float] = (1.0, 4.0, 16.0)
SEVERITIES: tuple[str, ...] = ("none", "low", "medium", "high", "critical")


class EnsembleError(ValueError):
    """Scores for a detector the ensemble was not fitted with, or missing ones."""


@dataclass(frozen=True)
class Normaliser:
    q50: float
    q99: float

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return (np.asarray(scores, dtype=np.float64) - self.q50) / max(self.q99 - self.q50, EPS)

    @classmethod
    def fit(cls, benign_validation_scores: np.ndarray) -> "Normaliser":
        q50, q99 = np.quantile(np.asarray(benign_validation_scores, dtype=np.float64), [0.5, 0.99])
        return cls(q50=float(q50), q99=float(q99))


def squash(normalised: np.ndarray) -> np.ndarray:
    """``sign(n) * log1p(|n|)``: keeps order, tames the 10^2..10^4 spreads of flood scores."""
    n = np.asarray(normalised, dtype=np.float64)
    return np.sign(n) * np.log1p(np.abs(n))


@dataclass(frozen=True)
class EnsembleRule:
    normalisers: dict[str, Normaliser]   # detector -> normaliser: "lstm_ae", "iforest", "classifier_logit"
    threshold: Threshold
    weights: dict[str, float] | None = None   # None: the "max" rule; else the "stacked" rule
    output: Normaliser | None = None          # the stacked rule's benign-validation normaliser
    # detectors that also decide on their own: ensemble_score = max(stacked score, their normalised
    # scores). A site baseline's sequence autoencoder (models.sequences) is one: the stack's weights
    # were fitted on the dataset with a one-window autoencoder and never weighed it.
    alone: tuple[str, ...] = ()

    @property
    def combine(self) -> str:
        return "max" if self.weights is None else "stacked"

    @property
    def detectors(self) -> tuple[str, ...]:
        return tuple(self.normalisers)

    def score(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        missing = [name for name in self.normalisers if name not in scores]
        if missing:
            raise EnsembleError(f"the ensemble needs scores for {missing}")
        normalised = [self.normalisers[name](scores[name]) for name in self.normalisers]
        if self.weights is None:
            return np.max(np.vstack(normalised), axis=0)
        stacked = sum(self.weights.get(name, 0.0) * squash(n) for name, n in zip(self.normalisers, normalised))
        stacked = np.asarray(stacked, dtype=np.float64)
        stacked = self.output(stacked) if self.output is not None else stacked
        for name in self.alone:
            stacked = np.maximum(stacked, self.normalisers[name](scores[name]))
        return stacked

    def is_anomaly(self, ensemble_score: np.ndarray) -> np.ndarray:
        return self.threshold.flag(ensemble_score)

    def severity(self, ensemble_score: np.ndarray) -> np.ndarray:
        margin = np.asarray(ensemble_score, dtype=np.float64) - self.threshold.value
        level = np.where(margin > 0, 1 + np.searchsorted(np.asarray(SEVERITY_EDGES), margin, side="left"), 0)
        return np.asarray(SEVERITIES, dtype=object)[level]

    def to_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "rule": "max of benign-validation-normalised scores; n(s) = (s - q50) / (q99 - q50)"
            if self.weights is None else
            "stacked: t = sum_k w_k sign(n_k) log1p(|n_k|), n(s) = (s - q50) / (q99 - q50) per detector; "
            "ensemble_score = (t - output.q50) / (output.q99 - output.q50)",
            "combine": self.combine,
            "normalisers": {k: {"q50": v.q50, "q99": v.q99} for k, v in self.normalisers.items()},
            "threshold": self.threshold.to_dict(), "severity_edges": list(SEVERITY_EDGES)}
        if self.weights is not None:
            values["weights"] = dict(self.weights)
            if self.output is not None:
                values["output"] = {"q50": self.output.q50, "q99": self.output.q99}
        if self.alone:
            values["alone"] = list(self.alone)
            values["rule"] += f"; then the max of that and n of {', '.join(self.alone)} (deciding on their own too)"
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "EnsembleRule":
        weights = values.get("weights")
        output = values.get("output")
        return cls(normalisers={k: Normaliser(float(v["q50"]), float(v["q99"]))
                                for k, v in values["normalisers"].items()},
                   threshold=Threshold.from_dict(values["threshold"]),
                   weights=None if weights is None else {k: float(v) for k, v in weights.items()},
                   output=None if output is None else Normaliser(float(output["q50"]), float(output["q99"])),
                   alone=tuple(values.get("alone", ())))


