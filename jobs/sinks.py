"""The foreachBatch sink of the streaming job: Delta tables (exactly once) and InfluxDB.

For each micro-batch: persist it once; split bad records (quarantine) from good ones; score the
good ones (cached); then, side by side, append to ``flows_scored``, ``alerts``, ``quarantine`` and
``traffic_1m`` with ``txnAppId`` + ``txnVersion`` = batch id, so a batch replayed after a crash writes
nothing twice, and write InfluxDB points (deterministic, so a replay overwrites them); last, one
``batch_log`` row, the batch's commit mark.
InfluxDB trouble is logged and counted, never raised: Delta output is already safe.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.config import AppConfig
from jobs.transforms import INGEST_TIME, OFFSET, ORIGIN, PARTITION, QUARANTINE_REASON, RAW_VALUE, score
from schemas.tables import ALERTS, BATCH_LOG, FLOWS_SCORED, QUARANTINE, TABLES, TRAFFIC_1M

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

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


def table_path(tables_dir: Path, name: str) -> str:
    return str(tables_dir / name)


def append_delta(frame: "DataFrame", tables_dir: Path, name: str, app_id: str, batch_id: int) -> None:
    """Append idempotently: Delta skips a (txnAppId, txnVersion) it has already committed."""
    writer = (frame.write.format("delta").mode("append")
              .option("txnAppId", app_id).option("txnVersion", batch_id)
              .option("mergeSchema", "false"))
    partition_by = TABLES[name].partition_by
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(table_path(tables_dir, name))


def quarantine_rows(batch: "DataFrame", batch_id: int) -> "DataFrame":
    from pyspark.sql import functions as F

    return batch.filter(F.col(QUARANTINE_REASON).isNotNull()).select(
        F.col("record_id"), F.col(QUARANTINE_REASON).alias("reason"), F.col(RAW_VALUE).alias("raw_value"),
        F.col(ORIGIN).alias("origin"), F.col(PARTITION).alias("partition"), F.col(OFFSET).alias("offset"),
        F.col(INGEST_TIME).alias("ingest_time"), F.lit(batch_id).cast("long").alias("batch_id"),
        F.current_timestamp().alias("quarantined_at"),
        F.to_date(F.coalesce(F.col(INGEST_TIME), F.current_timestamp())).alias("ingest_date"),
    )


def scored_rows(batch: "DataFrame", bundle_dir: str, batch_id: int) -> "DataFrame":
    from pyspark.sql import functions as F

    good = batch.filter(F.col(QUARANTINE_REASON).isNull()).drop(QUARANTINE_REASON, RAW_VALUE)
    return (score(good, bundle_dir)
            .withColumn("batch_id", F.lit(batch_id).cast("long"))
            .withColumn("scored_at", F.current_timestamp())
            .withColumn("event_date", F.to_date("event_time")))


def traffic_per_minute(scored: "DataFrame", batch_id: int) -> "DataFrame":
    from pyspark.sql import functions as F

    return (scored.groupBy(F.date_trunc("minute", "event_time").alias("minute"), "protocol",
                           "predicted_class", "predicted_category", "is_anomaly", "model_version")
            .agg(F.count("*").alias("records"), F.avg("ensemble_score").alias("mean_ensemble_score"),
                 F.avg("rate").alias("mean_rate"), F.sum("tot_size").alias("sum_tot_size"))
            .withColumn("batch_id", F.lit(batch_id).cast("long")))


class ForeachBatchSink:
    """The callable handed to ``writeStream.foreachBatch``; holds no Spark objects between batches."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.tables_dir = config.stream.tables_dir
        self.app_id = config.stream.app_id
        self.bundle_dir = str(config.stream.model_dir)
        self._influx = None
        self.influx_failures = 0  # points not written to InfluxDB since start
        self._existing_tables: set[str] = set()  # tables known to exist (an empty batch skips them)

    def influx(self):
        if self._influx is None and self.config.influxdb.enabled:
            from jobs.influx_sink import InfluxWriter

            self._influx = InfluxWriter(self.config.influxdb)
        return self._influx

    def __call__(self, batch: "DataFrame", batch_id: int) -> None:
        from pyspark.sql import functions as F

        started = time.monotonic()
        batch.persist()
        try:
            steps: dict[str, float] = {}
            mark = time.monotonic()

            def step(name: str) -> None:
                nonlocal mark
                now = time.monotonic()
                steps[name] = round(now - mark, 2)
                mark = now

            quarantined = quarantine_rows(batch, batch_id)
            scored = scored_rows(batch, self.bundle_dir, batch_id).persist()
            try:
                counts = scored.agg(F.count("*").alias("n"),
                                    F.sum(F.col("is_anomaly").cast("int")).alias("a")).first()
                records, anomalies = int(counts["n"]), int(counts["a"] or 0)
                n_quarantined = quarantined.count()
                step("parse+score")
                influx_result = self._write_outputs(scored, quarantined, batch_id, records, anomalies,
                                                    n_quarantined)
                step("tables+influxdb")
            finally:
                scored.unpersist()
            stats = BatchStats(
                batch_id=batch_id, records=records, quarantined=n_quarantined, anomalies=anomalies,
                influx_written=influx_result.written if influx_result else 0,
                influx_failed=influx_result.failed if influx_result else 0,
                influx_error=influx_result.error if influx_result else None,
                seconds=round(time.monotonic() - started, 3),
            )
            self._log_batch(batch, stats)
            step("batch_log")
            log.debug("batch %d step seconds: %s", batch_id, steps)
        finally:
            batch.unpersist()

    def _write_outputs(self, scored: "DataFrame", quarantined: "DataFrame", batch_id: int, records: int,
                       anomalies: int, n_quarantined: int):
        """Write the four tables and InfluxDB at once (Spark runs the jobs side by side; each Delta
        commit spends most of its time on the driver). A table is skipped for a batch that has no
        rows for it, once the table exists. Any Delta failure is raised after all writes ended, so
        the batch is retried from the checkpoint (the writes are idempotent)."""
        from concurrent.futures import ThreadPoolExecutor

        from pyspark.sql import functions as F

        writes: dict[str, tuple[DataFrame, int]] = {
            FLOWS_SCORED: (scored, records),
            ALERTS: (scored.filter(F.col("is_anomaly")), anomalies),
            QUARANTINE: (quarantined, n_quarantined),
            TRAFFIC_1M: (traffic_per_minute(scored, batch_id), records),
        }
        spark = scored.sparkSession
        with ThreadPoolExecutor(max_workers=len(writes) + 1, thread_name_prefix="iomt-sink") as pool:
            futures = {name: pool.submit(self._append_if_needed, spark, frame, name, rows, batch_id)
                       for name, (frame, rows) in writes.items()}
            influx = pool.submit(self._write_influx, scored, records) if records else None
            for future in futures.values():
                future.result()  # a failure propagates once the pool's exit has waited for every write
            return influx.result() if influx else None

    def _append_if_needed(self, spark, frame: "DataFrame", name: str, rows: int, batch_id: int) -> None:
        if rows == 0 and self._table_exists(spark, name):
            return
        append_delta(frame, self.tables_dir, name, self.app_id, batch_id)
        self._existing_tables.add(name)

    def _table_exists(self, spark, name: str) -> bool:
        if name not in self._existing_tables:
            from delta.tables import DeltaTable

            if DeltaTable.isDeltaTable(spark, table_path(self.tables_dir, name)):
                self._existing_tables.add(name)
        return name in self._existing_tables

    def _write_influx(self, scored: "DataFrame", records: int):
        try:
            writer = self.influx()
            if writer is None:
                return None
            result = writer.write_frame(scored)
        except Exception as exc:  # noqa: BLE001 - InfluxDB must never stop the stream
            from jobs.influx_sink import InfluxWriteResult

            log.error("InfluxDB sink failed for this batch: %s", exc)
            result = InfluxWriteResult(written=0, failed=records, error=f"{type(exc).__name__}: {exc}"[:500])
        if result.failed:
            self.influx_failures += result.failed
            log.error("InfluxDB: %d points failed in this batch (%d since start)",
                      result.failed, self.influx_failures)
        return result

    def _log_batch(self, batch: "DataFrame", stats: BatchStats) -> None:
        from pyspark.sql import functions as F

        spark = batch.sparkSession
        row = spark.createDataFrame(
            [(stats.batch_id, stats.records, stats.quarantined, stats.anomalies, stats.influx_written,
              stats.influx_failed, stats.influx_error, stats.seconds, self.config.stream.app_id)],
            "batch_id long, records long, quarantined long, anomalies long, influx_written long, "
            "influx_failed long, influx_error string, seconds double, app_id string",
        ).withColumn("logged_at", F.current_timestamp())
        append_delta(row, self.tables_dir, BATCH_LOG, self.app_id, stats.batch_id)
        log.info("batch %d: %d records, %d anomalies, %d quarantined, influx %d ok / %d failed, %.1f s",
                 stats.batch_id, stats.records, stats.anomalies, stats.quarantined,
                 stats.influx_written, stats.influx_failed, stats.seconds)


def make_foreach_batch(config: AppConfig) -> Callable[["DataFrame", int], None]:
    return ForeachBatchSink(config)
