"""The foreachBatch sink of the streaming job: Delta tables (exactly once) and InfluxDB, written where
the records are scored.

For each micro-batch one Spark job runs the query's plan (parse, score) and, in the same tasks,
:func:`jobs.stream.executor.write_partition`: every task builds its partition's table rows, writes
them as Delta data files and writes its InfluxDB points, and reports what it wrote. The driver gets
those reports only (one small row per data file, counts, the devices' summary): it commits each
table's files with the batch's transaction (``app_id``, batch id; :mod:`jobs.stream.delta_writer`),
merges the devices, and writes one ``batch_log`` row last, the batch's commit mark. A batch replayed
after a crash commits nothing twice (its new files stay uncommitted, for VACUUM), and InfluxDB points
are deterministic, so a replay overwrites them. A batch whose ``batch_log`` row exists is skipped
whole. InfluxDB trouble is counted, never raised: Delta output is safe either way.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from jobs.stream import table_rows
from jobs.config import AppConfig
from jobs.stream.compaction import StreamCompactor
from jobs.drift.hourly import DriftRecorder
from jobs.stream.delta_writer import DeltaAppender
from jobs.stream.executor import WRITTEN_TABLES
from jobs.stream.model_roles import ModelRoles
from schemas.tables import BATCH_LOG, DEVICES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from jobs.stream.checkpoint_guard import TablesState
    from jobs.stream.kafka_gaps import OffsetTracker
    from jobs.stream.model_roles import BatchModels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchStats:
    batch_id: int
    records: int
    quarantined: int
    anomalies: int
    influx_written: int
    influx_failed: int
    influx_error: str | None
    seconds: float
    query_id: str | None
    kafka_offsets: str | None = None  # the offset expected next per Kafka partition (jobs.stream.kafka_gaps)
    kafka_lost: int = 0               # records found expired unread before this batch


class ForeachBatchSink:
    """The callable handed to ``writeStream.foreachBatch``; holds no Spark objects between batches."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.app_id = config.stream.app_id
        self.delta = DeltaAppender(config.stream.tables, self.app_id)
        self.models = ModelRoles(config)  # which bundles score each batch (the registry's, when configured)
        # the stream's own small files, compacted in a thread of the driver (jobs.stream.compaction)
        self.compactor = StreamCompactor(config.stream.compaction, self.delta.tables)
        self.drift = DriftRecorder(config, self.delta)  # drift per hour and device group (jobs.drift)
        self._query_id: str | None = None
        self._offsets: "OffsetTracker | None" = None  # loaded from batch_log at the first batch

    def query_id(self) -> str | None:
        """The id of the query this sink writes for, from its checkpoint (there once the query runs)."""
        if self._query_id is None:
            from jobs.stream.checkpoint_guard import query_id_of

            self._query_id = query_id_of(self.config.stream.checkpoint_location)
        return self._query_id

    def tables_state(self) -> "TablesState":
        """What ``batch_log`` recorded last for this app: compared with the checkpoint at start."""
        from jobs.stream.checkpoint_guard import TablesState

        last = self.delta.last_batch(BATCH_LOG)
        recorded = self.delta.rows(BATCH_LOG, last, ["query_id"]) if last is not None else []
        return TablesState(app_id=self.app_id, last_batch=last,
                           query_id=recorded[0].get("query_id") if recorded else None)

    def _check_skip(self, batch_id: int) -> None:
        """A batch the tables hold may be skipped only when it is the last one this very query wrote
        (a replay after a crash between the tables and the checkpoint's commit); anything else means
        the checkpoint and the tables parted (see :mod:`jobs.stream.checkpoint_guard`): stop, never skip."""
        from jobs.stream.checkpoint_guard import CheckpointMismatchError

        state = self.tables_state()
        if state.last_batch == batch_id and state.query_id in (None, self.query_id()):
            return
        raise CheckpointMismatchError(
            f"batch {batch_id} of query {self.query_id()} is already in the tables under "
            f"{self.config.stream.tables_dir}, which hold batches up to {state.last_batch} of app '{self.app_id}' "
            f"written by query {state.query_id}: the checkpoint does not belong to these tables. Stopping "
            "instead of skipping the batch; see `iomt-ad stream --help`.")

    def __call__(self, batch: "DataFrame", batch_id: int) -> None:
        from functools import partial

        from jobs.stream.executor import REPORT_DDL, TaskContext, write_partition
        from jobs.stream.failpoints import BEFORE_BATCH_LOG, pause_point

        started = time.monotonic()
        if self.delta.committed(BATCH_LOG, batch_id):
            self._check_skip(batch_id)
            log.info("batch %d is already committed (batch_log): skipped", batch_id)
            return
        context = TaskContext(config=self.config, batch_id=batch_id, scored_at=datetime.now(timezone.utc),
                              influx_token=self._influx_token(), tables=self.delta.tables,
                              models=self.models.for_batch(batch_id))
        reports = batch.mapInArrow(partial(write_partition, context=context), REPORT_DDL).collect()
        written = time.monotonic() - started
        summary = BatchReports.of(reports)
        self._commit(summary, batch_id, context.models)
        if self.drift.enabled:
            self.drift.send_points(self._influx_token())
        offsets, lost = self._kafka_gaps(summary, batch_id, context.scored_at)
        if self.config.alerts.outputs.enabled():  # the incident updates, queued for the outputs (jobs.outputs)
            from jobs.outputs.outbox import queue_updates

            queue_updates(self.delta, batch_id, datetime.now(timezone.utc))
        pause_point(BEFORE_BATCH_LOG, batch_id)
        influx = summary.outcomes.get("influxdb", {"written": 0, "failed": 0, "error": None})
        stats = BatchStats(
            batch_id=batch_id, records=summary.counts["records"], quarantined=summary.counts["quarantined"],
            anomalies=summary.counts["anomalies"], influx_written=influx["written"], influx_failed=influx["failed"],
            influx_error=influx["error"], seconds=round(time.monotonic() - started, 3), query_id=self.query_id(),
            kafka_offsets=offsets.to_json(), kafka_lost=lost)
        self._log_batch(stats)
        self._offsets = offsets
        self.compactor.after_batch()  # the batch is committed: compaction, when due, runs beside the next ones
        log.debug("batch %d: parse, score and write on the executors %.2f s, commit %.2f s", batch_id, written,
                  stats.seconds - written)

    def _kafka_gaps(self, summary: "BatchReports", batch_id: int, detected_at: datetime) -> tuple["OffsetTracker", int]:
        """Kafka records that expired unread before this batch (:mod:`jobs.stream.kafka_gaps`):
        recorded in ``kafka_gaps`` and sent to InfluxDB; the offsets expected after the batch."""
        from jobs.stream.kafka_gaps import OffsetTracker, gap_rows, merge_offsets
        from schemas.tables import KAFKA_GAPS

        if self._offsets is None:
            last = self.delta.last_batch(BATCH_LOG)
            rows = self.delta.rows(BATCH_LOG, last, ["kafka_offsets"]) if last is not None else []
            self._offsets = OffsetTracker.from_json(rows[0].get("kafka_offsets") if rows else None)
        gaps, after = self._offsets.after(merge_offsets(summary.offsets))
        if not gaps:
            return after, 0
        for gap in gaps:
            log.warning("Kafka %s partition %d: %d records (offsets %d-%d) expired before the job read them",
                        gap.topic, gap.partition, gap.records, gap.from_offset, gap.to_offset)
        self.delta.append(KAFKA_GAPS, gap_rows(gaps, batch_id, self.app_id, detected_at), batch_id)
        self._send_gaps(gaps, detected_at)
        return after, sum(gap.records for gap in gaps)

    def _send_gaps(self, gaps: list, detected_at: datetime) -> None:
        """The gaps as InfluxDB points, for Grafana's alert; trouble is logged (the table has them)."""
        import pyarrow as pa

        from jobs.stream.influx_writer import InfluxWriter
        from jobs.stream.kafka_gaps import gap_lines

        token = self._influx_token()
        if token is None:
            return
        writer = InfluxWriter(self.config.influxdb, token)
        try:
            result = writer.write_table(pa.table({}), gap_lines(gaps, detected_at),
                                        deadline=time.monotonic() + self.config.influxdb.max_batch_delay_s)
        finally:
            writer.close()
        if result.failed:
            log.error("InfluxDB: the Kafka gap points were not written (%s); the kafka_gaps table has them",
                      result.error)

    def _influx_token(self) -> str | None:
        """InfluxDB's token for the executors, or None (disabled, or missing: then every point of the
        batch is counted failed with the reason, and the stream goes on)."""
        if not self.config.influxdb.enabled:
            return None
        from jobs.config import ConfigError
        from jobs.stream.influx_writer import influx_token

        try:
            return influx_token(self.config.influxdb)
        except ConfigError as exc:
            log.error("%s", exc)
            return None

    def _commit(self, summary: "BatchReports", batch_id: int, models: "BatchModels | None" = None) -> None:
        """Each table's files, committed side by side (delta-rs works outside the GIL); the devices
        merged. A failure is raised once every commit has ended, so the batch is retried."""
        from concurrent.futures import ThreadPoolExecutor

        import pyarrow as pa

        from jobs.config import duration
        from jobs.stream.executor import from_text
        from jobs.stream.incident_store import commit_incidents

        devices = (table_rows.combine_devices(pa.concat_tables([from_text(t) for t in summary.devices]))
                   if summary.devices else table_rows.empty(DEVICES))
        with ThreadPoolExecutor(max_workers=len(WRITTEN_TABLES) + 1, thread_name_prefix="iomt-commit") as pool:
            futures = [pool.submit(self.delta.commit_files, name, summary.files.get(name, []), batch_id)
                       for name in WRITTEN_TABLES]
            futures.append(pool.submit(self.delta.merge_devices, DEVICES, devices, batch_id))
            # the incidents, from the alerts' summaries (jobs.stream.incident_store)
            futures.append(pool.submit(commit_incidents, self.delta, summary.incidents, batch_id,
                                       self.config.stream.incident_quiet, datetime.now(timezone.utc),
                                       duration(self.config.alerts.notify.update_every, "alerts.notify.update_every")))
            if self.drift.enabled and models is not None:  # the hour's drift figures (jobs.drift.hourly)
                futures.append(pool.submit(self.drift.commit, [from_text(t) for t in summary.drift], batch_id,
                                           models.champion))
            for future in futures:
                future.result()

    def _log_batch(self, stats: BatchStats) -> None:
        from dataclasses import asdict

        row = table_rows.batch_log({**asdict(stats), "app_id": self.app_id,
                                    "logged_at": datetime.now(timezone.utc)})
        self.delta.append(BATCH_LOG, row, stats.batch_id, skip_empty=False)
        log.info("batch %d: %d records, %d anomalies, %d quarantined, influx %d ok / %d failed, %.1f s",
                 stats.batch_id, stats.records, stats.anomalies, stats.quarantined,
                 stats.influx_written, stats.influx_failed, stats.seconds)


