"""``iomt-ad compile --model models/<version>``: add the bundle's forests compiled to ONNX
(``iforest.onnx.gz``, ``classifier.onnx.gz``) and pin them in its manifest; scoring then runs them
with onnxruntime. ``iomt-ad train`` already writes them for new bundles."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--model", required=True, type=Path, help="bundle directory, e.g. models/v2")
    return parser


def run(args: argparse.Namespace) -> int:
    from models.bundle import BundleError, compile_bundle

    try:
        compiled = compile_bundle(args.model)
    except BundleError as error:
        log.error("compile failed: %s", error)
        return 2
    log.info("compiled forests added to %s: %s", args.model, json.dumps(compiled["sizes"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = add_arguments(argparse.ArgumentParser(prog="iomt-ad compile", description=__doc__))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
