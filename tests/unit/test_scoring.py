"""score_frame, the ensemble rule and thresholds against values worked out by hand.

The bundle here is built by hand: identity preprocessing, an autoencoder that reconstructs zeros (so
its error is the mean of the squared inputs), and stub IF / classifier scores that read one feature.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.bundle import Bundle
from models.classifier import attack_logit
from models.ensemble import EnsembleRule, Normaliser
from models.training.ensemble import fit_ensemble
from models.lstm_ae import LstmAeConfig, LstmAutoencoder, top_features
from models.preprocess import Preprocessor
from models.thresholds import Threshold, ThresholdError
from models.training.thresholds import threshold_at_fpr
from schemas.flow_record import FEATURES
from udfs import model_cache
from udfs.scoring import OUTPUT_COLUMNS, score_frame

N = len(FEATURES)


class StubIForest:
    def score(self, x: np.ndarray) -> np.ndarray:
        return x[:, FEATURES.index("Header_Length")].astype(np.float64)


class StubClassifier:
    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        attack = x[:, FEATURES.index("Rate")] > 0
        cls = np.where(attack, "DDoS-UDP", "Benign").astype(object)
        cat = np.where(attack, "DDoS", "Benign").astype(object)
        proba = np.where(attack, 0.5, 0.0)
        return cls, cat, proba, attack_logit(proba, 1.0 - proba)


def zero_autoencoder(chunk_size: int) -> LstmAutoencoder:
    import tensorflow as tf

    inputs = tf.keras.Input((1, N))
    outputs = tf.keras.layers.TimeDistributed(tf.keras.layers.Dense(N, kernel_initializer="zeros",
                                                                    bias_initializer="zeros"))(inputs)
    return LstmAutoencoder(model=tf.keras.Model(inputs, outputs), config=LstmAeConfig(), chunk_size=chunk_size)


def hand_bundle(chunk_size: int = 4096) -> Bundle:
    identity = Preprocessor(features=FEATURES, inf_policy="cap", upper_cap=(1e6,) * N, lower_cap=(-1e6,) * N,
                            median=(0.0,) * N, log_unit=(0.0,) * N, center=(0.0,) * N, scale=(1.0,) * N, clip=1e6)
    unit = Normaliser(q50=0.0, q99=1.0)
    ensemble = EnsembleRule(normalisers={"lstm_ae": unit, "iforest": unit},
                            threshold=Threshold(value=1.0, target_fpr=0.01, n_calibration=100, achieved_fpr=0.01))
    return Bundle(path=Path("."), manifest={"model_version": "hand-1", "features": list(FEATURES)},
                  preprocessor=identity, lstm_ae=zero_autoencoder(chunk_size), iforest=StubIForest(),
                  classifier=StubClassifier(), ensemble=ensemble, thresholds={"ensemble": ensemble.threshold})


def frame(rows: list[dict[str, float]]) -> pd.DataFrame:
    data = pd.DataFrame(0.0, index=range(len(rows)), columns=list(FEATURES))
    for i, row in enumerate(rows):
        for name, value in row.items():
            data.loc[i, name] = value
    return data


ROWS = [
    {"Header_Length": 3.0},              # ae 9/39, if 3, clf 0 -> ensemble 3: flagged, margin 2 -> medium
    {"Rate": 6.0, "Tot sum": 2.0},       # ae (36+4)/39 = 1.0256, if 0, clf 0.5 -> ensemble 1.0256: low
    {},                                  # all zeros -> 0: not flagged
    {"IAT": 20.0},                       # ae 400/39 = 10.256: margin 9.256 -> high
    {"Variance": -40.0},                 # ae 1600/39 = 41.03: margin > 16 -> critical
]


def test_score_frame_by_hand() -> None:
    out = score_frame(frame(ROWS), hand_bundle())
    assert tuple(out.columns) == OUTPUT_COLUMNS
    np.testing.assert_allclose(out["ae_error"], [9 / 39, 40 / 39, 0.0, 400 / 39, 1600 / 39], rtol=1e-6)
    np.testing.assert_allclose(out["if_score"], [3.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(out["ensemble_score"], [3.0, 40 / 39, 0.0, 400 / 39, 1600 / 39], rtol=1e-6)
    assert out["is_anomaly"].tolist() == [True, True, False, True, True]
    assert out["severity"].tolist() == ["medium", "low", "none", "high", "critical"]
    assert out["predicted_class"].tolist() == ["Benign", "DDoS-UDP", "Benign", "Benign", "Benign"]
    assert out["predicted_category"].tolist()[1] == "DDoS"
    # largest error first, ties broken by feature order
    assert out["top_features"].tolist()[0] == ["Header_Length", "Protocol Type", "Time_To_Live"]
    assert out["top_features"].tolist()[1] == ["Rate", "Tot sum", "Header_Length"]
    assert out["model_version"].unique().tolist() == ["hand-1"]


def test_chunk_size_does_not_change_scores() -> None:
    rows = frame(ROWS * 3)
    small = score_frame(rows, hand_bundle(chunk_size=2))
    large = score_frame(rows, hand_bundle(chunk_size=4096))
    pd.testing.assert_frame_equal(small, large)


def test_index_is_kept_and_empty_frame_scores() -> None:
    rows = frame(ROWS).set_axis([10, 20, 30, 40, 50])
    assert score_frame(rows, hand_bundle()).index.tolist() == [10, 20, 30, 40, 50]
    empty = score_frame(frame([]), hand_bundle())
    assert len(empty) == 0 and tuple(empty.columns) == OUTPUT_COLUMNS


def test_threshold_at_fpr_by_hand() -> None:
    scores = np.arange(1.0, 101.0)                     # 1 .. 100
    t = threshold_at_fpr(scores, 0.01)                 # 1 row of 100 may lie above -> 99
    assert t.value == 99.0 and t.achieved_fpr == 0.01 and t.n_calibration == 100
    assert threshold_at_fpr(scores, 0.05).value == 95.0
    assert threshold_at_fpr(scores, 0.001).value == 100.0  # floor(0.1) = 0 rows above
    assert t.flag(np.array([99.0, 99.5])).tolist() == [False, True]
    with pytest.raises(ThresholdError):
        threshold_at_fpr(np.array([]), 0.01)
    with pytest.raises(ThresholdError):
        threshold_at_fpr(scores, 1.5)


def test_ensemble_normalises_then_takes_the_max() -> None:
    benign = {"lstm_ae": np.arange(0.0, 101.0), "iforest": np.arange(0.0, 101.0) / 10}
    rule = fit_ensemble(benign, target_fpr=0.01)
    # lstm_ae: q50 50, q99 99 -> n(149) = 99/49 ; iforest: q50 5, q99 9.9 -> n(5) = 0
    assert rule.normalisers["lstm_ae"] == Normaliser(50.0, 99.0)
    np.testing.assert_allclose(rule.score({"lstm_ae": np.array([149.0]), "iforest": np.array([5.0])}), [99 / 49])
    # both normalised benign scores are identical ((i-50)/49); 101 rows, 1 allowed above -> (99-50)/49 = 1
    assert rule.threshold.value == pytest.approx(1.0)


def test_attack_logit_by_hand() -> None:
    # ln(0.5/0.5) = 0, ln(0.9/0.1) = ln 9 = 2.1972246, ln(1/1e-12) = 27.631021,
    # a zero probability is floored at 1e-300: ln(1/1e-300) = 690.77553
    np.testing.assert_allclose(attack_logit(np.array([0.5, 0.9, 1.0, 1.0, 0.0]), np.array([0.5, 0.1, 1e-12, 0.0, 1.0])),
                               [0.0, 2.1972246, 27.631021, 690.77553, -690.77553], rtol=1e-6)


def test_classifier_logit_enters_the_ensemble_when_fitted_with_it() -> None:
    bundle = hand_bundle()
    bundle.ensemble = EnsembleRule(normalisers={**bundle.ensemble.normalisers,
                                                "classifier_logit": Normaliser(q50=-16.0, q99=-6.0)},
                                   threshold=bundle.ensemble.threshold)
    out = score_frame(frame([{"Rate": 0.1}]), bundle)
    # ae 0.01/39, if 0, clf p = 0.5 -> logit 0 -> (0 + 16) / 10 = 1.6 -> flagged, margin 0.6 -> low
    np.testing.assert_allclose(out["ensemble_score"], [1.6])
    assert out["severity"].tolist() == ["low"]


def test_top_features_helper() -> None:
    names = top_features(np.array([[0.0, 3.0, 1.0, 3.0]]), ["w", "x", "y", "z"], k=3)
    assert names == [["x", "z", "y"]]


def test_model_cache_loads_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"model_version": "v-test"}', encoding="utf-8")
    calls: list[str] = []

    def fake_load(path: str) -> str:
        calls.append(path)
        return "bundle"

    monkeypatch.setattr("models.bundle.load_bundle", fake_load)
    model_cache.clear()
    threads = [threading.Thread(target=model_cache.get_bundle, args=(tmp_path,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert model_cache.get_bundle(tmp_path) == "bundle"
    assert len(calls) == 1 and model_cache.cached_keys()[0][1] == "v-test"
    (tmp_path / "manifest.json").write_text('{"model_version": "v-test-2"}', encoding="utf-8")
    model_cache.get_bundle(tmp_path)          # a retrained bundle (new sha256) is loaded again
    assert len(calls) == 2
    model_cache.clear()


def test_stacked_ensemble_score_by_hand() -> None:
    unit = Normaliser(q50=0.0, q99=1.0)
    rule = EnsembleRule(normalisers={"lstm_ae": unit, "iforest": unit}, weights={"lstm_ae": 2.0, "iforest": 0.0},
                        output=Normaliser(q50=1.0, q99=3.0),
                        threshold=Threshold(value=1.0, target_fpr=0.01, n_calibration=100, achieved_fpr=0.01))
    # ae 0 -> t = 0 -> (0 - 1) / 2 = -0.5; ae e - 1 -> t = 2 * log1p(e - 1) = 2 -> 0.5; ae -(e - 1) -> t = -2 -> -1.5
    scores = {"lstm_ae": np.array([0.0, np.e - 1, -(np.e - 1)]), "iforest": np.array([100.0, -100.0, 5.0])}
    np.testing.assert_allclose(rule.score(scores), [-0.5, 0.5, -1.5])
    assert EnsembleRule.from_dict(rule.to_dict()) == rule


def test_a_detector_that_also_decides_alone_raises_the_stacked_score_to_its_own() -> None:
    unit = Normaliser(q50=0.0, q99=1.0)
    rule = EnsembleRule(normalisers={"lstm_ae": Normaliser(q50=0.0, q99=2.0), "iforest": unit},
                        weights={"lstm_ae": 0.1, "iforest": 1.0}, output=unit, alone=("lstm_ae",),
                        threshold=Threshold(value=1.0, target_fpr=0.01, n_calibration=100, achieved_fpr=0.01))
    scores = {"lstm_ae": np.array([0.0, 10.0]), "iforest": np.array([np.e - 1, 0.0])}
    # row 0: the stack says 1.0 (iforest), the autoencoder 0; row 1: the stack ~0.18, the autoencoder 10 / 2 = 5
    np.testing.assert_allclose(rule.score(scores), [1.0, 5.0])
    assert EnsembleRule.from_dict(rule.to_dict()) == rule
    assert "alone" not in EnsembleRule.from_dict({**rule.to_dict(), "alone": []}).to_dict()


def test_fitted_stacked_ensemble_drops_a_detector_with_negative_weight() -> None:
    from models.training.ensemble import fit_stacked_ensemble

    rng = np.random.default_rng(0)
    benign = {"a": rng.normal(0, 1, 400), "b": rng.normal(0, 1, 400)}
    attack = {"a": rng.normal(4, 1, 400), "b": rng.normal(-2, 1, 400)}  # b is lower on attacks
    rule = fit_stacked_ensemble(benign, attack, target_fpr=0.05)
    assert rule.weights is not None and rule.weights["b"] == 0.0 and rule.weights["a"] > 0
    assert rule.threshold.achieved_fpr <= 0.05
    assert np.median(rule.score(benign)) == pytest.approx(0.0, abs=1e-9)


def test_engineered_features_by_hand() -> None:
    from models.classifier import ENGINEERED_NAMES, engineered_features

    row = np.zeros((1, N))
    for name, value in {"Rate": 4.0, "IAT": 0.5, "Number": 10.0, "Tot sum": 30.0, "Header_Length": 20.0,
                        "Std": 3.0, "AVG": -2.0, "Max": 7.0, "Min": 1.0}.items():
        row[0, FEATURES.index(name)] = value
    out = engineered_features(row)
    assert out.shape == (1, N + len(ENGINEERED_NAMES)) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :N], row[0])
    frac = (np.log1p(0.5) * 1000) % 1.0
    np.testing.assert_allclose(out[0, N:], [2.0, 40.0, 5.0, 3.0, 2.0, 1.5, 6.0, 0.125, frac], rtol=1e-5)


def test_engineered_features_are_finite_when_a_count_cancels_the_epsilon() -> None:
    from models.classifier import ENGINEERED_NAMES, engineered_features

    row = np.zeros((1, N))
    row[0, FEATURES.index("Number")] = -1e-9   # Number + 1e-9 == 0
    row[0, FEATURES.index("Header_Length")] = 20.0  # 20 / 0 -> +inf
    out = engineered_features(row)              # Tot sum 0 / 0 -> NaN
    assert np.isfinite(out).all()
    extra = dict(zip(ENGINEERED_NAMES, out[0, N:]))
    assert extra["Tot sum/Number"] == 0.0
    assert extra["Header_Length/Number"] == np.finfo(np.float32).max


def test_engineered_features_cap_values_beyond_float32_without_warnings() -> None:
    import warnings

    from models.classifier import engineered_features

    row = np.zeros((1, N))
    row[0, FEATURES.index("Tot sum")] = 1e300   # finite in float64, cleaned as is
    row[0, FEATURES.index("Number")] = -1e-9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = engineered_features(row)
    assert np.isfinite(out).all()
    assert out[0, FEATURES.index("Tot sum")] == np.finfo(np.float32).max
