"""The drift reference (:mod:`models.drift`) of a bundle, from its own benign rows: per feature the
models read, quantile bins of the benign training rows; for the ensemble score, the bins of the
benign validation rows scored by the bundle itself (:func:`udfs.scoring.score_frame`, the stream's
scoring core, so the reference is what the stream would have computed for them).

``iomt-ad train`` writes it with the bundle (:func:`write_drift_reference`); :func:`add_drift_reference`
adds it to a bundle trained before it existed, from the training files its manifest names (checked
by sha256) split as it records, rewriting only the manifest (its sha256 changes: a pinned
``stream.model_trust.manifest_sha256`` or a registered version must follow).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from models.bundle import load_bundle, read_manifest
from models.drift import SECTION, DriftReference
from models.training.split import TRAIN, VALIDATION, SplitConfig, split_frame
from schemas.classes import BENIGN

log = logging.getLogger(__name__)


def model_features(manifest: dict) -> tuple[str, ...]:
    """The features the bundle's models read (all 39 unless it is window-invariant)."""
    return tuple(manifest["preprocessing"].get("model_features") or manifest["features"])


def drift_reference_of_frames(bundle_dir: str | Path, benign_train: pd.DataFrame,
                              benign_validation: pd.DataFrame) -> DriftReference:
    """The reference of the bundle in ``bundle_dir`` from its benign training and validation rows."""
    from udfs.scoring import score_frame

    bundle = load_bundle(bundle_dir)
    features = model_features(bundle.manifest)
    scores = score_frame(benign_validation[list(bundle.features)].astype(np.float64).reset_index(drop=True), bundle)
    return DriftReference.of_rows({name: benign_train[name].to_numpy(dtype=np.float64) for name in features},
                                  scores["ensemble_score"].to_numpy(dtype=np.float64))


def write_drift_reference(bundle_dir: str | Path, benign_train: pd.DataFrame,
                          benign_validation: pd.DataFrame) -> DriftReference:
    """Compute the reference and write it into the bundle's manifest; returns it."""
    from models.training.bundle_writer import _write_manifest

    if benign_train.empty or benign_validation.empty:
        raise ValueError("the drift reference needs benign training and validation rows")
    reference = drift_reference_of_frames(bundle_dir, benign_train, benign_validation)
    manifest = read_manifest(Path(bundle_dir))
    manifest[SECTION] = reference.to_dict()
    _write_manifest(Path(bundle_dir), manifest)
    log.info("bundle %s: drift reference of %d measures (%d benign training rows, %d validation scores) written",
             manifest.get("model_version"), len(reference.measures), len(benign_train), len(benign_validation))
    return reference


def add_drift_reference(bundle_dir: str | Path, data: Sequence[str | Path]) -> DriftReference:
    """Add the drift reference to the (verified) bundle in ``bundle_dir`` from its training files
    under ``data``: the benign rows its split puts in training and in validation."""
    from models.training.reference import ReferenceDataError, bundle_benign_rows

    bundle_dir = Path(bundle_dir)
    manifest, frame = bundle_benign_rows(bundle_dir, data)
    split = split_frame(frame, SplitConfig.from_description(manifest["split"]))
    is_benign = frame["label"].eq(BENIGN)
    train, validation = frame[is_benign & split.eq(TRAIN)], frame[is_benign & split.eq(VALIDATION)]
    if train.empty or validation.empty:
        raise ReferenceDataError("no benign training or validation rows in the data: give the bundle's Benign file")
    return write_drift_reference(bundle_dir, train, validation)
