"""``iomt-ad compile --model models/<version>``: add the bundle's forests compiled to ONNX
(``iforest.onnx.gz``, ``classifier.onnx.gz``) and pin them in its manifest; scoring then runs them
with onnxruntime. ``iomt-ad train`` already writes them for new bundles."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--model", required=True, type=Path, help="bundle directory, e.g. models/v3")
    return parser


def run(args: argparse.Namespace) -> int:
    from models.training.bundle_writer import compile_bundle

    compiled = compile_bundle(args.model)
    log.info("compiled forests added to %s: %s", args.model, json.dumps(compiled["sizes"]))
    return 0
