"""Which rows a bundle was made from: for every row of its training files, the file, the row number and
a 64-bit hash of the row's 39 features, kept in the bundle as ``training_rows.npz`` (pinned in the
manifest like every other file).

``iomt-ad evaluate`` reads it to tell the bundle's own rows (whose split says whether the bundle
learnt from them) from new rows (evaluated whatever their file is called): a part of an official
file, such as the committed sample, keeps its rows' numbers and contents and is recognised row by
row; a user's own file named like an official one is not.
"""
from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from models.bundle import TRAINING_ROWS_FILE, read_manifest, sha256_of, verify_manifest
from schemas.flow_record import FEATURES

log = logging.getLogger(__name__)

class TrainingRowsError(ValueError):
    """The data given are not the bundle's training files."""


def vector_hashes(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of each row's 39 feature values (NaN and inf hash like any value)."""
    return pd.util.hash_pandas_object(frame.loc[:, list(FEATURES)], index=False).to_numpy(np.uint64)


def fingerprint_bytes(frame: pd.DataFrame) -> bytes:
    """The ``training_rows.npz`` of the rows in ``frame`` (``source_file``, ``row_number`` and the features)."""
    names, index = np.unique(frame["source_file"].to_numpy(dtype=str), return_inverse=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, names=names, file_index=index.astype(np.uint16),
                        row_number=frame["row_number"].to_numpy(np.uint32), vector_hash=vector_hashes(frame))
    return buffer.getvalue()


class TrainingRows:
    """The fingerprint read back: whether given rows are the bundle's own rows."""

    def __init__(self, data: bytes) -> None:
        arrays = np.load(io.BytesIO(data))
        names = [str(n) for n in arrays["names"]]
        self._by_file: dict[str, np.ndarray] = {}
        for i, name in enumerate(names):
            mine = arrays["file_index"] == i
            rows = arrays["row_number"][mine].astype(np.int64)
            dense = np.zeros(int(rows.max()) + 1 if len(rows) else 1, np.uint64)
            known = np.zeros(len(dense), bool)
            dense[rows] = arrays["vector_hash"][mine]
            known[rows] = True
            self._by_file[name] = np.stack([dense, known.astype(np.uint64)])

    def known(self, frame: pd.DataFrame) -> pd.Series:
        """Per row of ``frame``: it is a row of a training file (same file name, row number and features)."""
        result = pd.Series(False, index=frame.index)
        hashes = vector_hashes(frame)
        for name, rows in frame.groupby("source_file").groups.items():
            table = self._by_file.get(str(name))
            if table is None:
                continue
            positions = frame.index.get_indexer(rows)
            numbers = frame["row_number"].to_numpy(np.int64)[positions]
            inside = numbers < table.shape[1]
            same = np.zeros(len(positions), bool)
            same[inside] = (table[1, numbers[inside]] == 1) & (table[0, numbers[inside]] == hashes[positions][inside])
            result.iloc[positions] = same
        return result


def read_training_rows(bundle_dir: Path, manifest: dict) -> TrainingRows | None:
    """The bundle's fingerprint, checked against its manifest's sha256, or None (a bundle without one)."""
    import hashlib

    digest = manifest.get("files", {}).get(TRAINING_ROWS_FILE)
    if digest is None:
        return None
    data = (Path(bundle_dir) / TRAINING_ROWS_FILE).read_bytes()
    if hashlib.sha256(data).hexdigest() != digest:
        raise TrainingRowsError(f"{bundle_dir}/{TRAINING_ROWS_FILE} does not match the sha256 its manifest pins")
    return TrainingRows(data)


def add_training_rows(bundle_dir: Path, data: Sequence[str | Path]) -> int:
    """Write the fingerprint of an existing bundle from its training files (every one must be given,
    unchanged: the manifest's sha256 decide) and pin it in the manifest; returns the rows."""
    from models.training.datasets import list_flow_csvs, load_flows_pandas

    manifest = read_manifest(bundle_dir)
    verify_manifest(bundle_dir, manifest)
    wanted = {f["sha256"]: f["name"] for f in manifest.get("training_files", [])}
    if not wanted:
        raise TrainingRowsError(f"{bundle_dir}: the manifest lists no training files")
    given = {sha256_of(path): path for path in list_flow_csvs(data)}
    missing = sorted(name for digest, name in wanted.items() if digest not in given)
    if missing:
        raise TrainingRowsError(f"the bundle's training files are not all given unchanged: missing {missing}")
    frame = load_flows_pandas([given[digest] for digest in wanted])
    pin_training_rows(bundle_dir, frame)
    return len(frame)


def pin_training_rows(bundle_dir: Path, frame: pd.DataFrame) -> None:
    """Write the fingerprint of ``frame`` (every row of the bundle's training files) into the bundle
    and pin it in its manifest."""
    import hashlib

    from models.training.bundle_writer import _write_manifest

    payload = fingerprint_bytes(frame)
    (Path(bundle_dir) / TRAINING_ROWS_FILE).write_bytes(payload)
    manifest = read_manifest(bundle_dir)
    manifest["files"] = {**manifest["files"], TRAINING_ROWS_FILE: hashlib.sha256(payload).hexdigest()}
    _write_manifest(bundle_dir, manifest)
    log.info("%s: %d training rows recorded in %s (%d bytes)", bundle_dir, len(frame), TRAINING_ROWS_FILE,
             len(payload))
