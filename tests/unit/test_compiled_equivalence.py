"""The ONNX forests (models.compiled) against scikit-learn on real held-out rows of the committed sample
(rows the split put in its test part), with bundle v1's forests compiled in memory.

Leaves match exactly (thresholds rounded down to float32); the sums over trees run in float32 in
onnxruntime and in float64 in scikit-learn, so scores differ by ~1e-7 and a decision can only flip
for a row whose score lies within that distance of a threshold (or of a tie between two classes)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.training.datasets import load_flows_pandas
from models import DEFAULT_BUNDLE_PATH
from models.bundle import Bundle, load_bundle
from models.compiled import OnnxClassifier, OnnxForest, OnnxIsolationForest
from models.training.compile import classifier_to_onnx, float32_floor, iforest_to_onnx, to_bytes
from models.training.split import split_of
from schemas.flow_record import FEATURES
from udfs.scoring import score_frame

BUNDLE = DEFAULT_BUNDLE_PATH
AGREEMENT = 0.999


@pytest.fixture(scope="module")
def bundles() -> tuple[Bundle, Bundle]:
    """(scikit-learn bundle, the same bundle with both forests compiled to ONNX)."""
    sklearn_bundle = load_bundle(BUNDLE, compiled=False)
    fast = load_bundle(BUNDLE, compiled=False)
    fast.iforest.compiled = OnnxIsolationForest(OnnxForest(to_bytes(iforest_to_onnx(fast.iforest.model)), threads=1))
    fast.classifier.compiled = OnnxClassifier(OnnxForest(to_bytes(classifier_to_onnx(fast.classifier.model)), threads=1))
    return sklearn_bundle, fast


@pytest.fixture(scope="module")
def held_out(sample_dir: Path, bundles: tuple[Bundle, Bundle]) -> pd.DataFrame:
    flows = load_flows_pandas([sample_dir])
    seed = bundles[0].seed
    test = [split_of(f, r, seed) == "test" for f, r in zip(flows["source_file"], flows["row_number"])]
    rows = flows.loc[test, list(FEATURES)].reset_index(drop=True)
    assert len(rows) > 1000
    return rows


def test_float32_floor_keeps_every_comparison() -> None:
    rng = np.random.default_rng(0)
    t = rng.normal(size=20000) * 10.0 ** rng.integers(-8, 8, 20000)
    w = float32_floor(t)
    assert w.dtype == np.float32 and (w.astype(np.float64) <= t).all()
    for x in (w, np.nextafter(w, np.float32(np.inf)), np.nextafter(w, np.float32(-np.inf))):
        assert ((x <= w) == (x.astype(np.float64) <= t)).all()


def test_iforest_scores_match(bundles: tuple[Bundle, Bundle], held_out: pd.DataFrame) -> None:
    slow, fast = bundles
    x = slow.preprocessor.transform(held_out)
    model = slow.iforest.model
    expected = model.score_samples(x)
    got = fast.iforest.compiled.score_samples(x)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got - model.offset_, model.decision_function(x), rtol=0, atol=1e-6)
    np.testing.assert_allclose(fast.iforest.score(x), slow.iforest.score(x), rtol=0, atol=1e-6)


def test_classifier_probabilities_match(bundles: tuple[Bundle, Bundle], held_out: pd.DataFrame) -> None:
    slow, fast = bundles
    x = slow.classifier.inputs(slow.preprocessor, held_out)
    expected, got = slow.classifier.model.predict_proba(x), fast.classifier.compiled.predict_proba(x)
    assert list(fast.classifier.compiled.classes_) == list(slow.classifier.model.classes_)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).mean() >= AGREEMENT


def test_score_frame_decisions_agree(bundles: tuple[Bundle, Bundle], held_out: pd.DataFrame) -> None:
    slow, fast = bundles
    expected, got = score_frame(held_out, slow), score_frame(held_out, fast)
    assert list(got.columns) == list(expected.columns)
    for column in ("ae_error", "top_features", "model_version"):
        assert got[column].tolist() == expected[column].tolist()
    for column in ("if_score", "clf_attack_proba", "ensemble_score"):
        np.testing.assert_allclose(got[column], expected[column], rtol=0, atol=1e-5)
    for column in ("is_anomaly", "severity", "predicted_class", "predicted_category"):
        agree = (got[column] == expected[column]).to_numpy()
        assert agree.mean() >= AGREEMENT, column
    # a flipped decision is a score within float32 noise of the threshold, nothing else
    flipped = (got["is_anomaly"] != expected["is_anomaly"]).to_numpy()
    threshold = slow.ensemble.threshold.value
    assert np.all(np.abs(expected["ensemble_score"].to_numpy()[flipped] - threshold) < 1e-5)


def test_non_finite_and_extreme_inputs_score_alike(bundles: tuple[Bundle, Bundle], held_out: pd.DataFrame) -> None:
    """The compiled trees have no missing-value tracks: every input the forests see is finite, so
    rows holding NaN, +-inf, huge values and a zero-cancelling count still score as in scikit-learn."""
    slow, fast = bundles
    rows = held_out.iloc[:64].copy().astype(np.float64)
    rng = np.random.default_rng(7)
    for i in range(len(rows)):
        columns = rng.choice(len(FEATURES), size=3, replace=False)
        rows.iloc[i, columns] = [np.nan, np.inf, -np.inf][i % 3], 1e300 * (-1) ** i, -1e-9
    rows.loc[rows.index[0], ["Number", "Tot sum", "Rate"]] = [-1e-9, 0.0, -1e-9]
    x = slow.classifier.inputs(slow.preprocessor, rows)
    assert np.isfinite(x).all() and np.isfinite(slow.preprocessor.transform(rows)).all()
    expected, got = score_frame(rows, slow), score_frame(rows, fast)
    for column in ("if_score", "clf_attack_proba", "ensemble_score"):
        np.testing.assert_allclose(got[column], expected[column], rtol=0, atol=1e-5)
    assert got["predicted_class"].tolist() == expected["predicted_class"].tolist()


def test_compiled_trees_have_no_missing_value_tracks() -> None:
    import gzip

    import onnx

    for name in ("iforest.onnx.gz", "classifier.onnx.gz"):
        model = onnx.load_from_string(gzip.decompress((BUNDLE / name).read_bytes()))
        attributes = {a.name for a in model.graph.node[0].attribute}
        assert "nodes_missing_value_tracks_true" not in attributes, name


@pytest.mark.parametrize("threads", [1, 2])
def test_onnx_pool_threads_never_spin(threads: int) -> None:
    forest = OnnxForest((BUNDLE / "iforest.onnx.gz").read_bytes(), threads=threads)
    options = forest.session.get_session_options()
    assert options.intra_op_num_threads == threads
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
