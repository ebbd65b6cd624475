"""Explanations on hand-made cases: which detectors fired, the class, and which features stand out
against a hand-made benign reference, worded and rounded for people."""
from __future__ import annotations

import math

import numpy as np
import pytest

from models.explain import explain, feature_value, human, outside_scores
from models.reference import BenignReference
from models.thresholds import Threshold

FEATURES = ("Rate", "syn_flag_number", "IAT", "Number")
REFERENCE = BenignReference(features=FEATURES, p1=(10.0, 0.0, 0.001, 10.0), median=(150.0, 0.0, 0.015, 10.0),
                            p99=(900.0, 0.1, 0.1, 10.0), rows=100)
THRESHOLDS = {name: Threshold(value, 0.01, 100, 0.01) for name, value in
              (("lstm_ae", 0.0385), ("iforest", 0.633), ("classifier", 0.971), ("ensemble", 1.03))}
MODEL_COLUMNS = [0, 1, 2]  # Number is not read by the models


def _one(raw, lstm_ae=0.01, iforest=0.5, classifier=0.5, ensemble=2.0, cls="DDoS-SYN", p=0.98) -> str:
    scores = {"lstm_ae": np.array([lstm_ae]), "iforest": np.array([iforest]), "classifier": np.array([classifier]),
              "ensemble": np.array([ensemble])}
    return explain(np.array([raw], dtype=float), scores, [cls], np.array([p]), THRESHOLDS, REFERENCE, MODEL_COLUMNS)[0]


@pytest.mark.parametrize(("value", "text"), [
    (28000.0, "28,000"), (99390.0, "99,400"), (2173214.5, "2,170,000"), (146.5, "146"), (0.01488, "0.0149"),
    (1.12e-05, "1.12e-05"), (0.0, "0"), (999.6, "1,000"), (math.inf, "inf"), (math.nan, "n/a")])
def test_numbers_for_people(value, text) -> None:
    assert human(value) == text


def test_units_and_shares() -> None:
    assert feature_value("Rate", 28000.0) == "28,000 pkt/s"
    assert feature_value("syn_flag_number", 1.0) == "100%"
    assert feature_value("IAT", 2e-6) == "2e-06 s"
    assert feature_value("Time_To_Live", 64.0) == "64"


def test_a_flood_names_its_rate_and_flags_furthest_first() -> None:
    text = _one([28000.0, 1.0, 2e-6, 100.0], iforest=0.712, classifier=1.0, ensemble=5.21)
    assert text == ("ensemble 5.21 > 1.03; fired: isolation forest 0.712 > 0.633, classifier P(attack) 1 > 0.971; "
                    "class DDoS-SYN (p 0.98); stands out: Rate 28,000 pkt/s (normal 150 pkt/s, p99 900 pkt/s), "
                    "syn_flag_number 100% (normal 0%, p99 10%), IAT 2e-06 s (normal 0.015 s, p1 0.001 s)")
    # how far: Rate (28000 - 900) / (900 - 150) = 36.1; syn (1 - 0.1) / (0.1 - 0) = 9; IAT (0.001 - 2e-6) / 0.014 = 0.07
    scores = outside_scores(np.array([[28000.0, 1.0, 2e-6]]), *(a[:3] for a in REFERENCE.arrays()))
    assert scores[0] == pytest.approx([36.1333, 9.0, 0.071286], rel=1e-4)


def test_values_inside_the_benign_range_stand_out_nowhere_and_unread_features_are_not_named() -> None:
    text = _one([500.0, 0.05, 0.02, 100.0], lstm_ae=0.2)  # Number 100 is far out, but no model reads it
    assert text.endswith("fired: autoencoder 0.2 > 0.0385; class DDoS-SYN (p 0.98); "
                         "stands out: no feature outside the benign p1-p99")


def test_only_the_ensemble_fired_and_infinite_and_empty_values() -> None:
    text = _one([math.inf, math.nan, 0.5, 10.0], ensemble=1.2, cls="Recon-Port_Scan", p=0.4)
    assert text.startswith("ensemble 1.2 > 1.03; fired: no detector alone (their combination); "
                           "class Recon-Port_Scan (p 0.40); stands out: Rate inf pkt/s")
    assert "syn_flag_number" not in text  # empty: not standing out
    assert "IAT 0.5 s (normal 0.015 s, p99 0.1 s)" in text


def test_a_feature_constant_in_benign_traffic_is_measured_in_units_of_its_value() -> None:
    ref = BenignReference(features=("a",), p1=(0.0,), median=(0.0,), p99=(0.0,), rows=10)
    assert outside_scores(np.array([[1.0], [-3.0], [0.0]]), *ref.arrays())[:, 0].tolist() == [1.0, 3.0, 0.0]


def test_without_a_reference_the_feature_part_is_left_out() -> None:
    scores = {name: np.array([9.0]) for name in ("lstm_ae", "iforest", "classifier", "ensemble")}
    text = explain(np.array([[1.0, 2.0, 3.0, 4.0]]), scores, ["DoS-UDP"], np.array([0.5]), THRESHOLDS, None, [0])[0]
    assert "stands out" not in text and text.endswith("class DoS-UDP (p 0.50)")


def test_every_alert_of_real_rows_is_explained_and_no_other_record(sample_dir) -> None:
    from models import DEFAULT_BUNDLE_PATH
    from models.bundle import load_bundle
    from models.training.datasets import load_flows_pandas
    from schemas.flow_record import FEATURES
    from udfs.scoring import score_frame

    rows = load_flows_pandas([sample_dir]).sample(600, random_state=3)[list(FEATURES)].reset_index(drop=True)
    scored = score_frame(rows, load_bundle(DEFAULT_BUNDLE_PATH), explain=True)
    explained = scored["explanation"].notna()
    assert (explained == scored["is_anomaly"]).all() and 0 < explained.sum() < len(rows)
    for text, cls in zip(scored.loc[explained, "explanation"], scored.loc[explained, "predicted_class"]):
        assert text.startswith("ensemble ") and f"; class {cls} (p " in text and "; stands out: " in text
    assert score_frame(rows, load_bundle(DEFAULT_BUNDLE_PATH)).columns.tolist() == \
        [c for c in scored.columns if c != "explanation"]
