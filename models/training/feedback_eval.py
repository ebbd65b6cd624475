"""What a bundle makes of the records analysts labelled (``iomt-ad evaluate --feedback``): the share
of the false positives it still flags, the share of the true positives it detects, and per corrected
class its detection and its classifier's accuracy.

Evaluated: every labelled record the bundle did not learn from — not one of the labelled records it
was trained or calibrated with (its ``feedback_rows.json``), and not a row of its training files
that its split used (a replayed training row, recognised by ``training_rows.npz``). The report says
how many were left out and why.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from models.bundle import Bundle
from models.training.feedback import clean, dataset_rows, learnt_records
from models.training.split import TEST, SplitConfig, split_rows
from schemas.classes import BENIGN, CLASSES
from schemas.flow_record import FEATURES
from udfs.scoring import score_frame

log = logging.getLogger(__name__)


def _learnt_training_rows(bundle: Bundle, records: pd.DataFrame) -> np.ndarray:
    """Per record: a row of the bundle's training files that its split trained or calibrated with."""
    from models.training.training_rows import read_training_rows

    fingerprint = read_training_rows(bundle.path, bundle.manifest)
    if fingerprint is None or records.empty or "split" not in bundle.manifest:
        return np.zeros(len(records), bool)
    rows = dataset_rows(records)
    own = fingerprint.known(rows).to_numpy()
    if not own.any():
        return own
    split = SplitConfig.from_description(bundle.manifest["split"])
    parts = split_rows(rows.loc[own, "source_file"], rows.loc[own, "row_number"], split)
    learnt = own.copy()
    learnt[np.flatnonzero(own)] = parts != TEST
    return learnt


def _share(flags: np.ndarray) -> float | None:
    return float(flags.mean()) if len(flags) else None


def evaluate_feedback(bundle: Bundle, records: pd.DataFrame) -> tuple[dict[str, Any], pd.DataFrame]:
    """(the report, the evaluated records with their scores) for ``records`` (labelled records:
    ``jobs.feedback.store.FeedbackBook.labelled_records``)."""
    records = clean(records)
    learnt = records["record_id"].map(learnt_records(bundle)).notna().to_numpy()
    training = _learnt_training_rows(bundle, records) & ~learnt
    chosen = ~learnt & ~training
    test = records.loc[chosen].reset_index(drop=True)
    scored = score_frame(test[list(FEATURES)], bundle) if len(test) else pd.DataFrame(
        {"is_anomaly": pd.Series(dtype=bool), "predicted_class": pd.Series(dtype=object)})
    flagged = scored["is_anomaly"].to_numpy(dtype=bool)
    predicted = scored["predicted_class"].to_numpy(dtype=object)
    benign = test["label"].eq(BENIGN).to_numpy()
    attack = test["is_attack"].astype(bool).to_numpy() & ~benign
    per_class = {}
    for cls in [c for c in CLASSES if c != BENIGN and c in set(test["label"].dropna())]:
        mask = test["label"].eq(cls).to_numpy()
        per_class[cls] = {"n": int(mask.sum()), "detection_rate": _share(flagged[mask]),
                          "classifier_accuracy": _share(predicted[mask] == cls)}
    report = {
        "model_version": bundle.version,
        "labelled_records": int(len(records)),
        "records_evaluated": int(chosen.sum()),
        "left_out": {"learnt_from_feedback": int(learnt.sum()), "rows_of_its_training_files": int(training.sum())},
        "why": "every labelled record the bundle did not learn from: not one of the labelled records it was trained "
               "or calibrated with (feedback_rows.json), nor a row of its training files its split used",
        "false_positives": {"n": int(benign.sum()), "still_flagged": int(flagged[benign].sum()),
                            "flagged_share": _share(flagged[benign]),
                            "classified_benign_share": _share(predicted[benign] == BENIGN)},
        "true_positives": {"n": int(attack.sum()), "detected": int(flagged[attack].sum()),
                           "detection_rate": _share(flagged[attack]), "per_class": per_class},
    }
    log.info("feedback: %d of %d labelled records evaluated; false positives still flagged %s of %d, true "
             "positives detected %s of %d", report["records_evaluated"], report["labelled_records"],
             report["false_positives"]["still_flagged"], report["false_positives"]["n"],
             report["true_positives"]["detected"], report["true_positives"]["n"])
    return report, pd.concat([test[["record_id", "label", "verdict"]], scored], axis=1)
