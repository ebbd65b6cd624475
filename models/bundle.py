"""Save, load and verify a versioned model bundle directory.

Layout of ``models/<version>/``::

    manifest.json      schema version, feature order and hash, preprocessing values, thresholds,
                       ensemble rule, benign reference (models.reference), library versions, training
                       files (sha256), seed, split, metrics, and the sha256 of every model file below
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

The manifest lives beside the files it pins, so whoever can write the directory can rewrite it too
(drop the ONNX section, and every worker unpickles a joblib file: code chosen by the writer). A
:class:`BundleTrust` closes that: ``manifest_sha256`` pins the manifest itself (and through it every
file), from configuration the model directory's writers cannot change, and ``allow_unpickle=False``
refuses to load the joblib (pickle) files at all; the ONNX forests, the LiteRT or Keras autoencoder
(``safe_mode``) and the JSON manifest run no code of the file's choosing. Files are hashed and
loaded from the same bytes, so a file swapped between the check and the load is never used.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
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
from models.reference import BenignReference, reference_of
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
TRAINING_ROWS_FILE: Final = "training_rows.npz"  # which rows the bundle was made from (models.training.training_rows)
FEEDBACK_ROWS_FILE: Final = "feedback_rows.json"  # which analysts' labels it learnt from (models.training.feedback)
# serving forms of the same models, and the training-row fingerprint that evaluation reads
OPTIONAL_FILES: Final[frozenset[str]] = frozenset({AE_LITE_FILE, *ONNX_FILES, TRAINING_ROWS_FILE, FEEDBACK_ROWS_FILE})


AE_RUNTIME_ENV: Final[str] = "IOMT_AD_AE_RUNTIME"


class BundleError(RuntimeError):
    """A bundle directory that cannot be read."""


class BundleMismatchError(BundleError):
    """A bundle that does not match this code (schema, feature order) or whose files were altered."""


class BundlePinError(BundleMismatchError):
    """A manifest whose sha256 is not the pinned one."""


class UnpickleRefusedError(BundleError):
    """Loading would unpickle a joblib file, and the trust does not allow it."""


@dataclass(frozen=True)
class BundleTrust:
    """What a bundle must be before anything in it is loaded. ``manifest_sha256``: the sha256 of its
    ``manifest.json`` (``sha256sum manifest.json``), which pins every model file; ``allow_unpickle``:
    whether scikit-learn's joblib (pickle) files may be loaded when the ONNX forests cannot serve."""

    manifest_sha256: str | None = None
    allow_unpickle: bool = True
    where: str = "the bundle's trust"  # the setting a message names (e.g. stream.model_trust)


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
    reference: BenignReference | None = None  # what explanations compare features with (models.reference)

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
    return read_pinned_manifest(bundle_dir)[0]


def read_pinned_manifest(bundle_dir: Path, trust: BundleTrust | None = None) -> tuple[dict[str, Any], str]:
    """(the manifest, its sha256), both from the same bytes; a manifest that is not the pinned one is
    refused before it is parsed."""
    path = Path(bundle_dir) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{path}: no manifest; train a bundle with `iomt-ad train --out {bundle_dir}`")
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    pin = (trust.manifest_sha256 or "").strip().lower() if trust else ""
    if pin and sha != pin:
        raise BundlePinError(
            f"{path}: sha256 {sha} is not the pinned {pin} ({trust.where}.manifest_sha256): the bundle was changed "
            "or replaced. Restore the pinned bundle; if this one was deployed on purpose, check where it came from "
            "and pin its sha256")
    try:
        return json.loads(data.decode("utf-8")), sha
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(f"{path}: not valid JSON ({error}); retrain the bundle") from error


def _unpickle_needed(manifest: dict[str, Any], compiled: bool) -> str | None:
    """Why loading would unpickle the forests' joblib files, or None when the ONNX forms serve."""
    if not compiled:
        return "scikit-learn scoring was asked for"
    if not manifest.get("compiled"):
        return "its manifest has no compiled (ONNX) forests"
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed"
    return None


def _refuse_unpickle(bundle_dir: Path, reason: str, trust: BundleTrust) -> UnpickleRefusedError:
    return UnpickleRefusedError(
        f"{bundle_dir}: loading would unpickle {IFOREST_FILE} and {CLASSIFIER_FILE} (a pickle runs code written "
        f"into the file) because {reason}, and {trust.where}.allow_unpickle is false. Compile the forests "
        f"(`iomt-ad compile --model {bundle_dir}`) and install onnxruntime; or, only for a bundle directory no "
        f"one untrusted can write, set {trust.where}.allow_unpickle: true")


