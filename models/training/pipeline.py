"""Train every detector, calibrate thresholds on benign validation rows, and write the bundle.

Order: load + split (``models.training.split``) -> preprocessing fitted on benign train -> LSTM AE on benign
train -> Isolation Forest on benign train (hyperparameters by validation ROC-AUC: benign validation
vs classifier-train attacks) -> classifier on benign train + attack train -> per-detector thresholds
on benign validation -> the stacked ensemble rule (weights: benign validation vs attack train rows,
the classifier's scores for those out of fold; normalisers and threshold: benign validation only)
-> bundle. Test rows are never read for any choice.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from models.training.drift_reference import write_drift_reference
from models.training.training_rows import pin_training_rows
from models.training.feedback import SECTION as FEEDBACK_SECTION, FeedbackSet, add_to_parts, pin_feedback_rows
from models.training.datasets import list_flow_csvs, load_flows_pandas
from models.reference import SECTION as REFERENCE_SECTION, BenignReference
from models.bundle import sha256_of
from models.training.bundle_writer import save_bundle
from models.classifier import INVARIANT, SCALED, AttackClassifier
from models.training.classifier import ClassifierConfig, train_classifier
from models.training.ensemble import fit_ensemble, fit_stacked_ensemble
from models.training.iforest import IForestGrid, train_iforest
from models.lstm_ae import LstmAeConfig
from models.training.autoencoder import train_lstm_ae
from models.training.preprocessing import PreprocessConfig, fit_preprocessor
from models.training.split import TEST, TRAIN, VALIDATION, SplitConfig, split_frame
from models.training.thresholds import threshold_at_fpr
from schemas.classes import BENIGN
from schemas.flow_record import WINDOW_INVARIANT

log = logging.getLogger(__name__)


class TrainingDataError(ValueError):
    """Training data that cannot give a usable split (e.g. no benign or no attack rows)."""


@dataclass(frozen=True)
class TrainConfig:
    split: SplitConfig = field(default_factory=SplitConfig)
    target_fpr: float = 0.01
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    lstm_ae: LstmAeConfig = field(default_factory=LstmAeConfig)
    iforest: IForestGrid = field(default_factory=IForestGrid)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    ensemble: str = "stacked"      # or "max" (the first bundle's rule)
    stacking_folds: int = 3
    # the models read no feature that grows with the window (schemas.flow_record.WINDOW_DEPENDENT),
    # so records of the sensor's windows, whatever their length, mean what the training rows meant
    window_invariant: bool = False


def _roc(y: np.ndarray, s: np.ndarray) -> float:
    return float(roc_auc_score(y, s)) if len(set(y)) == 2 else float("nan")


def _out_of_fold_logit(clf_x: np.ndarray, clf_y: np.ndarray, n_benign: int, config: TrainConfig) -> np.ndarray:
    """The classifier's attack logit for every attack training row from a forest fitted without it
    (stratified ``stacking_folds``-fold, seeded); benign training rows are in every fold's fit."""
    from sklearn.model_selection import StratifiedKFold

    attack_x, attack_y = clf_x[n_benign:], clf_y[n_benign:]
    out = np.empty(len(attack_x))
    folds = StratifiedKFold(config.stacking_folds, shuffle=True, random_state=config.classifier.seed)
    for fit_idx, held_idx in folds.split(attack_x, attack_y):
        model = train_classifier(np.concatenate([clf_x[:n_benign], attack_x[fit_idx]]),
                                 np.concatenate([clf_y[:n_benign], attack_y[fit_idx]]), config.classifier)
        out[held_idx] = model.predict(attack_x[held_idx])[3]
    return out


