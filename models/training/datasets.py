"""Load official CICIoMT2024 CSV files (any mix of classes) with the label from the file name.

:func:`load_flows_pandas` reads them for training, evaluation, replay and exploration: it keeps
``inf`` as a value (the preprocessing caps it), keeps empty cells as nulls, and refuses a file of
another layout with a clear message.
"""
from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from schemas.classes import label_of_file
from schemas.csv_layout import check_csv_header
from schemas.flow_record import FEATURES

log = logging.getLogger(__name__)

LABEL_COLUMN = "label"
CATEGORY_COLUMN = "category"
SOURCE_FILE_COLUMN = "source_file"
ROW_NUMBER_COLUMN = "row_number"


class DatasetNotFoundError(FileNotFoundError):
    """A path given as data that holds no CICIoMT2024 CSV file."""


def list_flow_csvs(paths: Iterable[str | Path]) -> list[Path]:
    """The ``*.pcap.csv`` files named by ``paths`` (files, or directories searched non-recursively)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.name.endswith(".csv"))
            if not files:
                raise DatasetNotFoundError(f"{path}: no .csv file in this directory")
            found.extend(files)
        elif path.is_file():
            found.append(path)
        else:
            raise DatasetNotFoundError(f"{path}: no such file or directory")
    return found


def read_csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        try:
            return next(csv.reader(handle))
        except StopIteration:
            return []


def check_files(files: Sequence[Path]) -> None:
    """Check every file's name (its class) and header before any row is read."""
    for path in files:
        label_of_file(path)
        check_csv_header(read_csv_header(path), str(path))


def load_flows_pandas(paths: Iterable[str | Path]) -> pd.DataFrame:
    """All rows of the given files: the 39 features (float64, ``inf`` kept, empty cells NaN) plus
    ``label``, ``category``, ``source_file`` and ``row_number`` (1-based data row in its file)."""
    files = list_flow_csvs(paths)
    check_files(files)
    frames = []
    for path in files:
        file_label = label_of_file(path)
        frame = pd.read_csv(path, dtype={name: "float64" for name in FEATURES}, float_precision="round_trip")
        frame[LABEL_COLUMN] = file_label.cls
        frame[CATEGORY_COLUMN] = file_label.category
        frame[SOURCE_FILE_COLUMN] = path.name
        frame[ROW_NUMBER_COLUMN] = range(1, len(frame) + 1)
        frames.append(frame)
        log.debug("read %d rows of %s from %s", len(frame), file_label.cls, path)
    return pd.concat(frames, ignore_index=True)


