"""Evaluation of a bundle on rows it never learnt from.

Of the bundle's own data (a file whose sha256 the manifest lists, or one bearing a training file's
name), only the rows whose split (from the manifest's seed and fractions) is ``test`` are scored; every
row of any other file is new data and scored (:func:`rows_to_evaluate`; the report says per file
which rows were evaluated and why). Rows given but not evaluated are only used to count *leakage*:
evaluated rows whose 39-feature vector also occurs, exactly, in a row the bundle learnt from among
the given data (the data set repeats rows within and across classes). Metrics are also reported on
the evaluated rows that are not leaked (``binary_unseen``).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix, f1_score,
                             precision_score, roc_auc_score, roc_curve, precision_recall_curve)

from models.training.datasets import list_flow_csvs, load_flows_pandas
from models.bundle import Bundle, sha256_of
from models.training.split import TEST, SplitConfig, split_frame
from schemas.classes import BENIGN, CATEGORIES, CLASSES
from schemas.flow_record import FEATURES
from udfs.scoring import score_frame

log = logging.getLogger(__name__)

DETECTORS: dict[str, tuple[str, str]] = {  # name -> (score column, threshold name)
    "ensemble": ("ensemble_score", "ensemble"), "lstm_ae": ("ae_error", "lstm_ae"),
    "iforest": ("if_score", "iforest"), "classifier": ("clf_attack_proba", "classifier")}


class NoHeldOutRowsError(ValueError):
    """The given data hold no test row of the bundle's split."""


def binary_metrics(y: np.ndarray, score: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    y = np.asarray(y, dtype=int)
    flagged = np.asarray(flagged, dtype=bool)
    both = len(set(y)) == 2
    negatives, positives = (y == 0), (y == 1)
    return {
        "roc_auc": float(roc_auc_score(y, score)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, score)) if both else float("nan"),
        "tpr": float(flagged[positives].mean()) if positives.any() else float("nan"),
        "fpr": float(flagged[negatives].mean()) if negatives.any() else float("nan"),
        "precision": float(precision_score(y, flagged, zero_division=0)),
        "f1": float(f1_score(y, flagged, zero_division=0)),
        "accuracy": float(accuracy_score(y, flagged)),
    }


def vector_keys(frame: pd.DataFrame) -> pd.Series:
    """:func:`models.training.training_rows.vector_hashes` as a Series on ``frame``'s index."""
    from models.training.training_rows import vector_hashes

    return pd.Series(vector_hashes(frame), index=frame.index)


def leakage(frame: pd.DataFrame, is_test: pd.Series) -> tuple[dict[str, Any], pd.Series]:
    keys = vector_keys(frame)
    train_keys = keys[~is_test]
    train_labels: dict[int, set[str]] = {}
    for key, label in zip(train_keys.to_numpy(), frame.loc[~is_test, "label"]):
        train_labels.setdefault(int(key), set()).add(label)
    test_keys = keys[is_test]
    leaked = test_keys.isin(train_keys.to_numpy())
    conflict = pd.Series([bool(train_labels.get(int(k), set()) - {lab})
                          for k, lab in zip(test_keys.to_numpy(), frame.loc[is_test, "label"])], index=test_keys.index)
    test_dup_groups = frame.loc[is_test].assign(_k=test_keys).groupby("_k")["label"].nunique()
    info = {
        "n_test_rows": int(is_test.sum()),
        "test_rows_also_in_training": int(leaked.sum()),
        "test_rows_also_in_training_with_another_label": int(conflict.sum()),
        "per_class_test_rows_also_in_training": {k: int(v) for k, v in leaked.groupby(frame.loc[is_test, "label"]).sum().items()},
        "distinct_test_vectors_with_several_labels": int((test_dup_groups > 1).sum()),
        "definition": "a test row is leaked when its exact 39-feature vector occurs in a non-test "
                      "(train or benign validation) row of the evaluated data",
    }
    return info, leaked


