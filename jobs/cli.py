"""``iomt-ad``: one command for every IoMT-AD job. Each subcommand lives in its own module, which
exposes ``add_arguments(parser)`` and ``run(args) -> int``; heavy imports stay inside ``run``."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from jobs.entry import LOG_FORMAT, run_command


def _user_errors() -> tuple[type[BaseException], ...]:
    """User errors of the model tools (``models.training``, below ``jobs``); ``jobs.entry`` has the rest."""
    from models.thresholds import ThresholdError
    from models.training.datasets import DatasetNotFoundError
    from models.training.evaluation import NoHeldOutRowsError
    from models.training.pipeline import TrainingDataError
    from models.training.baseline import BaselineDataError
    from models.training.split import SplitConfigError
    from models.training.reference import ReferenceDataError
    from models.training.training_rows import TrainingRowsError

    return (DatasetNotFoundError, NoHeldOutRowsError, TrainingDataError, SplitConfigError, ThresholdError,
            BaselineDataError, ReferenceDataError, TrainingRowsError)


# (subcommand, module, one-line help) — in the order --help lists them.
SUBCOMMANDS: tuple[tuple[str, str, str], ...] = (
    ("demo", "jobs.ops.demo", "run the whole job on the embedded default with the project's sample (make demo)"),
    ("check-data", "jobs.model_tools.check_data", "validate CICIoMT2024 CSV files and summarise them per class"),
    ("train", "jobs.model_tools.train", "train a model bundle (LSTM autoencoder, Isolation Forest, classifier, thresholds)"),
    ("baseline", "jobs.model_tools.baseline", "learn a site's normal traffic (captures or a time range) into a new bundle version"),
    ("compile", "jobs.model_tools.compile", "add a bundle's forests compiled to ONNX (onnxruntime scoring) and pin them in its manifest"),
    ("training-rows", "jobs.model_tools.training_rows", "record in an existing bundle which rows it was made from (for evaluate)"),
    ("reference", "jobs.model_tools.reference", "add the benign reference (p1, median, p99 per feature) that explanations cite, and the drift reference (bins of the benign rows and scores), to a bundle"),
    ("models", "jobs.model_tools.models_command", "the model registry: register bundles, list them, set the challenger, promote a champion, roll back"),
    ("evaluate", "jobs.model_tools.evaluate", "evaluate a model bundle on the rows it never learnt from: JSON metrics and an HTML report"),
    ("stream", "jobs.stream.score_stream", "run the streaming scoring job (Kafka or files -> Delta + InfluxDB)"),
    ("influx-backfill", "jobs.ops.influx_backfill", "send InfluxDB again the points of batches whose write failed (batch_log), rebuilt from Delta; idempotent"),
    ("notify", "jobs.outputs.command", "deliver queued incident updates to the alert outputs (syslog CEF, OCSF to Kafka or a webhook, Slack)"),
    ("influx-tokens", "jobs.ops.influx_tokens", "create (or keep) InfluxDB tokens scoped to the bucket: write-only for the job, read-only for Grafana"),
    ("grafana", "jobs.grafana.command", "generate the Grafana dashboards and alert rules (docker/grafana) from code"),
    ("dashboard", "jobs.dashboard", "serve the operator dashboard (Streamlit) over the Delta tables"),
    ("explore", "jobs.model_tools.explore", "plot feature distributions of benign against attack traffic to an HTML page"),
    ("rescore", "jobs.batch.rescore", "re-score stored flows of a time range with a chosen model version (flows_rescored, scoring_runs)"),
    ("sql", "jobs.batch.sql", "run SQL over the Delta tables, each registered by name, or a documented example query"),
    ("incidents", "jobs.incidents.command", "list and show incidents; acknowledge, resolve, reopen, comment; mute a device or class, maintenance windows"),
    ("feedback", "jobs.feedback.command", "mark alerts or incidents as true or false positives, correct the class; list the verdicts and the records they label"),
    ("maintain", "jobs.batch.maintain", "OPTIMIZE and VACUUM the Delta tables (retention >= 7 days)"),
    ("dist", "jobs.ops.dist", "build dist/ for spark-submit: code zip (--py-files), bundle archive (--archives), entry points, conf"),
    ("bench", "jobs.bench.command", "measure throughput, latency and memory; write bench.json and BENCHMARKS.md"),
    ("soak", "jobs.bench.soak", "hold the job at a steady rate with InfluxDB and the dashboard up: memory, batch times, nothing lost"),
    ("sensor", "jobs.sensor.command", "packets (capture files or a live interface) -> per-device flow records to Kafka or files, or an offline report"),
    ("sensor-figures", "jobs.sensor.figures", "what the bundles make of the shared real captures: flagged shares, site baselines, window invariance"),
    ("sequence-figures", "jobs.sensor.sequence_figures", "site baselines whose autoencoder reads a device's last K windows against one window at a time, on the shared labelled captures"),
    ("replay", "jobs.ops.replay", "stream CICIoMT2024 CSV rows as JSON flow records to Kafka or a directory"),
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
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT)
    return run_command(args._run, args, _user_errors())


if __name__ == "__main__":
    sys.exit(main())
