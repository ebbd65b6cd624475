"""Writing a bundle: the model files, their serving forms and the manifest that pins them (read by
``models.bundle``)."""
from __future__ import annotations

import json
import logging
import platform
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from models.bundle import (AE_FILE, AE_LITE_FILE, BUNDLE_FORMAT, CLASSIFIER_FILE, IFOREST_FILE, MANIFEST, BundleError,
                           read_manifest, sha256_of, verify_manifest)
from models.classifier import AttackClassifier
from models.compiled import CLASSIFIER_ONNX, IFOREST_ONNX, ONNX_FILES
from models.ensemble import EnsembleRule
from models.iforest import IForestDetector
from models.lstm_ae import LstmAutoencoder, config_from_dict
from models.preprocess import Preprocessor
from models.thresholds import Threshold
from models.training.autoencoder import to_tflite
from schemas.flow_record import SCHEMA_VERSION, feature_schema_hash

log = logging.getLogger(__name__)


def library_versions() -> dict[str, str]:
    import pandas
    import sklearn
    import tensorflow as tf

    return {"python": platform.python_version(), "numpy": np.__version__, "pandas": pandas.__version__,
            "scikit-learn": sklearn.__version__, "tensorflow": tf.__version__, "keras": tf.keras.__version__,
            "joblib": joblib.__version__, "ai-edge-litert": package_version("ai-edge-litert")}



def onnx_versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}



def _write_compiled(out_dir: Path, iforest_model: Any, classifier_model: Any) -> dict[str, Any]:
    """Compile both forests to ONNX files in ``out_dir``; returns the manifest's ``compiled`` section
    (empty when a forest cannot be compiled: that bundle scores with scikit-learn only)."""
    from models.compiled import OnnxMissingError
    from models.training.compile import CompileError, classifier_to_onnx, iforest_to_onnx, to_bytes

    try:
        models = {IFOREST_ONNX: iforest_to_onnx(iforest_model), CLASSIFIER_ONNX: classifier_to_onnx(classifier_model)}
    except (CompileError, OnnxMissingError) as error:
        log.warning("forests not compiled to ONNX (%s); the bundle scores with scikit-learn", error)
        return {}
    sizes = {}
    for name, model in models.items():
        data = to_bytes(model)
        (out_dir / name).write_bytes(data)
        sizes[name] = {"bytes": len(data), "uncompressed_bytes": model.ByteSize()}
        log.info("compiled %s: %.1f MB (%.1f MB uncompressed)", name, len(data) / 1e6, model.ByteSize() / 1e6)
    return {"format": "onnx (gzip)", "iforest": IFOREST_ONNX, "classifier": CLASSIFIER_ONNX, "sizes": sizes,
            "library_versions": onnx_versions()}



