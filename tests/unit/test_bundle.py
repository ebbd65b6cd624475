"""Bundle save / load round trip, and refusal of a bundle that does not match."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.bundle import AE_FILE, AE_LITE_FILE, AE_RUNTIME_ENV, CLASSIFIER_FILE, IFOREST_FILE, MANIFEST, BundleError, BundleMismatchError, load_bundle
from models.training.bundle_writer import compile_bundle, save_bundle
from models.compiled import CLASSIFIER_ONNX, IFOREST_ONNX, OnnxClassifier, OnnxIsolationForest
from models.classifier import engineered_features
from models.training.classifier import ClassifierConfig, train_classifier
from models.training.ensemble import fit_stacked_ensemble
from models.training.iforest import IForestGrid, train_iforest
from models.lstm_ae import LstmAeConfig
from models.training.autoencoder import train_lstm_ae
from models.training.preprocessing import fit_preprocessor
from models.training.thresholds import threshold_at_fpr
from schemas.flow_record import FEATURES, SCHEMA_VERSION, feature_schema_hash
from udfs.scoring import score_frame


def synthetic(n: int, attack: bool, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.lognormal(mean=3.0 if attack else 1.0, size=(n, len(FEATURES))), columns=list(FEATURES))
    return data


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    benign, benign_val, attack = synthetic(120, False, 1), synthetic(60, False, 2), synthetic(120, True, 3)
    pre = fit_preprocessor(benign)
    x_b, x_v, x_a = pre.transform(benign), pre.transform(benign_val), pre.transform(attack)
    ae = train_lstm_ae(x_b, LstmAeConfig(units=(8,), latent=4, epochs=2, batch_size=32), chunk_size=64)
    iforest = train_iforest(x_b, x_v, x_a, IForestGrid(n_estimators=(20,), max_samples=(64,), max_features=(1.0,)))
    c_b, c_v, c_a = (engineered_features(pre.clean(d)) for d in (benign, benign_val, attack))
    clf = train_classifier(np.concatenate([c_b, c_a]), np.array(["Benign"] * 120 + ["DDoS-SYN"] * 120, dtype=object),
                           ClassifierConfig(n_estimators=5))
    _, _, proba, logit = clf.predict(c_v)
    val = {"lstm_ae": ae.score(x_v).astype(float), "iforest": iforest.score(x_v), "classifier": proba}
    attack_scores = {"lstm_ae": ae.score(x_a).astype(float), "iforest": iforest.score(x_a),
                     "classifier_logit": clf.predict(c_a)[3]}
    ensemble = fit_stacked_ensemble({"lstm_ae": val["lstm_ae"], "iforest": val["iforest"], "classifier_logit": logit},
                                    attack_scores, 0.05)
    thresholds = {name: threshold_at_fpr(s, 0.05) for name, s in val.items()} | {"ensemble": ensemble.threshold}
    out = tmp_path_factory.mktemp("bundle") / "vtest"
    save_bundle(out, version="vtest", preprocessor=pre, lstm_ae=ae, iforest=iforest, classifier=clf,
                ensemble=ensemble, thresholds=thresholds, extra={"seed": 1, "split": {"seed": 1}})
    return out


def copy_of(bundle_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / bundle_dir.name
    shutil.copytree(bundle_dir, target)
    return target


def edit_manifest(path: Path, **changes: object) -> None:
    manifest = json.loads((path / MANIFEST).read_text())
    manifest.update(changes)
    (path / MANIFEST).write_text(json.dumps(manifest))


def test_manifest_records_what_loading_checks(bundle_dir: Path) -> None:
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["features"] == list(FEATURES)
    assert manifest["feature_schema_hash"] == feature_schema_hash()
    assert set(manifest["files"]) == {AE_FILE, AE_LITE_FILE, IFOREST_FILE, CLASSIFIER_FILE, IFOREST_ONNX,
                                      CLASSIFIER_ONNX}
    assert manifest["compiled"]["iforest"] == IFOREST_ONNX and manifest["compiled"]["classifier"] == CLASSIFIER_ONNX
    assert len(manifest["preprocessing"]["median"]) == 39
    assert {"numpy", "scikit-learn", "tensorflow"} <= set(manifest["library_versions"])
    assert set(manifest["thresholds"]) == {"lstm_ae", "iforest", "classifier", "ensemble"}


def test_round_trip_scores_identically(bundle_dir: Path) -> None:
    loaded = load_bundle(bundle_dir)
    rows = pd.concat([synthetic(5, False, 9), synthetic(5, True, 10)], ignore_index=True)
    first = score_frame(rows, loaded)
    again = score_frame(rows, load_bundle(bundle_dir))
    pd.testing.assert_frame_equal(first, again)
    assert loaded.version == "vtest"
    assert first["ensemble_score"].iloc[5:].min() > first["ensemble_score"].iloc[:5].max()


def test_litert_autoencoder_matches_keras(bundle_dir: Path, monkeypatch) -> None:
    """The serving form (LiteRT) reconstructs like the Keras model it was converted from."""
    rows = pd.concat([synthetic(40, False, 11), synthetic(40, True, 12)], ignore_index=True)
    lite = load_bundle(bundle_dir)
    assert lite.lstm_ae.runtime == "litert"
    monkeypatch.setenv(AE_RUNTIME_ENV, "keras")
    keras = load_bundle(bundle_dir)
    assert keras.lstm_ae.runtime == "keras"
    a, b = score_frame(rows, lite), score_frame(rows, keras)
    np.testing.assert_allclose(a["ae_error"], b["ae_error"], rtol=1e-3, atol=1e-7)
    assert (a["is_anomaly"] == b["is_anomaly"]).all()


@pytest.mark.parametrize("serving_file", [AE_LITE_FILE, IFOREST_ONNX, CLASSIFIER_ONNX])
def test_refuses_altered_serving_file(bundle_dir: Path, tmp_path: Path, serving_file: str) -> None:
    """The serving forms are pinned like the reference files: one altered byte refuses the bundle."""
    target = copy_of(bundle_dir, tmp_path)
    with (target / serving_file).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleMismatchError, match="sha256"):
        load_bundle(target)


def test_committed_bundle_serves_without_tensorflow() -> None:
    """A scoring worker loads the default bundle without importing TensorFlow (memory: ~0.45 GB a
    worker) and its autoencoder agrees with the Keras file on the committed sample."""
    import subprocess
    import sys

    code = ("import sys; from models.bundle import load_bundle; b = load_bundle('models/v3'); "
            "assert b.lstm_ae.runtime == 'litert', b.lstm_ae.runtime; "
            "assert b.classifier.compiled is not None and b.iforest.compiled is not None, 'forests not compiled'; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_refuses_other_schema_version(bundle_dir: Path, tmp_path: Path) -> None:
    target = copy_of(bundle_dir, tmp_path)
    edit_manifest(target, schema_version="ciciomt2024-original-45/1")
    with pytest.raises(BundleMismatchError, match="retrain"):
        load_bundle(target)


def test_refuses_other_feature_order(bundle_dir: Path, tmp_path: Path) -> None:
    target = copy_of(bundle_dir, tmp_path)
    edit_manifest(target, features=list(reversed(FEATURES)))
    with pytest.raises(BundleMismatchError, match="feature order"):
        load_bundle(target)
    edit_manifest(target, features=list(FEATURES), feature_schema_hash="0" * 64)
    with pytest.raises(BundleMismatchError):
        load_bundle(target)


def test_refuses_altered_or_missing_model_file(bundle_dir: Path, tmp_path: Path) -> None:
    target = copy_of(bundle_dir, tmp_path)
    with (target / IFOREST_FILE).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleMismatchError, match="sha256"):
        load_bundle(target)
    (target / IFOREST_FILE).unlink()
    with pytest.raises(BundleMismatchError, match="missing"):
        load_bundle(target)


def test_missing_manifest_is_a_bundle_error(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="iomt-ad train"):
        load_bundle(tmp_path)


def sklearn_only(bundle_dir: Path, tmp_path: Path) -> Path:
    """A copy of the bundle as written before the forests were compiled (no ONNX files)."""
    target = copy_of(bundle_dir, tmp_path)
    manifest = json.loads((target / MANIFEST).read_text())
    for name in (IFOREST_ONNX, CLASSIFIER_ONNX):
        (target / name).unlink()
        del manifest["files"][name]
    del manifest["compiled"]
    (target / MANIFEST).write_text(json.dumps(manifest))
    return target


def test_compiled_forests_score_like_scikit_learn(bundle_dir: Path, tmp_path: Path) -> None:
    compiled = load_bundle(bundle_dir)
    assert isinstance(compiled.iforest.compiled, OnnxIsolationForest)
    assert isinstance(compiled.classifier.compiled, OnnxClassifier)
    fallback = load_bundle(sklearn_only(bundle_dir, tmp_path))
    assert fallback.iforest.compiled is None and fallback.classifier.compiled is None
    rows = pd.concat([synthetic(50, False, 11), synthetic(50, True, 12)], ignore_index=True)
    fast, slow = score_frame(rows, compiled), score_frame(rows, fallback)
    for column in ("if_score", "clf_attack_proba", "ensemble_score"):
        np.testing.assert_allclose(fast[column], slow[column], rtol=0, atol=1e-5)
    for column in ("ae_error", "predicted_class", "predicted_category", "top_features", "model_version"):
        assert fast[column].tolist() == slow[column].tolist()


def test_compile_adds_pinned_onnx_files_to_an_existing_bundle(bundle_dir: Path, tmp_path: Path) -> None:
    target = sklearn_only(bundle_dir, tmp_path)
    before = json.loads((target / MANIFEST).read_text())
    compile_bundle(target)
    after = json.loads((target / MANIFEST).read_text())
    assert {k: v for k, v in after.items() if k not in ("files", "compiled")} == \
        {k: v for k, v in before.items() if k not in ("files", "compiled")}
    assert {k: after["files"][k] for k in before["files"]} == before["files"]
    original = json.loads((bundle_dir / MANIFEST).read_text())["files"]
    for name in (IFOREST_ONNX, CLASSIFIER_ONNX):  # reproducible bytes: the same hash as train wrote
        assert after["files"][name] == original[name]
    assert load_bundle(target).classifier.compiled is not None


def test_compiled_section_must_be_pinned(bundle_dir: Path, tmp_path: Path) -> None:
    target = copy_of(bundle_dir, tmp_path)
    manifest = json.loads((target / MANIFEST).read_text())
    del manifest["files"][IFOREST_ONNX]
    (target / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleMismatchError, match="not pinned"):
        load_bundle(target)
