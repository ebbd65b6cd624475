"""``iomt-ad``: one command for every IoMT-AD job. Each subcommand lives in its own module, which
exposes ``add_arguments(parser)`` and ``run(args) -> int``; heavy imports stay inside ``run``."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from schemas.csv_layout import CsvLayoutError
from schemas.classes import UnknownClassFileError
from jobs.config import ConfigError
from jobs.datasets import DatasetNotFoundError
from jobs.replay import BrokerUnreachableError


def _user_errors() -> tuple[type[BaseException], ...]:
    from jobs.checkpoint_guard import CheckpointMismatchError
    from jobs.dist import DistError
    from jobs.maintenance import UnsafeRetentionError
    from jobs.rescore_batch import RescoreError

    return (CsvLayoutError, UnknownClassFileError, ConfigError, DatasetNotFoundError, BrokerUnreachableError,
            DistError, UnsafeRetentionError, RescoreError, CheckpointMismatchError)

# (subcommand, module, one-line help) — in the order --help lists them.
SUBCOMMANDS: tuple[tuple[str, str, str], ...] = (
    ("demo", "jobs.demo", "run the whole job on the embedded default with the project's sample (make demo)"),
    ("check-data", "jobs.check_data", "validate CICIoMT2024 CSV files and summarise them per class"),
    ("train", "jobs.train", "train a model bundle (LSTM autoencoder, Isolation Forest, classifier, thresholds)"),
    ("compile", "jobs.compile", "add a bundle's forests compiled to ONNX (onnxruntime scoring) and pin them in its manifest"),
    ("evaluate", "jobs.evaluate", "evaluate a model bundle on held-out rows: JSON metrics and an HTML report"),
    ("stream", "jobs.score_stream", "run the streaming scoring job (Kafka or files -> Delta + InfluxDB)"),
    ("grafana", "jobs.grafana_dashboards", "generate the Grafana dashboards and alert rules (docker/grafana) from code"),
    ("dashboard", "jobs.dashboard", "serve the operator dashboard (Streamlit) over the Delta tables"),
    ("explore", "jobs.explore", "plot feature distributions of benign against attack traffic to an HTML page"),
    ("rescore", "jobs.rescore_batch", "re-score stored flows of a time range with a chosen model version (flows_rescored, scoring_runs)"),
    ("sql", "jobs.sql", "run SQL over the Delta tables, each registered by name, or a documented example query"),
    ("maintain", "jobs.maintenance", "OPTIMIZE and VACUUM the Delta tables (retention >= 7 days)"),
    ("dist", "jobs.dist", "build dist/ for spark-submit: code zip (--py-files), bundle archive (--archives), entry points, conf"),
    ("bench", "jobs.bench", "measure throughput, latency and memory; write bench.json and BENCHMARKS.md"),
    ("replay", "jobs.replay", "stream CICIoMT2024 CSV rows as JSON flow records to Kafka or a directory"),
)



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iomt-ad",
        description="IoMT-AD: real-time anomaly detection for Internet-of-Medical-Things network traffic.",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name, help_text in SUBCOMMANDS:
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run(args))
    except _user_errors() as exc:  # errors a user can fix: one clear line, exit status 2
        logging.getLogger("iomt-ad").error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
