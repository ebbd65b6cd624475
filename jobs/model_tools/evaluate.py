"""``iomt-ad evaluate [--model DIR] --data FILE_OR_DIR... --json OUT.json [--html OUT.html]``.

Scores only the held-out rows (the bundle's ``test`` split) of the given files."""
from __future__ import annotations

import argparse
import json
import logging
import math
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


def write_evaluation(model: Path, data: list[str], json_path: Path, html_path: Path | None = None) -> dict[str, Any]:
    """Evaluate ``model`` on the held-out rows of ``data``; write the metrics JSON (and the HTML report)."""
    from models.training.evaluation import evaluate_bundle
    from udfs.model_cache import get_bundle

    bundle = get_bundle(model)
    result, scored = evaluate_bundle(bundle, data)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(_finite(result), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    log.info("wrote %s (%d held-out rows)", json_path, result["n_rows"])
    if html_path is not None:
        from models.training.report import write_html

        write_html(html_path, result, scored, {name: t.value for name, t in bundle.thresholds.items()})
        log.info("wrote %s", html_path)
    return result


def run(args: argparse.Namespace) -> int:
    write_evaluation(args.model, args.data, args.json, args.html)
    return 0
