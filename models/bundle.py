"""Save, load and verify a versioned model bundle directory.

Layout of ``models/<version>/``::

    manifest.json      schema version, feature order and hash, preprocessing values, thresholds,
                       ensemble rule, library versions, training files (sha256), seed, split, metrics,
                       and the sha256 of every model file below
    lstm_ae.keras      the Keras LSTM autoencoder
    iforest.joblib     the scikit-learn Isolation Forest
    classifier.joblib  the scikit-learn attack classifier
    iforest.onnx.gz, classifier.onnx.gz
                       optional: the two forests compiled to ONNX (:mod:`models.compiled`), written by
                       ``iomt-ad train`` and added to an existing bundle by ``iomt-ad compile``
                       (:func:`compile_bundle`); scoring uses them through onnxruntime when they are
                       there, else scikit-learn

:func:`load_bundle` refuses (``BundleMismatchError``) a bundle whose schema version or feature hash
differs from this code's, or whose model files do not match the sha256 recorded in the manifest.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import joblib

from models.classifier import SCALED, AttackClassifier
from models.compiled import ONNX_FILES
from models.ensemble import EnsembleRule
from models.iforest import IForestDetector
from models.lstm_ae import LstmAutoencoder, config_from_dict
from models.preprocess import Preprocessor
from models.thresholds import Threshold
from schemas.flow_record import FEATURES, SCHEMA_VERSION, feature_schema_hash

log = logging.getLogger(__name__)

MANIFEST: Final[str] = "manifest.json"
AE_FILE: Final[str] = "lstm_ae.keras"
AE_LITE_FILE: Final[str] = "lstm_ae.tflite"   # the same model for LiteRT (serving without TensorFlow)
IFOREST_FILE: Final[str] = "iforest.joblib"
CLASSIFIER_FILE: Final[str] = "classifier.joblib"
BUNDLE_FORMAT: Final[int] = 1
REQUIRED_FILES: Final[frozenset[str]] = frozenset({AE_FILE, IFOREST_FILE, CLASSIFIER_FILE})
OPTIONAL_FILES: Final[frozenset[str]] = frozenset({AE_LITE_FILE, *ONNX_FILES})  # serving forms of the same models


AE_RUNTIME_ENV: Final[str] = "IOMT_AD_AE_RUNTIME"


class BundleError(RuntimeError):
    """A bundle directory that cannot be read."""


class BundleMismatchError(BundleError):
    """A bundle that does not match this code (schema, feature order) or whose files were altered."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Bundle:
    """Everything scoring needs, loaded once per worker (see :mod:`udfs.model_cache`)."""

    path: Path
    manifest: dict[str, Any]
    preprocessor: Preprocessor
    lstm_ae: LstmAutoencoder
    iforest: IForestDetector
    classifier: AttackClassifier
    ensemble: EnsembleRule
    thresholds: dict[str, Threshold]

    @property
    def version(self) -> str:
        return str(self.manifest["model_version"])

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.manifest["features"])

    @property
    def seed(self) -> int:
        return int(self.manifest["split"]["seed"])

    @property
    def sha256(self) -> str:
        """A digest of the manifest, which itself pins every model file's sha256."""
        return sha256_of(self.path / MANIFEST)


def read_manifest(bundle_dir: Path) -> dict[str, Any]:
    path = Path(bundle_dir) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{path}: no manifest; train a bundle with `iomt-ad train --out {bundle_dir}`")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BundleError(f"{path}: not valid JSON ({error}); retrain the bundle") from error


def verify_manifest(bundle_dir: Path, manifest: dict[str, Any]) -> None:
    """Raise :class:`BundleMismatchError` unless schema, feature order and file hashes all match."""
    bundle_dir = Path(bundle_dir)
    retrain = f"retrain it with `iomt-ad train --out {bundle_dir}` or use a bundle made for this code"
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise BundleMismatchError(
            f"{bundle_dir}: bundle schema {manifest.get('schema_version')!r} != this code's {SCHEMA_VERSION!r}; {retrain}")
    if tuple(manifest.get("features", ())) != FEATURES or manifest.get("feature_schema_hash") != feature_schema_hash():
        raise BundleMismatchError(
            f"{bundle_dir}: bundle feature order/hash differs from schemas.flow_record.FEATURES; {retrain}")
    for name, expected in manifest.get("files", {}).items():
        path = bundle_dir / name
        if not path.is_file():
            raise BundleMismatchError(f"{path}: model file missing; restore the bundle directory or {retrain}")
        actual = sha256_of(path)
        if actual != expected:
            raise BundleMismatchError(
                f"{path}: sha256 {actual[:12]}... != manifest's {expected[:12]}...: the file was altered or "
                f"belongs to another bundle; restore the original files or {retrain}")
    pinned = set(manifest.get("files", {}))
    if not REQUIRED_FILES <= pinned or not pinned <= REQUIRED_FILES | OPTIONAL_FILES:
        raise BundleMismatchError(f"{bundle_dir}: manifest does not pin all model files (or pins unknown "
                                  f"ones); {retrain}")
    compiled = manifest.get("compiled") or {}
    if compiled and not {compiled.get("iforest"), compiled.get("classifier")} <= pinned:
        raise BundleMismatchError(f"{bundle_dir}: the compiled forests are not pinned in the manifest's files; "
                                  f"rerun `iomt-ad compile --model {bundle_dir}` or {retrain}")