def check_bundle(bundle_dir: str | Path, trust: BundleTrust | None = None,
                 compiled: bool = True) -> tuple[dict[str, Any], str]:
    """(manifest, its sha256) of a bundle that passes ``trust`` and :func:`verify_manifest`, without
    loading a model (what a driver checks before its workers load the bundle)."""
    bundle_dir = Path(bundle_dir)
    trust = trust or BundleTrust()
    manifest, sha = read_pinned_manifest(bundle_dir, trust)
    verify_manifest(bundle_dir, manifest)
    reason = _unpickle_needed(manifest, compiled)
    if reason and not trust.allow_unpickle:
        raise _refuse_unpickle(bundle_dir, reason, trust)
    return manifest, sha


def _pinned_bytes(bundle_dir: Path, name: str, manifest: dict[str, Any]) -> bytes:
    """A model file's bytes, checked against the manifest's sha256 (the bytes that are then loaded)."""
    data = (bundle_dir / name).read_bytes()
    expected = manifest.get("files", {}).get(name)
    if expected is None or hashlib.sha256(data).hexdigest() != expected:
        raise BundleMismatchError(f"{bundle_dir / name}: changed since the bundle was verified (or not pinned in "
                                  "its manifest); restore the bundle's files")
    return data


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
        n_inputs += 1 if config.sequential else 0  # the window_gap input (models.sequences)
        return LstmAutoencoder.load_lite(bundle_dir / AE_LITE_FILE, config, n_inputs, chunk_size)
    return LstmAutoencoder.load(bundle_dir / AE_FILE, config, chunk_size=chunk_size)


def _load_compiled(bundle_dir: Path, manifest: dict[str, Any]) -> tuple[Any, Any] | None:
    """The ONNX forests (already verified against the manifest), or None (with a warning) when
    onnxruntime is missing: the caller then scores with scikit-learn."""
    from models.compiled import OnnxClassifier, OnnxForest, OnnxIsolationForest, OnnxMissingError

    section = manifest["compiled"]
    try:
        compiled_if = OnnxIsolationForest(OnnxForest(_pinned_bytes(bundle_dir, section["iforest"], manifest)))
        compiled_clf = OnnxClassifier(OnnxForest(_pinned_bytes(bundle_dir, section["classifier"], manifest)))
    except OnnxMissingError as error:
        log.warning("%s; scoring the forests with scikit-learn", error)
        return None
    if [str(c) for c in compiled_clf.classes_] != [str(c) for c in manifest["classifier"]["classes"]]:
        raise BundleMismatchError(f"{bundle_dir}: {section['classifier']} names other classes than "
                                  f"{CLASSIFIER_FILE}; rerun `iomt-ad compile --model {bundle_dir}`")
    return compiled_if, compiled_clf


def _unpickled(bundle_dir: Path, name: str, manifest: dict[str, Any]) -> Any:
    return joblib.load(io.BytesIO(_pinned_bytes(bundle_dir, name, manifest)))


def load_bundle(bundle_dir: str | Path, compiled: bool = True, trust: BundleTrust | None = None) -> Bundle:
    """Load and verify a bundle. With its ONNX forests (the default when it has them), the
    scikit-learn forests are not loaded (their files are verified all the same); ``compiled=False``
    loads and scores with scikit-learn. ``trust`` (:class:`BundleTrust`): the pinned manifest and
    whether joblib files may be unpickled (by default they may, as before)."""
    bundle_dir = Path(bundle_dir)
    trust = trust or BundleTrust()
    manifest, _ = check_bundle(bundle_dir, trust, compiled)
    preprocessor = Preprocessor.from_dict(manifest["preprocessing"])
    ae = load_autoencoder(bundle_dir, manifest)
    forests = _load_compiled(bundle_dir, manifest) if manifest.get("compiled") and compiled else None
    if forests is None and not trust.allow_unpickle:  # onnxruntime present but failed to import
        raise _refuse_unpickle(bundle_dir, "the ONNX forests could not be loaded", trust)
    compiled_if, compiled_clf = forests if forests else (None, None)
    iforest = IForestDetector(model=None if forests else _unpickled(bundle_dir, IFOREST_FILE, manifest),
                              params=manifest["iforest"]["params"],
                              selection=manifest["iforest"].get("selection", []), compiled=compiled_if,
                              tolerance=manifest["iforest"].get("selection_tolerance"))
    classifier = AttackClassifier(model=None if forests else _unpickled(bundle_dir, CLASSIFIER_FILE, manifest),
                                  input=str(manifest["classifier"].get("input", SCALED)), compiled=compiled_clf)
    thresholds = {name: Threshold.from_dict(values) for name, values in manifest["thresholds"].items()}
    log.info("bundle %s loaded from %s (forests: %s)", manifest["model_version"], bundle_dir,
             "onnxruntime" if classifier.compiled is not None else "scikit-learn")
    return Bundle(path=bundle_dir, manifest=manifest, preprocessor=preprocessor, lstm_ae=ae, iforest=iforest,
                  classifier=classifier, ensemble=EnsembleRule.from_dict(manifest["ensemble"]),
                  thresholds=thresholds, reference=reference_of(manifest))
