"""``iomt-ad training-rows --model DIR --data FILE_OR_DIR...``: record in an existing bundle which rows
it was made from (``training_rows.npz``, pinned in its manifest), so that ``iomt-ad evaluate`` tells
the bundle's own rows from new ones row by row. ``iomt-ad train`` writes it for new bundles."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="bundle directory, e.g. models/v3")
    parser.add_argument("--data", nargs="+", required=True, metavar="FILE_OR_DIR",
                        help="the bundle's training files, unchanged (their sha256 are in its manifest)")


def run(args: argparse.Namespace) -> int:
    from models.training.training_rows import add_training_rows

    rows = add_training_rows(args.model, args.data)
    log.info("%s: %d rows recorded", args.model, rows)
    return 0
