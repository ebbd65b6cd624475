"""A seeded split whose membership is a pure function of a row's identity.

A row is identified by ``(source_file, row_number)`` (the file's base name and its 1-based data row).
``sha256(seed, source_file, row_number)`` maps it to a bucket in ``[0, 1)``; the bucket and the row's
class (from the file name) decide the part:

- benign rows: ``train`` (detector training) / ``validation`` (threshold calibration) / ``test``;
- attack rows: ``train`` (classifier training, and detector hyperparameter selection) / ``test``.

Because nothing depends on which other rows are present, a held-out row is recognised again in any
subset of the same files (e.g. the project's committed sample), as long as it keeps its original
``source_file`` and ``row_number``.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import Any, Final

import numpy as np
import pandas as pd

from schemas.classes import BENIGN, label_of_file

TRAIN: Final[str] = "train"
VALIDATION: Final[str] = "validation"
TEST: Final[str] = "test"


class SplitConfigError(ValueError):
    """Split fractions that do not describe a partition of [0, 1)."""


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of each part; benign fractions are train, validation, test in that order."""

    seed: int = 20240601
    benign_train: float = 0.6
    benign_validation: float = 0.2
    attack_train: float = 0.7

    def __post_init__(self) -> None:
        if not (0 < self.benign_train and 0 < self.benign_validation
                and self.benign_train + self.benign_validation < 1):
            raise SplitConfigError(
                "benign_train and benign_validation must be positive and sum to less than 1 "
                f"(got {self.benign_train}, {self.benign_validation})")
        if not 0 < self.attack_train < 1:
            raise SplitConfigError(f"attack_train must lie in (0, 1), got {self.attack_train}")

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the split."""
        return {
            **asdict(self),
            "benign_test": round(1 - self.benign_train - self.benign_validation, 10),
            "attack_test": round(1 - self.attack_train, 10),
            "rule": "bucket = int(sha256(f'{seed}\\x1f{source_file}\\x1f{row_number}')[:16], 16) / 2**64; "
                    "benign: bucket < benign_train -> train, < benign_train + benign_validation -> "
                    "validation, else test; attack: bucket < attack_train -> train, else test",
        }

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> "SplitConfig":
        return cls(seed=int(description["seed"]), benign_train=float(description["benign_train"]),
                   benign_validation=float(description["benign_validation"]),
                   attack_train=float(description["attack_train"]))


def row_bucket(source_file: str, row_number: int, seed: int) -> float:
    """A uniform number in [0, 1) fixed by the row's identity and the seed."""
    key = f"{int(seed)}\x1f{PurePath(source_file).name}\x1f{int(row_number)}".encode("utf-8")
    return int(hashlib.sha256(key).hexdigest()[:16], 16) / 2.0**64


def _part(bucket: float, is_benign: bool, config: SplitConfig) -> str:
    if is_benign:
        if bucket < config.benign_train:
            return TRAIN
        if bucket < config.benign_train + config.benign_validation:
            return VALIDATION
        return TEST
    return TRAIN if bucket < config.attack_train else TEST


def split_of(source_file: str, row_number: int, seed: int, config: SplitConfig | None = None) -> str:
    """``train``, ``validation`` (benign only) or ``test`` for one row of an official file."""
    config = config or SplitConfig(seed=seed)
    if config.seed != seed:
        config = SplitConfig(seed=seed, benign_train=config.benign_train,
                             benign_validation=config.benign_validation, attack_train=config.attack_train)
    is_benign = label_of_file(source_file).cls == BENIGN
    return _part(row_bucket(source_file, row_number, seed), is_benign, config)


def split_rows(source_files: Iterable[str], row_numbers: Iterable[int], config: SplitConfig) -> np.ndarray:
    """The part of every row, vectorised over a frame's ``source_file`` / ``row_number`` columns."""
    benign_of_file: dict[str, bool] = {}
    parts = []
    for source_file, row_number in zip(source_files, row_numbers, strict=True):
        name = PurePath(source_file).name
        if name not in benign_of_file:
            benign_of_file[name] = label_of_file(name).cls == BENIGN
        parts.append(_part(row_bucket(name, row_number, config.seed), benign_of_file[name], config))
    return np.asarray(parts, dtype=object)


def split_frame(frame: pd.DataFrame, config: SplitConfig) -> pd.Series:
    """``split_rows`` for a frame from :func:`models.training.datasets.load_flows_pandas`."""
    return pd.Series(split_rows(frame["source_file"], frame["row_number"], config), index=frame.index,
                     name="split")
