"""``iomt-ad reference --model models/<version> --data DIR``: add the benign reference (per feature: 1st
percentile, median, 99th percentile of the bundle's benign training rows) to a bundle trained before
``iomt-ad train`` wrote it (:mod:`models.training.reference`). Only the manifest is rewritten; the
alerts' explanations then name the features that stand out against it."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from models import DEFAULT_BUNDLE

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--model", type=Path, default=DEFAULT_BUNDLE, help=f"bundle directory (default {DEFAULT_BUNDLE})")
    parser.add_argument("--data", nargs="+", required=True, metavar="FILE_OR_DIR",
                        help="the CICIoMT2024 CSV files the bundle was trained on (checked against its manifest)")
    return parser


def run(args: argparse.Namespace) -> int:
    from models.bundle import sha256_of
    from models.training.reference import add_reference

    reference = add_reference(args.model, args.data)
    log.info("benign reference of %d training rows added to %s; its manifest's sha256 is now %s (update a pinned "
             "stream.model_trust.manifest_sha256)", reference.rows, args.model, sha256_of(Path(args.model) / "manifest.json"))
    return 0
