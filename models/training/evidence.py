"""Why the detection targets are out of reach: the evidence, recomputed for a bundle on held-out rows.

``python -m models.training.evidence --model models/v3 --data ../shared/data/ciciomt2024 --json OUT.json``
writes (all on the bundle's test rows unless said otherwise):

- ``without_arp_spoofing``: each detector's ROC-AUC with the ARP-spoofing rows left out;
- ``arp_spoofing``: how many ARP-spoofing rows hold no ARP packet at all (``ARP == 0``: the capture's
  label covers windows where the attacker sent nothing), and the ensemble's detection rate with and
  without an ARP packet in the window; the share of benign rows with an ARP packet;
- ``confusable_pairs``: the classifier's errors that fall inside the class pairs below, and the
  19-class macro-F1 when each pair's two classes count as one (DDoS/DoS pairs only, then all pairs),
  and the 6-category macro-F1 when DDoS and DoS count as one category, and each category's F1;
- ``duplicates`` (all rows given): distinct 39-feature vectors that carry more than one label;
- ``nearest_benign``: per class, the share of rows whose nearest benign *training* row (scaled
  features) is closer than the 95th percentile of benign test rows' own nearest distances: rows an
  unsupervised detector trained on benign traffic cannot tell from it.

Nothing here is fitted on test rows; the figures only describe them.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, roc_auc_score

from models.training.evaluation import score_held_out, vector_keys
from models.training.split import TRAIN
from schemas.classes import BENIGN, CATEGORIES, CATEGORY_OF_CLASS

log = logging.getLogger(__name__)

ARP_SPOOFING = "ARP_Spoofing"
CONFUSABLE_PAIRS: tuple[tuple[str, str], ...] = (
    (BENIGN, ARP_SPOOFING),
    ("DDoS-ICMP", "DoS-ICMP"), ("DDoS-SYN", "DoS-SYN"), ("DDoS-TCP", "DoS-TCP"), ("DDoS-UDP", "DoS-UDP"),
    ("MQTT-DDoS-Connect_Flood", "MQTT-DoS-Connect_Flood"), ("MQTT-DDoS-Publish_Flood", "MQTT-DoS-Publish_Flood"),
    ("Recon-OS_Scan", "Recon-Port_Scan"), ("Recon-OS_Scan", "Recon-VulScan"), ("Recon-Port_Scan", "Recon-VulScan"),
)
DDOS_DOS_PAIRS: tuple[tuple[str, str], ...] = tuple(p for p in CONFUSABLE_PAIRS if p[0].startswith(("DDoS", "MQTT-DDoS")))


def merge_labels(labels: np.ndarray, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Each pair's second class renamed to its first (chains follow: A-B and B-C make one class)."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while name in parent:
            name = parent[name]
        return name

    for first, second in pairs:
        a, b = root(first), root(second)
        if a != b:
            parent[b] = a
    return np.array([root(str(label)) for label in labels], dtype=object)


def merged_macro_f1(truth: np.ndarray, predicted: np.ndarray, pairs: Sequence[tuple[str, str]]) -> float:
    return float(f1_score(merge_labels(truth, pairs), merge_labels(predicted, pairs), average="macro"))


def category_of(labels: np.ndarray) -> np.ndarray:
    return np.array([CATEGORY_OF_CLASS[str(label)] for label in labels], dtype=object)


def errors_within_pairs(truth: np.ndarray, predicted: np.ndarray, pairs: Sequence[tuple[str, str]]) -> int:
    allowed = {frozenset(pair) for pair in pairs}
    wrong = truth != predicted
    return int(sum(frozenset((t, p)) in allowed for t, p in zip(truth[wrong], predicted[wrong])))


def vectors_with_several_labels(frame: pd.DataFrame) -> dict[str, int]:
    """Distinct exact 39-feature vectors carrying more than one label, and the rows they cover."""
    keys = vector_keys(frame)
    labels_per_key = frame.assign(_key=keys.to_numpy()).groupby("_key")["label"].nunique()
    several = labels_per_key[labels_per_key > 1].index
    return {"distinct_vectors_with_several_labels": int(len(several)),
            "rows_whose_vector_has_several_labels": int(keys.isin(several).sum())}


def nearest_benign(train_benign: np.ndarray, test: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Share of each class's rows within the benign test rows' 95th-percentile nearest distance to
    the benign training rows (Euclidean, on the preprocessed matrix)."""
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=1).fit(train_benign)
    distance = index.kneighbors(test, return_distance=True)[0][:, 0]
    benign = labels == BENIGN
    if not benign.any():
        raise ValueError("no benign test rows: the nearest-benign reference needs them")
    p95 = float(np.quantile(distance[benign], 0.95))
    per_class = {str(cls): {"n": int((labels == cls).sum()),
                            "median_distance": round(float(np.median(distance[labels == cls])), 4),
                            "share_within_benign_p95": round(float((distance[labels == cls] <= p95).mean()), 4)}
                 for cls in sorted(set(labels))}
    return {"benign_test_p95_distance": round(p95, 4), "per_class": per_class}