def save_bundle(out_dir: Path, *, version: str, preprocessor: Preprocessor, lstm_ae: LstmAutoencoder,
                iforest: IForestDetector, classifier: AttackClassifier, ensemble: EnsembleRule,
                thresholds: dict[str, Threshold], extra: dict[str, Any], compile_forests: bool = True) -> Path:
    """Write the model files (with ``compile_forests``, also the forests compiled to ONNX), then the
    manifest that pins their sha256. Returns the manifest path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lstm_ae.save(out_dir / AE_FILE)
    (out_dir / AE_LITE_FILE).write_bytes(to_tflite(lstm_ae.model))
    joblib.dump(iforest.model, out_dir / IFOREST_FILE, compress=3)
    joblib.dump(classifier.model, out_dir / CLASSIFIER_FILE, compress=3)
    compiled = _write_compiled(out_dir, iforest.model, classifier.model) if compile_forests else {}
    files = [AE_FILE, AE_LITE_FILE, IFOREST_FILE, CLASSIFIER_FILE] + ([IFOREST_ONNX, CLASSIFIER_ONNX] if compiled else [])
    manifest: dict[str, Any] = {
        "bundle_format": BUNDLE_FORMAT,
        "model_version": version,
        "schema_version": SCHEMA_VERSION,
        "features": list(preprocessor.features),
        "feature_schema_hash": feature_schema_hash(tuple(preprocessor.features)),
        "preprocessing": preprocessor.to_dict(),
        "lstm_ae": {"file": AE_FILE, "lite_file": AE_LITE_FILE, "config": lstm_ae.config.to_dict(),
                    "chunk_size": lstm_ae.chunk_size},
        "iforest": {"file": IFOREST_FILE, "params": iforest.params, "selection": iforest.selection,
                    "selection_tolerance": iforest.tolerance},
        "classifier": {"file": CLASSIFIER_FILE, "classes": classifier.classes, "input": classifier.input},
        "thresholds": {name: t.to_dict() for name, t in thresholds.items()},
        "ensemble": ensemble.to_dict(),
        "library_versions": library_versions(),
        "files": {name: sha256_of(out_dir / name) for name in files},
        **({"compiled": compiled} if compiled else {}),
        **extra,
    }
    path = _write_manifest(out_dir, manifest)
    log.info("bundle %s written to %s", version, out_dir)
    return path



def _write_manifest(bundle_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write the manifest through a temporary file and a rename, so a reader never sees half of it."""
    path = Path(bundle_dir) / MANIFEST
    tmp = path.with_name(MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path



def compile_bundle(bundle_dir: str | Path) -> dict[str, Any]:
    """Add the serving forms to an existing (verified) bundle and pin them in its manifest: the
    autoencoder for LiteRT (when missing) and the forests compiled to ONNX (``files`` and the
    ``compiled`` section); every other manifest value stays as it was. Compiling a compiled bundle
    rewrites the same forest bytes. Returns the ``compiled`` section."""
    bundle_dir = Path(bundle_dir)
    if AE_LITE_FILE not in read_manifest(bundle_dir).get("files", {}):
        add_lite_autoencoder(bundle_dir)
    manifest = read_manifest(bundle_dir)
    verify_manifest(bundle_dir, manifest)
    compiled = _write_compiled(bundle_dir, joblib.load(bundle_dir / IFOREST_FILE),
                               joblib.load(bundle_dir / CLASSIFIER_FILE))
    if not compiled:
        raise BundleError(f"{bundle_dir}: its forests cannot be compiled to ONNX (see the log); it keeps "
                          "scoring with scikit-learn")
    files = {name: digest for name, digest in manifest["files"].items() if name not in ONNX_FILES}
    files.update({name: sha256_of(bundle_dir / name) for name in ONNX_FILES})
    manifest["files"] = files
    manifest["compiled"] = compiled
    _write_manifest(bundle_dir, manifest)
    log.info("bundle %s: compiled forests added to %s", manifest.get("model_version"), bundle_dir)
    return compiled



def add_lite_autoencoder(bundle_dir: str | Path) -> Path:
    """Convert an existing bundle's Keras autoencoder to LiteRT and pin the file in the manifest
    (bundles trained before the LiteRT form existed). The Keras file stays the reference."""
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    verify_manifest(bundle_dir, manifest)
    config = config_from_dict(manifest["lstm_ae"]["config"])
    keras_ae = LstmAutoencoder.load(bundle_dir / AE_FILE, config)
    (bundle_dir / AE_LITE_FILE).write_bytes(to_tflite(keras_ae.model))
    manifest["lstm_ae"]["lite_file"] = AE_LITE_FILE
    manifest["files"][AE_LITE_FILE] = sha256_of(bundle_dir / AE_LITE_FILE)
    manifest.setdefault("library_versions", {})["ai-edge-litert"] = package_version("ai-edge-litert")
    _write_manifest(bundle_dir, manifest)
    log.info("%s: LiteRT autoencoder added", bundle_dir)
    return bundle_dir / AE_LITE_FILE
