"""The evidence helpers, by hand, and the whole collection on the committed sample."""
import numpy as np
import pandas as pd
import pytest

from models import DEFAULT_BUNDLE_PATH
from models.training.evidence import (collect, errors_within_pairs, merge_labels, merged_macro_f1, nearest_benign,
                             vectors_with_several_labels)
from schemas.flow_record import FEATURES


def test_merge_labels_follows_chains() -> None:
    labels = np.array(["A", "B", "C", "D"], dtype=object)
    assert merge_labels(labels, [("A", "B"), ("B", "C")]).tolist() == ["A", "A", "A", "D"]


def test_merged_macro_f1_by_hand() -> None:
    truth = np.array(["DDoS-UDP", "DoS-UDP", "Benign", "Benign"], dtype=object)
    predicted = np.array(["DoS-UDP", "DDoS-UDP", "Benign", "Benign"], dtype=object)
    # unmerged: DDoS-UDP and DoS-UDP F1 0, Benign 1 -> 1/3; merged: both classes perfect -> 1
    assert merged_macro_f1(truth, predicted, []) == pytest.approx(1 / 3)
    assert merged_macro_f1(truth, predicted, [("DDoS-UDP", "DoS-UDP")]) == 1.0
    assert errors_within_pairs(truth, predicted, [("DDoS-UDP", "DoS-UDP")]) == 2
    assert errors_within_pairs(truth, predicted, [("Benign", "DoS-UDP")]) == 0


def test_vectors_with_several_labels_by_hand() -> None:
    rows = np.zeros((5, len(FEATURES)))
    rows[3:, 0] = 1.0  # vectors: x x x y y
    frame = pd.DataFrame(rows, columns=list(FEATURES)).assign(label=["A", "B", "A", "C", "C"])
    assert vectors_with_several_labels(frame) == {"distinct_vectors_with_several_labels": 1,
                                                  "rows_whose_vector_has_several_labels": 3}


def test_nearest_benign_by_hand() -> None:
    train = np.array([[0.0], [10.0]])
    test = np.array([[0.0], [1.0], [10.0], [5.0], [30.0]])
    labels = np.array(["Benign", "Benign", "Benign", "X", "X"], dtype=object)
    result = nearest_benign(train, test, labels)
    # benign distances 0, 1, 0 -> p95 = 0.9; X distances 5 and 20: none within
    assert result["benign_test_p95_distance"] == pytest.approx(0.9)
    assert result["per_class"]["X"] == {"n": 2, "median_distance": 12.5, "share_within_benign_p95": 0.0}
    assert result["per_class"]["Benign"]["share_within_benign_p95"] == pytest.approx(2 / 3, abs=1e-4)


def test_collect_on_the_committed_sample(sample_dir) -> None:
    result = collect(DEFAULT_BUNDLE_PATH, [sample_dir])
    assert result["n_test_rows"] > 1000
    pairs = result["confusable_pairs"]
    assert 0 <= pairs["errors_within_pairs"] <= pairs["classifier_errors"]
    for key in ("macro_f1", "macro_f1_ddos_dos_merged", "macro_f1_all_pairs_merged", "category_macro_f1"):
        assert 0.0 <= pairs[key] <= 1.0
    arp = result["arp_spoofing"]
    assert arp["n"] > 0 and 0.0 <= arp["share_without_an_arp_packet"] <= 1.0
    assert set(result["nearest_benign"]["per_class"]) >= {"Benign", "ARP_Spoofing"}