def _auc(y: np.ndarray, score: np.ndarray) -> float | None:
    return round(float(roc_auc_score(y, score)), 4) if 0 < y.sum() < len(y) else None


def collect(bundle_dir: Path, data: Sequence[str | Path]) -> dict[str, Any]:
    from models.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    held_out = score_held_out(bundle, data)
    frame, part, test, scored = held_out.frame, held_out.part, held_out.test, held_out.scored
    truth = test["label"].to_numpy(dtype=object)
    predicted = scored["predicted_class"].to_numpy(dtype=object)
    predicted_category = scored["predicted_category"].to_numpy(dtype=object)  # as evaluation.json scores it
    attack = truth != BENIGN
    not_arp = truth != ARP_SPOOFING
    scores = {"ensemble": scored["ensemble_score"], "lstm_ae": scored["ae_error"], "iforest": scored["if_score"],
              "classifier": scored["clf_attack_proba"]}

    arp = truth == ARP_SPOOFING
    has_arp_packet = test["ARP"].to_numpy() > 0
    flagged = scored["is_anomaly"].to_numpy(dtype=bool)

    def rate(mask: np.ndarray) -> float | None:
        return round(float(flagged[mask].mean()), 4) if mask.any() else None

    result: dict[str, Any] = {
        "model_version": bundle.version,
        "n_test_rows": int(len(test)),
        "roc_auc": {name: _auc(attack, s.to_numpy()) for name, s in scores.items()},
        "without_arp_spoofing": {name: _auc(attack[not_arp], s.to_numpy()[not_arp]) for name, s in scores.items()},
        "arp_spoofing": {
            "n": int(arp.sum()),
            "share_without_an_arp_packet": round(float((~has_arp_packet[arp]).mean()), 4) if arp.any() else None,
            "detection_with_an_arp_packet": rate(arp & has_arp_packet),
            "detection_without_an_arp_packet": rate(arp & ~has_arp_packet),
            "benign_share_with_an_arp_packet": round(float(has_arp_packet[truth == BENIGN].mean()), 4)
            if (truth == BENIGN).any() else None,
        },
        "confusable_pairs": {
            "pairs": [f"{a}<->{b}" for a, b in CONFUSABLE_PAIRS],
            "classifier_errors": int((truth != predicted).sum()),
            "errors_within_pairs": errors_within_pairs(truth, predicted, CONFUSABLE_PAIRS),
            "macro_f1": round(float(f1_score(truth, predicted, average="macro")), 4),
            "macro_f1_ddos_dos_merged": round(merged_macro_f1(truth, predicted, DDOS_DOS_PAIRS), 4),
            "macro_f1_all_pairs_merged": round(merged_macro_f1(truth, predicted, CONFUSABLE_PAIRS), 4),
            "category_macro_f1": round(float(f1_score(category_of(truth), predicted_category, average="macro")), 4),
            "category_macro_f1_ddos_dos_as_one": round(merged_macro_f1(
                category_of(truth), predicted_category, [("DDoS", "DoS")]), 4),
            "category_f1": {str(c): round(float(f), 4) for c, f in zip(CATEGORIES, f1_score(
                category_of(truth), predicted_category, labels=list(CATEGORIES), average=None, zero_division=0))},
        },
        "duplicates": vectors_with_several_labels(frame),
    }
    benign_train = frame.loc[part.eq(TRAIN) & frame["label"].eq(BENIGN)]
    result["nearest_benign"] = nearest_benign(bundle.preprocessor.transform(benign_train),
                                              bundle.preprocessor.transform(test), truth)
    return result


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m models.training.evidence", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="bundle directory, e.g. models/v3")
    parser.add_argument("--data", nargs="+", required=True, help="official CICIoMT2024 CSV files or directories")
    parser.add_argument("--json", type=Path, required=True, help="where to write the evidence")
    args = parser.parse_args(argv)
    result = collect(args.model, args.data)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    log.info("evidence for %s written to %s", result["model_version"], args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
