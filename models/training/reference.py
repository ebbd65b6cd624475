"""The benign reference (:mod:`models.reference`) from a bundle's own benign training rows: the
files named in its manifest (each checked against the sha256 recorded there), split with the seed
and fractions the manifest records, and only the rows that split puts in benign ``train``: never a
validation or test row.

``iomt-ad train`` writes the reference with the bundle; :func:`add_reference` adds it to a bundle
trained before it existed, rewriting only the manifest (every model file, and so every score, stays
as it was; the manifest's own sha256 changes: a pinned ``stream.model_trust.manifest_sha256`` must be
updated).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from models.bundle import read_manifest, sha256_of, verify_manifest
from models.reference import SECTION, BenignReference
from models.training.datasets import list_flow_csvs, load_flows_pandas
from models.training.split import TRAIN, SplitConfig, split_frame
from schemas.classes import BENIGN, label_of_file

log = logging.getLogger(__name__)


class ReferenceDataError(ValueError):
    """Data that is not the bundle's training data (missing files, other bytes, no benign train rows)."""


def benign_train_reference(frame: pd.DataFrame, features: Sequence[str], split: SplitConfig) -> BenignReference:
    """The reference of ``frame``'s benign training rows (``frame`` as :func:`load_flows_pandas` reads it)."""
    rows = frame[frame["label"].eq(BENIGN) & split_frame(frame, split).eq(TRAIN)]
    if rows.empty:
        raise ReferenceDataError("no benign training rows in the data: give the bundle's Benign file")
    return BenignReference.of_rows(rows[list(features)].to_numpy(dtype="float64"), tuple(features))


def _training_files(data: Sequence[str | Path], manifest: dict) -> list[Path]:
    """The data files the bundle was trained on, each with the sha256 its manifest records."""
    recorded = {entry["name"]: entry["sha256"] for entry in manifest.get("training_files", [])}
    if not recorded:
        raise ReferenceDataError("the bundle's manifest names no training files: retrain it with `iomt-ad train`")
    found = {path.name: path for path in list_flow_csvs(data)}
    missing = sorted(set(recorded) - set(found))
    if missing:
        raise ReferenceDataError(f"training files not found under {', '.join(map(str, data))}: {missing}")
    changed = [name for name, digest in recorded.items() if sha256_of(found[name]) != digest]
    if changed:
        raise ReferenceDataError(f"these files differ from the ones the bundle was trained on (sha256): {changed}")
    return [found[name] for name in recorded]


def bundle_benign_rows(bundle_dir: str | Path, data: Sequence[str | Path]) -> tuple[dict, pd.DataFrame]:
    """The (verified) manifest of the bundle in ``bundle_dir`` and the rows of its benign training
    files found under ``data`` (all its training files when none is benign): what a reference added
    to an existing bundle is computed from."""
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    verify_manifest(bundle_dir, manifest)
    files = _training_files(data, manifest)
    benign = [path for path in files if label_of_file(path).cls == BENIGN]
    return manifest, load_flows_pandas(benign or files)


def add_reference(bundle_dir: str | Path, data: Sequence[str | Path]) -> BenignReference:
    """Compute the benign reference of the (verified) bundle in ``bundle_dir`` from its training files
    under ``data`` and write it into its manifest; returns it."""
    from models.training.bundle_writer import _write_manifest

    bundle_dir = Path(bundle_dir)
    manifest, frame = bundle_benign_rows(bundle_dir, data)
    reference = benign_train_reference(frame, manifest["features"], SplitConfig.from_description(manifest["split"]))
    manifest[SECTION] = reference.to_dict()
    _write_manifest(bundle_dir, manifest)
    log.info("bundle %s: benign reference of %d training rows added to %s", manifest.get("model_version"),
             reference.rows, bundle_dir)
    return reference
