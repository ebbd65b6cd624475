"""What each Spark task of a micro-batch does with its prepared records, on the executor: score them
(:mod:`jobs.stream.scoring`), build the rows of every table (:mod:`jobs.stream.table_rows`), write them as Parquet data files into the
Delta tables' directories, write its InfluxDB points, and hand the driver only a description of
what it wrote (one small row per data file, its counts, its devices' and its alerts' summaries). The driver commits
the files (:mod:`jobs.stream.delta_writer`); no record passes through it.

Files are named by batch, table and a random id: a task retried, or a batch replayed after a crash,
writes new files, and only those the driver commits (once, under the batch's transaction) become
part of a table; the others are left for VACUUM.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from jobs.config import AppConfig
from jobs.storage import TablesLocation
from jobs.stream import incidents, table_rows
from jobs.stream.delta_writer import DeltaFilesWriter
from jobs.stream.writers import BatchOutput, BatchWriter
from schemas.tables import ALERTS, DEVICES, EXPLANATION, FLOWS_SCORED, FLOWS_SHADOW, INCIDENTS, QUARANTINE, TRAFFIC_1M

if TYPE_CHECKING:
    from jobs.stream.model_roles import BatchModels

log = logging.getLogger(__name__)

# the rows a task returns to the driver: what it wrote, never the records
REPORT_SCHEMA = pa.schema([pa.field("kind", pa.string()), pa.field("table", pa.string()),
                           pa.field("payload", pa.string())])
REPORT_DDL = "kind string, table string, payload string"
FILE, OUTCOME, COUNTS, DEVICE_ROWS, INCIDENT_ROWS, OFFSETS = ("file", "outcome", "counts", "devices", "incidents",
                                                              "offsets")
DRIFT_ROWS = "drift"  # the partition's counts per bin of the champion's drift reference (jobs.drift.counts)
WRITTEN_TABLES = (FLOWS_SCORED, ALERTS, QUARANTINE, TRAFFIC_1M, FLOWS_SHADOW)


@dataclass(frozen=True)
class TaskContext:
    """What every task of a batch needs: small and picklable (sent once with the Spark job)."""

    config: AppConfig
    batch_id: int
    scored_at: datetime
    # InfluxDB's token, read on the driver from its environment variable or file: executors need not
    # share the driver's environment (on a cluster, encrypt Spark's RPC: docs/cluster.md)
    influx_token: str | None = field(default=None, repr=False)
    # where the tables are, with the object store's credentials read on the driver (None: from config)
    tables: TablesLocation | None = field(default=None, repr=False)
    # the bundles that score this batch (jobs.stream.model_roles; None: stream.model_dir)
    models: "BatchModels | None" = None


def spark_partition() -> int:
    """The partition this Spark task computes (0 outside a task). The batch's partitions come from
    its source's offset ranges or files, kept in the checkpoint: a replay has the same ones (unless
    the partitioning settings changed: ``schemas.influx``)."""
    from pyspark import TaskContext as SparkTaskContext

    task = SparkTaskContext.get()
    return task.partitionId() if task is not None else 0


def partition_output(scored_rows: pa.Table, context: TaskContext,
                     partition: int | None = None) -> tuple[BatchOutput, pa.Table, int]:
    """(the table rows of one partition, its devices' summary rows, its quarantined count);
    ``partition``: the task's partition, by default Spark's (:func:`spark_partition`)."""
    good, bad = table_rows.split(scored_rows)
    partition = spark_partition() if partition is None else partition
    scored = table_rows.flows_scored(good, context.batch_id, context.scored_at, partition)
    output = BatchOutput(batch_id=context.batch_id, partition=partition, tables={
        FLOWS_SCORED: scored,
        ALERTS: table_rows.alerts(scored, good[EXPLANATION] if EXPLANATION in good.column_names else None),
        QUARANTINE: table_rows.quarantine(bad, context.batch_id, context.scored_at),
        TRAFFIC_1M: table_rows.traffic_per_minute(scored, context.batch_id),
        FLOWS_SHADOW: table_rows.empty(FLOWS_SHADOW)})  # filled when a challenger scores in shadow
    return output, table_rows.devices(scored, context.batch_id), bad.num_rows


def to_text(rows: pa.Table) -> str:
    """A small Arrow table as text (base64 of the IPC stream): exact types across the report."""
    import base64

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as stream:
        stream.write_table(rows)
    return base64.b64encode(sink.getvalue().to_pybytes()).decode("ascii")


def from_text(text: str) -> pa.Table:
    import base64

    return pa.ipc.open_stream(base64.b64decode(text)).read_all()


_INFLUX: dict[Any, Any] = {}


def _influx_writer(config: AppConfig, token: str | None):
    """One InfluxDB writer per Python worker, configuration and token (its HTTP client is reused)."""
    if not config.influxdb.enabled:
        return None
    key = (config.influxdb, token)
    if key not in _INFLUX:
        from jobs.stream.influx_writer import InfluxPointsWriter

        _INFLUX[key] = InfluxPointsWriter(config.influxdb, token)
    return _INFLUX[key]


def executor_writers(context: TaskContext) -> list[BatchWriter]:
    """The writers each task runs: the Delta data files (required), then InfluxDB when enabled."""
    tables = context.tables or context.config.stream.tables.resolved()
    writers: list[BatchWriter] = [DeltaFilesWriter(tables, WRITTEN_TABLES)]
    influx = _influx_writer(context.config, context.influx_token)
    if influx is not None:
        writers.append(influx)
    return writers


def write_partition(batches: Iterator[pa.RecordBatch], context: TaskContext) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function: one partition's prepared records in, the report of what was written out."""
    from udfs.worker_memory import release_memory

    report = _write_records(list(batches), context)  # the partition's data is freed when it returns
    if report is None:
        return
    yield pa.RecordBatch.from_arrays([pa.array([r[i] for r in report], pa.string()) for i in range(3)],
                                     schema=REPORT_SCHEMA)
    release_memory()  # the worker's resident size falls back between tasks (udfs.worker_memory)


def _write_records(batches: list[pa.RecordBatch], context: TaskContext) -> list[tuple[str, str, str]] | None:
    """Score, write and describe one partition's records (None when it has none)."""
    from jobs.stream.kafka_gaps import task_offsets
    from jobs.stream.model_roles import BatchModel, BatchModels, trust_for
    from jobs.stream.scoring import score_partition

    if not batches:
        return None

    stream = context.config.stream
    prepared = pa.Table.from_batches(batches)
    offsets = task_offsets(prepared)  # the Kafka offsets read, for the driver's gap check
    models = context.models or BatchModels(BatchModel(str(stream.model_dir), stream.model_trust.manifest_sha256))
    scored = score_partition(prepared, models.champion.bundle_dir, stream.quarantine_max_chars,
                             trust=trust_for(models.champion, context.config))
    output, devices, quarantined = partition_output(scored, context)
    if models.challenger is not None:  # the same good records, scored by the challenger: flows_shadow only
        good, _ = table_rows.split(scored)
        again = score_partition(good.select(prepared.column_names), models.challenger.bundle_dir,
                                stream.quarantine_max_chars, trust=trust_for(models.challenger, context.config))
        output.tables[FLOWS_SHADOW] = table_rows.shadow(output.tables[FLOWS_SCORED], again)
    report: list[tuple[str, str, str]] = []
    for writer in executor_writers(context):
        outcome = writer.write(output)  # a required writer raises: the task, then the batch, fails
        report += [(FILE, f["table"], json.dumps(f)) for f in outcome.files]
        report.append((OUTCOME, writer.name, json.dumps({"written": outcome.written, "failed": outcome.failed,
                                                         "error": outcome.error})))
    report.append((COUNTS, "", json.dumps({"records": output.tables[FLOWS_SCORED].num_rows,
                                           "anomalies": output.tables[ALERTS].num_rows, "quarantined": quarantined})))
    if devices.num_rows:
        report.append((DEVICE_ROWS, DEVICES, to_text(devices)))
    # the partition's alerts as episodes, and its latest event time (incidents close on it)
    report.append((INCIDENT_ROWS, INCIDENTS, to_text(incidents.episodes(
        output.tables[ALERTS], stream.incident_quiet, incidents.stream_time(output.tables[FLOWS_SCORED])))))
    if offsets:
        report.append((OFFSETS, "", json.dumps(offsets)))
    if context.config.drift.enabled:  # counts per hour, device group and reference bin: no record leaves
        from jobs.drift.counts import task_counts

        drift = task_counts(output.tables[FLOWS_SCORED], models.champion.bundle_dir,
                            trust_for(models.champion, context.config), context.config.drift.group_by)
        if drift is not None and drift.num_rows:
            report.append((DRIFT_ROWS, "", to_text(drift)))
    return report
