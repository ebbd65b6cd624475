"""``iomt-ad train --data FILE_OR_DIR... --out models/<version> [--seed N] [--target-fpr F] [--feedback TABLES]``.

With ``--feedback``, analysts' verdicts (``iomt-ad feedback``) join the training data: false positives as
benign training and calibration rows, true positives of a known class as attack training rows, each by
a seeded split of its record id with a share held out (:mod:`models.training.feedback`)."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from jobs.feedback.command import add_feedback_arguments, feedback_of

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--data", nargs="+", required=True, metavar="FILE_OR_DIR",
                        help="official CICIoMT2024 CSV files or directories of them")
    parser.add_argument("--out", required=True, type=Path, help="bundle directory, e.g. models/v3")
    parser.add_argument("--version", default=None, help="model version (default: the --out directory name)")
    parser.add_argument("--seed", type=int, default=None, help="split and model seed (default 20240601)")
    parser.add_argument("--window-invariant", action="store_true",
                        help="leave the features that grow with the window out of the models (Number, Tot sum, "
                             "the *_count features): for records of the sensor, whatever its --window")
    parser.add_argument("--target-fpr", type=float, default=0.01,
                        help="false-positive rate on benign validation rows for every threshold (default 0.01)")
    add_feedback_arguments(parser, "also learn from analysts' verdicts in the feedback table under TABLES (a path or "
                                   "s3://bucket/prefix, e.g. var/delta): false positives as benign rows, true "
                                   "positives of a known class as attack rows; a seeded share held out")
    return parser


def run(args: argparse.Namespace) -> int:
    from models.training.pipeline import TrainConfig, train_bundle
    from models.training.split import SplitConfig

    split = SplitConfig() if args.seed is None else SplitConfig(seed=args.seed)
    config = TrainConfig(split=split, target_fpr=args.target_fpr, window_invariant=args.window_invariant)
    metrics = train_bundle(args.data, args.out, version=args.version, config=config, feedback=feedback_of(args))
    log.info("bundle written to %s: %s", args.out, json.dumps(metrics["validation_roc_auc_benign_val_vs_attack_train"]))
    return 0
