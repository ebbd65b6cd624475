"""``iomt-ad evaluate [--model DIR] (--data FILE_OR_DIR... | --feedback TABLES) --json OUT.json [--html OUT.html] [--rows MODE]``.

Scores the rows the bundle never learnt from: of its own training files only the held-out rows (its
``test`` split), of any other file every row; the JSON says per file which rows and why. With
``--feedback``, also the records analysts labelled that it did not learn from (the JSON's
``feedback``: :mod:`models.training.feedback_eval`)."""
from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models import DEFAULT_BUNDLE_PATH

if TYPE_CHECKING:
    from models.training.feedback import FeedbackSet

from jobs.feedback.command import add_feedback_arguments, feedback_of

log = logging.getLogger(__name__)

DEFAULT_MODEL = DEFAULT_BUNDLE_PATH
ROW_MODES = ("auto", "held-out", "all")  # as models.training.evaluation.ROW_MODES (not imported: --help stays light)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=f"bundle directory (default {DEFAULT_MODEL})")
    parser.add_argument("--data", nargs="+", default=None, metavar="FILE_OR_DIR",
                        help="CICIoMT2024-layout CSV files or directories: of the bundle's training files only "
                             "the held-out rows are evaluated, of other files every row")
    parser.add_argument("--json", required=True, type=Path, help="where to write the metrics JSON")
    parser.add_argument("--html", type=Path, default=None, help="where to write the Plotly HTML report")
    parser.add_argument("--rows", choices=ROW_MODES, default="auto",
                        help="auto (default): held-out rows of the bundle's training files (by sha256, or by name "
                             "for a part of one), every row of other files; held-out: the split's test rows of "
                             "every file; all: every row")
    add_feedback_arguments(parser, "also report on the records analysts labelled (iomt-ad feedback) in the feedback "
                                   "table under TABLES (a path or s3://bucket/prefix) that the bundle did not learn "
                                   "from: false positives still flagged, true positives detected, per class")
    return parser


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def write_evaluation(model: Path, data: list[str] | None, json_path: Path, html_path: Path | None = None,
                     rows: str = "auto", feedback: "FeedbackSet | None" = None) -> dict[str, Any]:
    """Evaluate ``model`` on the rows of ``data`` it never learnt from (``rows``: see --rows), and on
    the labelled records of ``feedback`` it never learnt from; write the metrics JSON (and the HTML
    report, for ``data``)."""
    from models.training.evaluation import evaluate_bundle
    from udfs.model_cache import get_bundle

    bundle = get_bundle(model)
    result, scored = evaluate_bundle(bundle, data, rows) if data else ({"model_version": bundle.version}, None)
    if feedback is not None:
        from models.training.feedback_eval import evaluate_feedback

        result["feedback"] = {**evaluate_feedback(bundle, feedback.records)[0], "source": feedback.source}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(_finite(result), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    for entry in result.get("evaluated_files", []):
        log.info("%s: %d of %d rows evaluated (%s)", entry["name"], entry["rows_evaluated"], entry["rows"], entry["why"])
    log.info("wrote %s (%d rows evaluated%s)", json_path, result.get("n_rows", 0),
             f", {result['feedback']['records_evaluated']} labelled records" if "feedback" in result else "")
    if html_path is not None and scored is not None:
        from models.training.report import write_html

        write_html(html_path, result, scored, {name: t.value for name, t in bundle.thresholds.items()})
        log.info("wrote %s", html_path)
    return result


def run(args: argparse.Namespace) -> int:
    if not args.data and args.feedback is None:
        from jobs.errors import UserError

        raise UserError("give --data (labelled flow files), --feedback (the tables of analysts' verdicts), or both")
    write_evaluation(args.model, args.data, args.json, args.html, args.rows, feedback_of(args))
    return 0
