"""Analysts' labels in training and evaluation (``iomt-ad train --feedback``, ``iomt-ad evaluate
--feedback``). The labelled records come from the ``feedback`` and ``alerts`` tables
(``jobs.feedback.store.FeedbackBook.labelled_records``: the 39 features, ``record_id``,
``source_id``, ``label`` and ``is_attack``); nothing here reads a table.

Where each labelled record goes, by a seeded hash of its ``record_id`` (the split's seed and
fractions, so a record keeps its part when the same feedback is read again):

- a false positive (label ``Benign``): ``benign_train`` (the detectors learn it as normal traffic,
  and the benign reference of explanations includes it), ``benign_validation`` (every threshold and
  normaliser is calibrated with it) or ``benign_test`` (held out);
- a true positive of a known class: ``attack_train`` (classifier, ensemble weights, Isolation Forest
  selection) or ``attack_test`` (held out);
- a true positive of no known class (the model said Benign, the analyst gave no class):
  ``attack_unclassified``, evaluated only;
- a record that is a row of the training files already (its ``source_id`` is ``<file>:<row>`` of a
  replayed training file, with the same features): ``in_training_data``, not added twice (its file's
  label and split stand).

The bundle keeps which record went where (``feedback_rows.json``, pinned in its manifest) and its
manifest's ``feedback`` section counts them; evaluation reads both, so a record the bundle learnt
from is never evaluated as new.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from models.bundle import FEEDBACK_ROWS_FILE, Bundle, read_manifest
from models.training.split import SplitConfig
from schemas.classes import BENIGN, CATEGORY_OF_CLASS
from schemas.flow_record import FEATURES

log = logging.getLogger(__name__)

SECTION: Final[str] = "feedback"
BENIGN_TRAIN, BENIGN_VALIDATION, BENIGN_TEST = "benign_train", "benign_validation", "benign_test"
ATTACK_TRAIN, ATTACK_TEST, ATTACK_UNCLASSIFIED = "attack_train", "attack_test", "attack_unclassified"
IN_TRAINING_DATA: Final[str] = "in_training_data"
PARTS: Final[tuple[str, ...]] = (BENIGN_TRAIN, BENIGN_VALIDATION, BENIGN_TEST, ATTACK_TRAIN, ATTACK_TEST,
                                 ATTACK_UNCLASSIFIED, IN_TRAINING_DATA)
LEARNT: Final[frozenset[str]] = frozenset({BENIGN_TRAIN, BENIGN_VALIDATION, ATTACK_TRAIN})
RULE: Final[str] = ("bucket = int(sha256(f'{seed}\\x1ffeedback\\x1f{record_id}')[:16], 16) / 2**64; false positives: "
                    "bucket < benign_train -> benign_train, < benign_train + benign_validation -> benign_validation, "
                    "else benign_test; true positives of a known class: bucket < attack_train -> attack_train, else "
                    "attack_test; of no known class: attack_unclassified; rows of the training files: "
                    "in_training_data (not added)")


class FeedbackDataError(ValueError):
    """Labelled records that cannot be used (no features, unknown labels)."""


@dataclass(frozen=True)
class FeedbackSet:
    """Labelled records and where they were read (recorded in the manifest)."""

    records: pd.DataFrame
    source: dict[str, Any] = field(default_factory=dict)


def buckets(record_ids: Sequence[str], seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per record, fixed by its id and the seed."""
    return np.array([int(hashlib.sha256(f"{int(seed)}\x1ffeedback\x1f{rid}".encode()).hexdigest()[:16], 16) / 2.0**64
                     for rid in record_ids], dtype=np.float64)


def dataset_rows(records: pd.DataFrame) -> pd.DataFrame:
    """The records with ``source_file`` / ``row_number`` from a replayed file's ``source_id``
    (``<file>.csv:<row>``; others get no file and row 0), and their features."""
    parts = records["source_id"].fillna("").astype(str).str.rsplit(":", n=1, expand=True)
    if parts.shape[1] < 2:
        parts[1] = None
    is_row = parts[0].str.endswith(".csv") & parts[1].fillna("").str.fullmatch(r"\d+")
    return pd.DataFrame({"source_file": parts[0].where(is_row, ""),
                         "row_number": pd.to_numeric(parts[1].where(is_row, "0")).astype(np.int64),
                         **{f: records[f].to_numpy() for f in FEATURES}}, index=records.index)


