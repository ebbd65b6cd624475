"""``iomt-ad evaluate [--model DIR] --data FILE_OR_DIR... --json OUT.json [--html OUT.html] [--rows MODE]``.

Scores the rows the bundle never learnt from: of its own training files only the held-out rows (its
``test`` split), of any other file every row; the JSON says per file which rows and why."""
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
ROW_MODES = ("auto", "held-out", "all")  # as models.training.evaluation.ROW_MODES (not imported: --help stays light)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=f"bundle directory (default {DEFAULT_MODEL})")
    parser.add_argument("--data", nargs="+", required=True, metavar="FILE_OR_DIR",
                        help="CICIoMT2024-layout CSV files or directories: of the bundle's training files only "
                             "the held-out rows are evaluated, of other files every row")
    parser.add_argument("--json", required=True, type=Path, help="where to write the metrics JSON")
    parser.add_argument("--html", type=Path, default=None, help="where to write the Plotly HTML report")
    parser.add_argument("--rows", choices=ROW_MODES, default="auto",
                        help="auto (default): held-out rows of the bundle's training files (by sha256, or by name "
                             "for a part of one), every row of other files; held-out: the split's test rows of "
                             "every file; all: every row")
    return parser


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def write_evaluation(model: Path, data: list[str], json_path: Path, html_path: Path | None = None,
                     rows: str = "auto") -> dict[str, Any]:
    """Evaluate ``model`` on the rows of ``data`` it never learnt from (``rows``: see --rows); write the
    metrics JSON (and the HTML report)."""
    from models.training.evaluation import evaluate_bundle
    from udfs.model_cache import get_bundle

    bundle = get_bundle(model)
    result, scored = evaluate_bundle(bundle, data, rows)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(_finite(result), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    for entry in result["evaluated_files"]:
        log.info("%s: %d of %d rows evaluated (%s)", entry["name"], entry["rows_evaluated"], entry["rows"], entry["why"])
    log.info("wrote %s (%d rows evaluated)", json_path, result["n_rows"])
    if html_path is not None:
        from models.training.report import write_html

        write_html(html_path, result, scored, {name: t.value for name, t in bundle.thresholds.items()})
        log.info("wrote %s", html_path)
    return result


def run(args: argparse.Namespace) -> int:
    write_evaluation(args.model, args.data, args.json, args.html, args.rows)
    return 0