@dataclass
class BatchReports:
    """What the tasks of a batch reported: data files per table, writers' outcomes, counts, devices."""

    files: dict[str, list[dict]]
    outcomes: dict[str, dict]
    counts: dict[str, int]
    devices: list[str]
    incidents: list[str] = field(default_factory=list)  # each task's alert episodes (jobs.stream.incidents)
    offsets: list[list] = field(default_factory=list)  # every task's Kafka offsets (kafka_gaps.task_offsets)
    drift: list[str] = field(default_factory=list)  # each task's drift counts (jobs.drift.counts)

    @classmethod
    def of(cls, rows) -> "BatchReports":
        import json

        from jobs.stream.executor import COUNTS, DEVICE_ROWS, DRIFT_ROWS, FILE, INCIDENT_ROWS, OFFSETS, OUTCOME

        summary = cls(files={}, outcomes={}, counts={"records": 0, "anomalies": 0, "quarantined": 0}, devices=[])
        for row in rows:
            if row["kind"] == FILE:
                summary.files.setdefault(row["table"], []).append(json.loads(row["payload"]))
            elif row["kind"] == OUTCOME:
                outcome = json.loads(row["payload"])
                total = summary.outcomes.setdefault(row["table"], {"written": 0, "failed": 0, "error": None})
                total["written"] += outcome["written"]
                total["failed"] += outcome["failed"]
                total["error"] = total["error"] or outcome["error"]
            elif row["kind"] == COUNTS:
                for key, value in json.loads(row["payload"]).items():
                    summary.counts[key] += value
            elif row["kind"] == DEVICE_ROWS:
                summary.devices.append(row["payload"])
            elif row["kind"] == INCIDENT_ROWS:
                summary.incidents.append(row["payload"])
            elif row["kind"] == OFFSETS:
                summary.offsets.extend(json.loads(row["payload"]))
            elif row["kind"] == DRIFT_ROWS:
                summary.drift.append(row["payload"])
        return summary


def make_foreach_batch(config: AppConfig) -> ForeachBatchSink:
    return ForeachBatchSink(config)