def in_frame(records: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """Per record: it is a row of ``frame`` (a training frame: same file, row number and features)."""
    from models.training.training_rows import vector_hashes

    if records.empty:
        return np.zeros(0, bool)
    rows = dataset_rows(records)
    known = pd.Series(vector_hashes(frame), index=pd.MultiIndex.from_arrays([frame["source_file"], frame["row_number"]]))
    known = known[~known.index.duplicated()]
    keys = pd.MultiIndex.from_arrays([rows["source_file"], rows["row_number"]])
    found = known.reindex(keys).to_numpy()
    return np.array([f == h for f, h in zip(found, vector_hashes(rows))], dtype=bool)


def clean(records: pd.DataFrame) -> pd.DataFrame:
    """The records with float features and one row per record_id; refuses unknown labels."""
    records = records.drop_duplicates("record_id", keep="last").reset_index(drop=True)
    unknown = sorted(set(records["label"].dropna()) - set(CATEGORY_OF_CLASS))
    if unknown:
        raise FeedbackDataError(f"labelled records with unknown classes {unknown}")
    features = records[list(FEATURES)].apply(pd.to_numeric, errors="coerce").astype(np.float64)
    return pd.concat([records.drop(columns=list(FEATURES)), features], axis=1)


def assign_parts(records: pd.DataFrame, split: SplitConfig, in_training: np.ndarray | None = None) -> np.ndarray:
    """The part of every labelled record (see the module doc)."""
    bucket = buckets(records["record_id"].astype(str).tolist(), split.seed)
    benign = records["label"].eq(BENIGN).to_numpy()
    known_attack = records["label"].notna().to_numpy() & ~benign
    parts = np.where(benign, np.where(bucket < split.benign_train, BENIGN_TRAIN,
                                      np.where(bucket < split.benign_train + split.benign_validation,
                                               BENIGN_VALIDATION, BENIGN_TEST)),
                     np.where(known_attack, np.where(bucket < split.attack_train, ATTACK_TRAIN, ATTACK_TEST),
                              ATTACK_UNCLASSIFIED)).astype(object)
    if in_training is not None:
        parts[np.asarray(in_training, bool)] = IN_TRAINING_DATA
    return parts


def training_parts(records: pd.DataFrame, parts: np.ndarray) -> dict[str, pd.DataFrame]:
    """The rows to add to the training frame's ``benign_train``, ``benign_validation`` and
    ``attack_train`` (features, ``label``, ``category``, ``source_file`` 'feedback', ``record_id``)."""
    out = {}
    for name in LEARNT:
        rows = records.loc[parts == name, ["record_id", "label", *FEATURES]].copy()
        rows["category"] = rows["label"].map(CATEGORY_OF_CLASS)
        rows["source_file"] = "feedback"
        rows["row_number"] = 0
        out[name] = rows
    return out


def describe(feedback: FeedbackSet, records: pd.DataFrame, parts: np.ndarray, split: SplitConfig) -> dict[str, Any]:
    """The manifest's ``feedback`` section: where the labels came from and how many went where."""
    counts = {name: int((parts == name).sum()) for name in PARTS}
    by_label = records.assign(part=parts).groupby([records["label"].fillna("(attack, class unknown)"), "part"]).size()
    labels: dict[str, dict[str, int]] = {}
    for (label, part), n in by_label.items():
        labels.setdefault(str(label), {})[str(part)] = int(n)
    return {"source": feedback.source, "records": int(len(records)), "parts": counts, "labels": labels,
            "verdicts": {str(k): int(v) for k, v in records["verdict"].value_counts().items()}
            if "verdict" in records else {},
            "latest_verdict_at": str(records["at"].max()) if "at" in records and len(records) else None,
            "split": {"seed": split.seed, "rule": RULE}, "rows_file": FEEDBACK_ROWS_FILE}


def pin_feedback_rows(bundle_dir: Path, records: pd.DataFrame, parts: np.ndarray) -> None:
    """Write which labelled record went where (``feedback_rows.json``) and pin it in the manifest."""
    from models.bundle import sha256_of
    from models.training.bundle_writer import _write_manifest

    rows = [{"record_id": str(r), "label": lab, "part": str(p), "feedback_id": fid}
            for r, lab, p, fid in zip(records["record_id"], records["label"].where(records["label"].notna(), None),
                                      parts, records.get("feedback_id", pd.Series([None] * len(records))))]
    path = Path(bundle_dir) / FEEDBACK_ROWS_FILE
    path.write_text(json.dumps({"rule": RULE, "rows": rows}, indent=None) + "\n", encoding="utf-8")
    manifest = read_manifest(bundle_dir)
    manifest["files"] = {**manifest["files"], FEEDBACK_ROWS_FILE: sha256_of(path)}
    _write_manifest(bundle_dir, manifest)
    log.info("%s: %d labelled records recorded in %s", bundle_dir, len(rows), FEEDBACK_ROWS_FILE)


def learnt_records(bundle: Bundle) -> dict[str, str]:
    """record_id -> part, of the labelled records the bundle learnt from (none for a bundle trained
    without feedback); the file is checked against the manifest's sha256."""
    digest = bundle.manifest.get("files", {}).get(FEEDBACK_ROWS_FILE)
    if digest is None:
        return {}
    data = (Path(bundle.path) / FEEDBACK_ROWS_FILE).read_bytes()
    if hashlib.sha256(data).hexdigest() != digest:
        raise FeedbackDataError(f"{bundle.path}/{FEEDBACK_ROWS_FILE} does not match the sha256 its manifest pins")
    return {row["record_id"]: row["part"] for row in json.loads(data)["rows"] if row["part"] in LEARNT}


def add_to_parts(parts: dict[str, pd.DataFrame], frame: pd.DataFrame, feedback: FeedbackSet,
                 split: SplitConfig) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """Add the labelled records to the training parts (``benign_train``, ``benign_validation``,
    ``attack_train``, in place); returns the records, their parts and the manifest section."""
    records = clean(feedback.records)
    assigned = assign_parts(records, split, in_frame(records, frame))
    for name, rows in training_parts(records, assigned).items():
        if len(rows):
            parts[name] = pd.concat([parts[name], rows], ignore_index=True)
    section = describe(feedback, records, assigned, split)
    log.info("feedback: %d labelled records: %s", len(records), {k: v for k, v in section["parts"].items() if v})
    return records, assigned, section
