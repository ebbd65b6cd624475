"""Batch re-scoring: stored flows of a time range -> the same transforms and UDF as the stream ->
scores of one model version in ``flows_rescored``; every run is recorded in ``scoring_runs``.

A bundle whose autoencoder reads sequences (``lstm_ae.config.timesteps`` k > 1) scores each record
with its context (:mod:`models.sequences`): its device's earlier records of the same range (at most
k - 1, cut at gaps over the bundle's ``max_gap_s``; :func:`jobs.transforms.with_contexts`). Records
before the range are not context: the range's first windows of each device are scored with a
shorter sequence than the stream gave them (pick a range that starts a little earlier to avoid it).

Idempotent: a run replaces exactly the rows of its (time range, model version) with ``replaceWhere``,
and its rows hold nothing run-specific, so running it twice leaves the table's content unchanged.
Overlapping ranges are fine: the later run owns the overlap.

Run it with ``iomt-ad rescore --from T1 --to T2 [--model DIR] [--conf FILE]`` or
``spark-submit ... rescore_batch.py --conf FILE --from T1 --to T2 --model model``
(``--archives bundle-v2.zip#model``: see docs/cluster.md). Times are ISO-8601; a time without an
offset is read in ``spark.sql.session.timeZone`` (UTC in the shipped configurations).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import re
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.errors import UserError
from jobs.config import AppConfig, ConfigError, load_config
from schemas.tables import FLOWS_RESCORED, FLOWS_SCORED, RECORD_COLUMNS, SCORING_RUNS, TABLES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from jobs.storage import TablesLocation

    from models.bundle import BundleTrust

log = logging.getLogger(__name__)

RECORD_NAMES: tuple[str, ...] = tuple(c.name for c in RECORD_COLUMNS)
# What the stream decided, kept beside the new scores so analysts can compare versions row by row.
STREAM_COLUMNS: dict[str, str] = {"model_version": "stream_model_version", "is_anomaly": "stream_is_anomaly",
                                  "ensemble_score": "stream_ensemble_score"}
_VERSION = re.compile(r"^[A-Za-z0-9._-]+$")


class RescoreError(UserError, ValueError):
    """Arguments that cannot be used (bad time range, bad model version); the message says why."""


@dataclass(frozen=True)
class TimeRange:
    """``[start, end)`` on ``event_time``; ``start``/``end`` are validated ISO-8601 texts."""

    start: str
    end: str

    @classmethod
    def parse(cls, start: str, end: str) -> "TimeRange":
        begin, finish = _parse_time(start, "--from"), _parse_time(end, "--to")
        if _comparable(begin) >= _comparable(finish):
            raise RescoreError(f"--from {start} must be before --to {end}")
        return cls(begin.isoformat(sep=" "), finish.isoformat(sep=" "))

    def _ts(self, text: str) -> str:
        return f"CAST('{text}' AS TIMESTAMP)"

    def predicate(self) -> str:
        """Spark SQL condition selecting the range; ``event_date`` bounds let Delta prune partitions."""
        start, end = self._ts(self.start), self._ts(self.end)
        return (f"event_time >= {start} AND event_time < {end} "
                f"AND event_date >= CAST({start} AS DATE) AND event_date <= CAST({end} AS DATE)")


def _parse_time(text: str, flag: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise RescoreError(f"{flag} {text!r} is not an ISO-8601 time (e.g. 2025-03-01T00:00:00Z)") from exc


def _comparable(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class RescoreResult:
    run_id: str
    model_version: str
    rows_read: int
    rows_written: int
    anomalies: int
    seconds: float
    target: str


def source_flows(spark: "SparkSession", tables: "TablesLocation", time_range: TimeRange,
                 source: str = FLOWS_SCORED) -> "DataFrame":
    """The stored records of the range: metadata, the 39 features and what the stream decided."""
    from pyspark.sql import functions as F

    stored = spark.read.format("delta").load(tables.spark_uri(source)).filter(time_range.predicate())
    return stored.select(*[F.col(c) for c in RECORD_NAMES],
                         *[F.col(old).alias(new) for old, new in STREAM_COLUMNS.items()])


@dataclass(frozen=True)
class Sequences:
    """How the bundle's autoencoder reads records: ``timesteps`` windows a record (1: each alone),
    contexts cut at gaps over ``max_gap_s``."""

    timesteps: int = 1
    max_gap_s: float = 600.0

    @classmethod
    def of(cls, manifest: dict) -> "Sequences":
        config = manifest.get("lstm_ae", {}).get("config", {})
        return cls(int(config.get("timesteps", 1)), float(config.get("max_gap_s", 600)))


def rescored_rows(flows: "DataFrame", executor_model_dir: str, trust: "BundleTrust | None" = None,
                  sequences: Sequences = Sequences()) -> "DataFrame":
    """The stream's scoring step (``jobs.transforms.score``) on stored flows, partition columns added;
    with each record's context first when the autoencoder reads sequences. ``executor_model_dir`` is
    the bundle path as the executors see it."""
    from pyspark.sql import functions as F

    from jobs.transforms import score, with_contexts

    if sequences.timesteps > 1:
        flows = with_contexts(flows, sequences.timesteps, sequences.max_gap_s)
    rows = score(flows, executor_model_dir, trust).withColumn("event_date", F.to_date("event_time"))
    return rows.select(*TABLES[FLOWS_RESCORED].column_names)


def _manifest(model_dir: str, trust: "BundleTrust | None" = None) -> tuple[str, str, dict]:
    """(model version, manifest sha256, manifest) of the bundle, checked against this code's schema and ``trust``."""
    from udfs.model_cache import driver_bundle_dir
    from models.bundle import check_bundle

    local = driver_bundle_dir(model_dir)
    manifest, sha = check_bundle(local, trust)
    version = str(manifest["model_version"])
    if not _VERSION.match(version):
        raise RescoreError(f"{local}: model_version {version!r} must match {_VERSION.pattern}")
    return version, sha, manifest


