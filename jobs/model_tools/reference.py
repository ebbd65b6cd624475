"""``iomt-ad reference --model models/<version> --data DIR``: add the benign reference (per feature: 1st
percentile, median, 99th percentile of the bundle's benign training rows) and the drift reference
(quantile bins of those rows and of the benign validation rows' ensemble scores) to a bundle trained
before ``iomt-ad train`` wrote them (:mod:`models.training.reference`,
:mod:`models.training.drift_reference`). Only the manifest is rewritten; the alerts' explanations
then name the features that stand out against it, and the stream measures drift against it."""
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
    from models.training.drift_reference import add_drift_reference
    from models.training.reference import add_reference

    reference = add_reference(args.model, args.data)
    drift = add_drift_reference(args.model, args.data)
    log.info("benign reference of %d training rows and drift reference of %d measures added to %s; its manifest's "
             "sha256 is now %s (update a pinned stream.model_trust.manifest_sha256, and register the bundle again)",
             reference.rows, len(drift.measures), args.model, sha256_of(Path(args.model) / "manifest.json"))
    return 0