def evaluate_scored(test: pd.DataFrame, scored: pd.DataFrame, bundle: Bundle) -> dict[str, Any]:
    y = test["label"].ne(BENIGN).to_numpy().astype(int)
    binary = {}
    for name, (column, threshold) in DETECTORS.items():
        flagged = scored["is_anomaly"].to_numpy() if name == "ensemble" else bundle.thresholds[threshold].flag(scored[column].to_numpy())
        binary[name] = binary_metrics(y, scored[column].to_numpy(), flagged)
    flagged_by = {name: (scored["is_anomaly"].to_numpy() if name == "ensemble"
                         else bundle.thresholds[t].flag(scored[c].to_numpy())) for name, (c, t) in DETECTORS.items()}
    per_class: dict[str, Any] = {}
    for cls in [c for c in CLASSES if c in set(test["label"])]:
        mask = test["label"].eq(cls).to_numpy()
        err = scored["ae_error"].to_numpy()[mask]
        per_class[cls] = {
            "n": int(mask.sum()), "detection_rate": float(flagged_by["ensemble"][mask].mean()),
            "mean_ae_error": float(err.mean()), "std_ae_error": float(err.std()),
            "min_ae_error": float(err.min()), "max_ae_error": float(err.max()),
            "detection_rate_by_detector": {n: float(f[mask].mean()) for n, f in flagged_by.items()},
            "classifier_accuracy": float((scored["predicted_class"].to_numpy()[mask] == cls).mean()),
        }
    present = [c for c in CLASSES if c in set(test["label"]) | set(scored["predicted_class"])]
    cats = [c for c in CATEGORIES if c in set(test["category"]) | set(scored["predicted_category"])]
    benign = test["label"].eq(BENIGN).to_numpy()
    return {
        "binary": binary,
        "per_class": per_class,
        "multiclass": {"accuracy": float(accuracy_score(test["label"], scored["predicted_class"])),
                       "macro_f1": float(f1_score(test["label"], scored["predicted_class"], labels=present,
                                                  average="macro", zero_division=0)),
                       "benign_predicted_as_attack": float((scored["predicted_class"].to_numpy()[benign] != BENIGN).mean())
                       if benign.any() else float("nan")},
        "category": {"accuracy": float(accuracy_score(test["category"], scored["predicted_category"])),
                     "macro_f1": float(f1_score(test["category"], scored["predicted_category"], labels=cats,
                                                average="macro", zero_division=0))},
        "_labels": {"classes": present, "categories": cats},
    }


ROW_MODES = ("auto", "held-out", "all")


@dataclass(frozen=True)
class HeldOut:
    """The given rows, their split under the bundle's seed, which of them are evaluated, and those rows
    with their scores."""

    files: list[Path]
    split: SplitConfig
    frame: pd.DataFrame   # every row given
    part: pd.Series       # the split part of each row of ``frame``
    test: pd.DataFrame    # the evaluated rows, index 0..n-1
    scored: pd.DataFrame  # score_frame of ``test``, same index
    evaluated: pd.Series  # per row of ``frame``: evaluated or not
    file_rows: list[dict[str, Any]]  # per file: rows given, rows evaluated and why


def rows_to_evaluate(frame: pd.DataFrame, part: pd.Series, files: Sequence[Path], bundle: Bundle,
                     mode: str = "auto") -> tuple[pd.Series, list[dict[str, Any]]]:
    """Which rows of ``frame`` to evaluate, per file, and why.

    ``auto``: a row of the bundle's own data is evaluated only when its split holds it out (``test``);
    every other row is new data and evaluated. With the bundle's training-row fingerprint
    (``training_rows.npz``) a row is the bundle's own when its file name, row number and features
    are those of a training row, so a part of an official file (the committed sample) is recognised
    row by row and a user's file named like an official one is new. A bundle without the fingerprint
    decides per file: its own when the file's sha256 is a training file's, or when it bears a
    training file's name (with a warning). ``held-out``: the split's test rows of every file.
    ``all``: every row.
    """
    from models.training.training_rows import read_training_rows

    if mode not in ROW_MODES:
        raise ValueError(f"rows: {mode!r}, expected one of {ROW_MODES}")
    trained = {f["sha256"]: f["name"] for f in bundle.manifest.get("training_files", [])}
    trained_names = set(trained.values())
    fingerprint = read_training_rows(bundle.path, bundle.manifest) if mode == "auto" else None
    own_rows = fingerprint.known(frame) if fingerprint is not None else None
    is_test = part.eq(TEST)
    evaluated = pd.Series(False, index=frame.index)
    info: list[dict[str, Any]] = []
    for path in files:
        rows = frame["source_file"].eq(path.name)
        digest = sha256_of(path)
        own = rows & False
        if mode == "all":
            chosen, why = rows, "every row (--rows all)"
        elif mode == "held-out":
            chosen, why = rows & is_test, "the split's test rows (--rows held-out)"
        elif own_rows is not None:
            own = rows & own_rows
            chosen = (own & is_test) | (rows & ~own)
            why = ("rows of the bundle's training files: only those its split holds out; other rows: all"
                   if own.any() else "not the bundle's training data: every row")
        elif digest in trained or path.name in trained_names:
            own = rows
            chosen = rows & is_test
            why = "a training file of the bundle: only the rows its split holds out"
            if digest not in trained:
                why = ("named as a training file of the bundle, other content, and the bundle has no "
                       "training-row fingerprint: only the rows its split holds out; give --rows all to "
                       "evaluate every row")
                log.warning("%s: %s", path.name, why)
        else:
            chosen, why = rows, "not the bundle's training data: every row"
        evaluated |= chosen
        info.append({"name": path.name, "sha256": digest, "same_as_training": digest in trained,
                     "rows": int(rows.sum()), "rows_of_the_bundles_data": int(own.sum()),
                     "rows_evaluated": int(chosen.sum()), "why": why})
    return evaluated, info