def load_autoencoder(bundle_dir: Path, manifest: dict[str, Any]) -> LstmAutoencoder:
    """The LiteRT form when the bundle has one (no TensorFlow import), else the Keras model;
    ``IOMT_AD_AE_RUNTIME=keras`` forces Keras."""
    config = config_from_dict(manifest["lstm_ae"]["config"])
    chunk_size = int(manifest["lstm_ae"].get("chunk_size", 4096))
    if AE_LITE_FILE in manifest["files"] and os.environ.get(AE_RUNTIME_ENV, "").lower() != "keras":
        n_inputs = len(manifest["preprocessing"].get("model_features") or manifest["features"])
        return LstmAutoencoder.load_lite(bundle_dir / AE_LITE_FILE, config, n_inputs, chunk_size)
    return LstmAutoencoder.load(bundle_dir / AE_FILE, config, chunk_size=chunk_size)


def _load_compiled(bundle_dir: Path, manifest: dict[str, Any]) -> tuple[Any, Any] | None:
    """The ONNX forests (already verified against the manifest), or None (with a warning) when
    onnxruntime is missing: the caller then scores with scikit-learn."""
    from models.compiled import OnnxClassifier, OnnxForest, OnnxIsolationForest, OnnxMissingError

    section = manifest["compiled"]
    try:
        compiled_if = OnnxIsolationForest(OnnxForest((bundle_dir / section["iforest"]).read_bytes()))
        compiled_clf = OnnxClassifier(OnnxForest((bundle_dir / section["classifier"]).read_bytes()))
    except OnnxMissingError as error:
        log.warning("%s; scoring the forests with scikit-learn", error)
        return None
    if [str(c) for c in compiled_clf.classes_] != [str(c) for c in manifest["classifier"]["classes"]]:
        raise BundleMismatchError(f"{bundle_dir}: {section['classifier']} names other classes than "
                                  f"{CLASSIFIER_FILE}; rerun `iomt-ad compile --model {bundle_dir}`")
    return compiled_if, compiled_clf


def load_bundle(bundle_dir: str | Path, compiled: bool = True) -> Bundle:
    """Load and verify a bundle. With its ONNX forests (the default when it has them), the
    scikit-learn forests are not loaded (their files are verified all the same); ``compiled=False``
    loads and scores with scikit-learn."""
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    verify_manifest(bundle_dir, manifest)
    preprocessor = Preprocessor.from_dict(manifest["preprocessing"])
    ae = load_autoencoder(bundle_dir, manifest)
    forests = _load_compiled(bundle_dir, manifest) if manifest.get("compiled") and compiled else None
    compiled_if, compiled_clf = forests if forests else (None, None)
    iforest = IForestDetector(model=None if forests else joblib.load(bundle_dir / IFOREST_FILE),
                              params=manifest["iforest"]["params"],
                              selection=manifest["iforest"].get("selection", []), compiled=compiled_if,
                              tolerance=manifest["iforest"].get("selection_tolerance"))
    classifier = AttackClassifier(model=None if forests else joblib.load(bundle_dir / CLASSIFIER_FILE),
                                  input=str(manifest["classifier"].get("input", SCALED)), compiled=compiled_clf)
    thresholds = {name: Threshold.from_dict(values) for name, values in manifest["thresholds"].items()}
    log.info("bundle %s loaded from %s (forests: %s)", manifest["model_version"], bundle_dir,
             "onnxruntime" if classifier.compiled is not None else "scikit-learn")
    return Bundle(path=bundle_dir, manifest=manifest, preprocessor=preprocessor, lstm_ae=ae, iforest=iforest,
                  classifier=classifier, ensemble=EnsembleRule.from_dict(manifest["ensemble"]),
                  thresholds=thresholds)