def train_bundle(data: Sequence[str | Path], out_dir: str | Path, version: str | None = None,
                 config: TrainConfig = TrainConfig(), feedback: FeedbackSet | None = None) -> dict[str, Any]:
    """Train on ``data`` (files or directories) and write the bundle to ``out_dir``; returns the
    training metrics recorded in the manifest. ``feedback``: analysts' labelled records, added to
    the benign training and validation rows and the attack training rows by their own seeded split
    (:mod:`models.training.feedback`)."""
    started = time.perf_counter()
    if config.window_invariant and config.classifier.input != SCALED:
        config = replace(config, classifier=replace(config.classifier, input=INVARIANT))
    out_dir = Path(out_dir)
    version = version or out_dir.name
    files = list_flow_csvs(data)
    frame = load_flows_pandas(files)
    frame["split"] = split_frame(frame, config.split)
    benign = frame["label"].eq(BENIGN)
    parts = {"benign_train": frame[benign & frame["split"].eq(TRAIN)],
             "benign_validation": frame[benign & frame["split"].eq(VALIDATION)],
             "benign_test": frame[benign & frame["split"].eq(TEST)],
             "attack_train": frame[~benign & frame["split"].eq(TRAIN)],
             "attack_test": frame[~benign & frame["split"].eq(TEST)]}
    labelled = add_to_parts(parts, frame, feedback, config.split) if feedback is not None else None
    for name in ("benign_train", "benign_validation", "attack_train"):
        if len(parts[name]) < 2:
            raise TrainingDataError(f"only {len(parts[name])} {name} rows: give files with more benign and "
                                    "attack rows (the Benign file and at least one attack file)")
    log.info("split: %s", {k: len(v) for k, v in parts.items()})

    preprocessor = fit_preprocessor(parts["benign_train"], config.preprocess,
                                    model_features=WINDOW_INVARIANT if config.window_invariant else None)
    x_btr = preprocessor.transform(parts["benign_train"])
    x_bval = preprocessor.transform(parts["benign_validation"])
    x_atr = preprocessor.transform(parts["attack_train"])

    t0 = time.perf_counter()
    ae = train_lstm_ae(x_btr, config.lstm_ae)
    ae_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    iforest = train_iforest(x_btr, x_bval, x_atr, config.iforest)
    if_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    clf_input = {name: (x if config.classifier.input == "scaled"
                        else AttackClassifier(model=None, input=config.classifier.input).inputs(preprocessor, parts[name]))
                 for name, x in (("benign_train", x_btr), ("benign_validation", x_bval), ("attack_train", x_atr))}
    clf_x = np.concatenate([clf_input["benign_train"], clf_input["attack_train"]])
    clf_y = np.concatenate([parts["benign_train"]["label"], parts["attack_train"]["label"]])
    classifier = train_classifier(clf_x, clf_y, config.classifier)
    clf_seconds = time.perf_counter() - t0

    def scores(x: np.ndarray, x_clf: np.ndarray) -> dict[str, np.ndarray]:
        _, _, proba, logit = classifier.predict(x_clf)
        return {"lstm_ae": ae.score(x).astype(np.float64), "iforest": iforest.score(x),
                "classifier": proba, "classifier_logit": logit}

    def ensemble_inputs(s: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"lstm_ae": s["lstm_ae"], "iforest": s["iforest"], "classifier_logit": s["classifier_logit"]}

    val_scores = scores(x_bval, clf_input["benign_validation"])
    thresholds = {name: threshold_at_fpr(val_scores[name], config.target_fpr)
                  for name in ("lstm_ae", "iforest", "classifier")}
    atr_scores = scores(x_atr, clf_input["attack_train"])
    if config.ensemble == "stacked":
        oof_logit = _out_of_fold_logit(clf_x, clf_y, len(x_btr), config)
        ensemble = fit_stacked_ensemble(ensemble_inputs(val_scores),
                                        {**ensemble_inputs(atr_scores), "classifier_logit": oof_logit},
                                        config.target_fpr)
    else:
        ensemble = fit_ensemble(ensemble_inputs(val_scores), config.target_fpr)
    thresholds["ensemble"] = ensemble.threshold

    y = np.r_[np.zeros(len(x_bval)), np.ones(len(x_atr))]
    validation_auc = {name: _roc(y, np.r_[val_scores[name], atr_scores[name]])
                      for name in ("lstm_ae", "iforest", "classifier")}
    validation_auc["ensemble"] = _roc(y, np.r_[ensemble.score(ensemble_inputs(val_scores)),
                                               ensemble.score(ensemble_inputs(atr_scores))])
    if config.ensemble == "stacked":
        validation_auc["ensemble_out_of_fold_classifier"] = _roc(y, np.r_[
            ensemble.score(ensemble_inputs(val_scores)),
            ensemble.score({**ensemble_inputs(atr_scores), "classifier_logit": oof_logit})])
    metrics = {
        "rows": {k: int(len(v)) for k, v in parts.items()},
        "validation_roc_auc_benign_val_vs_attack_train": {k: round(v, 6) for k, v in validation_auc.items()},
        "note": "attack_train rows were used to fit the classifier and choose IF parameters; "
                "these validation figures are optimistic for both; see evaluation.json for held-out figures",
        "lstm_ae_epochs": len(ae.history.get("loss", [])),
        "lstm_ae_best_holdout_mse": float(min(ae.history.get("val_loss", [float("nan")]))),
        "classifier_family": config.classifier.family,
        "ensemble_weights": ensemble.weights,
        "seconds": {"lstm_ae": round(ae_seconds, 1), "iforest": round(if_seconds, 1),
                    "classifier": round(clf_seconds, 1), "total": round(time.perf_counter() - started, 1)},
    }
    extra = {
        "seed": config.split.seed,
        "split": config.split.describe(),
        "target_fpr": config.target_fpr,
        "window_invariant": config.window_invariant,
        "training_files": [{"name": f.name, "sha256": sha256_of(f), "rows": int((frame["source_file"] == f.name).sum())}
                           for f in files],
        "configs": {"preprocess": {k: getattr(config.preprocess, k) for k in config.preprocess.__dataclass_fields__},
                    "classifier": config.classifier.to_dict()},
        "training_metrics": metrics,
        **({FEEDBACK_SECTION: labelled[2]} if labelled is not None else {}),
        # what explanations compare an alert's features with (models.reference)
        REFERENCE_SECTION: BenignReference.of_rows(parts["benign_train"][list(preprocessor.features)].to_numpy(),
                                                   tuple(preprocessor.features)).to_dict(),
    }
    save_bundle(out_dir, version=version, preprocessor=preprocessor, lstm_ae=ae, iforest=iforest,
                classifier=classifier, ensemble=ensemble, thresholds=thresholds, extra=extra)
    pin_training_rows(out_dir, frame)  # which rows the bundle was made from, for `iomt-ad evaluate`
    if labelled is not None:  # which labelled records it learnt from, for `iomt-ad evaluate --feedback`
        pin_feedback_rows(out_dir, labelled[0], labelled[1])
    # what the stream measures drift against (models.drift): the benign rows' bins, the validation scores'
    write_drift_reference(out_dir, parts["benign_train"], parts["benign_validation"])
    metrics["seconds"]["total"] = round(time.perf_counter() - started, 1)
    log.info("trained bundle %s in %.1f s", version, metrics["seconds"]["total"])
    return metrics