def _trust(config: AppConfig, model_dir: str) -> "BundleTrust":
    """stream.model_trust: its pin when re-scoring with stream.model_dir itself, its unpickling rule always."""
    trust = config.stream.model_trust.bundle_trust()
    if Path(model_dir) != Path(config.stream.model_dir):
        trust = dataclasses.replace(trust, manifest_sha256=None)
    return trust


def _record_run(spark: "SparkSession", tables: "TablesLocation", row: dict[str, object]) -> None:
    spec = TABLES[SCORING_RUNS]
    frame = spark.createDataFrame([tuple(row.get(c) for c in spec.column_names)], spec.spark_ddl())
    frame.write.format("delta").mode("append").save(tables.spark_uri(SCORING_RUNS))


def rescore(spark: "SparkSession", config: AppConfig, model_dir: str, time_range: TimeRange,
            source: str = FLOWS_SCORED, target: str = FLOWS_RESCORED) -> RescoreResult:
    """Re-score ``source`` rows of ``time_range`` with the bundle at ``model_dir`` into ``target``."""
    tables = config.stream.tables
    if not tables.is_table(source):
        raise ConfigError(f"{tables.uri(source)}: no Delta table there; check stream.tables_dir in the "
                          "configuration (the streaming job writes it)")
    run_id = uuid.uuid4().hex
    started_at, started = datetime.now(timezone.utc), time.monotonic()
    trust = _trust(config, model_dir)
    version, sha, manifest = _manifest(model_dir, trust)
    # the executors score with exactly the bundle this run records (its manifest pinned)
    executor_trust = dataclasses.replace(trust, manifest_sha256=sha)
    run: dict[str, object] = {
        "run_id": run_id, "model_version": version, "model_sha256": sha, "model_dir": model_dir,
        "source_table": source, "target_table": target, "started_at": started_at,
        "range_from": _timestamp(spark, time_range.start), "range_to": _timestamp(spark, time_range.end),
        "spark_app_id": spark.sparkContext.applicationId,
    }
    predicate = f"model_version = '{version}' AND {time_range.predicate()}"
    log.info("rescore run %s: %s rows of %s with model %s (%s)", run_id, source, time_range, version, model_dir)
    try:
        flows = source_flows(spark, tables, time_range, source)
        rows_read = flows.count()
        (rescored_rows(flows, model_dir, executor_trust, Sequences.of(manifest)).write.format("delta").mode("overwrite")
         .option("replaceWhere", predicate).option("mergeSchema", "true")  # tables of earlier versions gain columns
         .partitionBy(*TABLES[FLOWS_RESCORED].partition_by)
         .save(tables.spark_uri(target)))
        written = spark.read.format("delta").load(tables.spark_uri(target)).filter(predicate)
        counts = written.selectExpr("count(*) AS n", "count_if(is_anomaly) AS a").first()
        rows_written, anomalies = int(counts["n"]), int(counts["a"] or 0)
        if rows_written != rows_read:
            raise RuntimeError(f"re-scored {rows_written} rows but read {rows_read}: the source changed "
                               "during the run (late records?); run it again")
    except Exception as exc:
        run.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:1000])
        _finish(spark, tables, run, started)
        raise
    run.update(status="succeeded", rows_read=rows_read, rows_written=rows_written, anomalies=anomalies)
    seconds = _finish(spark, tables, run, started)
    log.info("rescore run %s: %d rows, %d anomalies with %s in %.1f s", run_id, rows_written, anomalies,
             version, seconds)
    return RescoreResult(run_id=run_id, model_version=version, rows_read=rows_read, rows_written=rows_written,
                         anomalies=anomalies, seconds=seconds, target=tables.uri(target))


def _timestamp(spark: "SparkSession", text: str) -> datetime:
    """The range bound as Spark reads it (session time zone), as the datetime Spark would store."""
    return spark.sql(f"SELECT CAST('{text}' AS TIMESTAMP) AS t").first()["t"]


def _finish(spark: "SparkSession", tables: "TablesLocation", run: dict[str, object], started: float) -> float:
    seconds = round(time.monotonic() - started, 3)
    run.update(finished_at=datetime.now(timezone.utc), seconds=seconds)
    _record_run(spark, tables, run)
    return seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", default="conf/local.yaml",
                        help="configuration: stream.tables_dir holds the tables (default conf/local.yaml)")
    parser.add_argument("--model", default=None, metavar="DIR",
                        help="the bundle to score with (default stream.model_dir); on a cluster the "
                             "--archives name, e.g. model")
    parser.add_argument("--from", dest="start", required=True, metavar="T1", help="start of the range (inclusive)")
    parser.add_argument("--to", dest="end", required=True, metavar="T2", help="end of the range (exclusive)")
    parser.add_argument("--table", default=FLOWS_RESCORED, help=f"target table (default {FLOWS_RESCORED})")


def run(args: argparse.Namespace) -> int:
    from jobs.session import build_spark

    config = load_config(args.conf)
    time_range = TimeRange.parse(args.start, args.end)
    spark = build_spark(config, "iomt-ad-rescore")
    model_dir = str(args.model or config.stream.model_dir)
    result = rescore(spark, config, model_dir, time_range, target=args.table)
    sys.stdout.write(f"run {result.run_id}: {result.rows_written} rows re-scored with model "
                     f"{result.model_version} ({result.anomalies} anomalies) into {result.target} "
                     f"in {result.seconds:.1f} s\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The spark-submit entry point: the same as ``iomt-ad rescore``."""
    from jobs.entry import entry_point

    return entry_point("rescore_batch", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
