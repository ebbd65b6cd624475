"""``iomt-ad evaluate [--model DIR] --data FILE_OR_DIR... --json OUT.json [--html OUT.html]``.

Scores only the held-out rows (the bundle's ``test`` split) of the given files."""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

from models import DEFAULT_BUNDLE_PATH

log = logging.getLogger(__name__)

DEFAULT_MODEL = DEFAULT_BUNDLE_PATH


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=f"bundle directory (default {DEFAULT_MODEL})")
    parser.add_argument("--data", nargs="+", required=True, metavar="FILE_OR_DIR",
                        help="official CICIoMT2024 CSV files or directories (held-out rows are selected)")
    parser.add_argument("--json", required=True, type=Path, help="where to write the metrics JSON")
    parser.add_argument("--html", type=Path, default=None, help="where to write the Plotly HTML report")
    return parser


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    from jobs.datasets import DatasetNotFoundError
    from models.bundle import BundleError
    from models.evaluation import NoHeldOutRowsError, evaluate_bundle
    from udfs.model_cache import get_bundle

    try:
        bundle = get_bundle(args.model)
        result, scored = evaluate_bundle(bundle, args.data)
    except (BundleError, DatasetNotFoundError, NoHeldOutRowsError) as error:
        log.error("evaluation failed: %s", error)
        return 2
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(_finite(result), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    log.info("wrote %s (%d held-out rows)", args.json, result["n_rows"])
    if args.html is not None:
        from models.report import write_html

        write_html(args.html, result, scored, {name: t.value for name, t in bundle.thresholds.items()})
        log.info("wrote %s", args.html)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = add_arguments(argparse.ArgumentParser(prog="iomt-ad evaluate", description=__doc__))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