def score_held_out(bundle: Bundle, data: Sequence[str | Path], rows: str = "auto") -> HeldOut:
    """Load the flow files, split them as the bundle was split, choose the rows to evaluate
    (:func:`rows_to_evaluate`) and score them."""
    files = list_flow_csvs(data)
    frame = load_flows_pandas(files)
    split = SplitConfig.from_description(bundle.manifest["split"])
    part = split_frame(frame, split)
    evaluated, file_rows = rows_to_evaluate(frame, part, files, bundle, rows)
    if not evaluated.any():
        raise NoHeldOutRowsError("none of the given rows is in the bundle's test split; give the official "
                                 "files (or the committed sample) with their original file names, or --rows all")
    test = frame.loc[evaluated].reset_index(drop=True)
    return HeldOut(files=files, split=split, frame=frame, part=part, test=test,
                   scored=score_frame(test[list(FEATURES)], bundle), evaluated=evaluated, file_rows=file_rows)


def evaluate_bundle(bundle: Bundle, data: Sequence[str | Path],
                    rows: str = "auto") -> tuple[dict[str, Any], pd.DataFrame]:
    """The evaluation dict (JSON-ready) and the scored rows (for the HTML report); ``rows`` as
    :func:`rows_to_evaluate`."""
    held_out = score_held_out(bundle, data, rows)
    split, frame, test, scored = held_out.split, held_out.frame, held_out.test, held_out.scored
    leak_info, leaked = leakage(frame, held_out.evaluated)
    result = evaluate_scored(test, scored, bundle)
    labels = result.pop("_labels")
    unseen = ~leaked.to_numpy()
    unseen_result = evaluate_scored(test.loc[unseen].reset_index(drop=True),
                                    scored.loc[unseen].reset_index(drop=True), bundle)
    out = {
        "model_version": bundle.version,
        "n_rows": int(len(test)),
        "held_out": "rows whose split (seed %d) is test: used neither for training nor for threshold "
                    "calibration; every row of files that are not the bundle's training data (see "
                    "evaluated_files)" % split.seed,
        **result,
        "thresholds": {name: t.to_dict() for name, t in bundle.thresholds.items()},
        "leakage": leak_info,
        "binary_unseen": unseen_result["binary"],
        "multiclass_unseen": unseen_result["multiclass"],
        "category_unseen": unseen_result["category"],
        "per_class_detection_unseen": {k: v["detection_rate"] for k, v in unseen_result["per_class"].items()},
        "evaluated_files": held_out.file_rows,
    }
    scored = pd.concat([test[["label", "category", "source_file", "row_number"]], scored], axis=1)
    scored.attrs["labels"] = labels
    return out, scored


def confusion(scored: pd.DataFrame, truth: str, predicted: str, labels: list[str]) -> np.ndarray:
    return confusion_matrix(scored[truth], scored[predicted], labels=labels)


def curves(y: np.ndarray, score: np.ndarray) -> dict[str, np.ndarray]:
    fpr, tpr, _ = roc_curve(y, score)
    precision, recall, _ = precision_recall_curve(y, score)
    return {"fpr": fpr, "tpr": tpr, "precision": precision, "recall": recall}
