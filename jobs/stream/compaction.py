"""Compaction while the stream runs: every ``stream.compaction.every`` the sink, once a batch is
committed, runs Delta's OPTIMIZE on the tables only the stream appends to.

Each micro-batch adds a data file per task to each table, thousands an hour. Left alone, every
reader of a table (the dashboard, analysts), every commit and every Delta checkpoint pays for all of
them: over a soak hour the driver's commit work and the dashboard's memory grew with them. OPTIMIZE
bin-packs the small files into few (its work runs on the executors: no record passes through the
driver), and files from ``min_file_mb`` on are left alone, so a table's large files are not
rewritten each time.

It runs in the sink's own thread, between two batches, never beside the stream's commits: Spark's
S3 log store checks then writes, so a concurrent commit to the same table on an object store could
be lost. Only the tables the stream alone appends to are compacted (not ``devices`` or ``incidents``,
which the driver merges into, nor the tables analysts or other commands write). A failed compaction
is logged and tried again next time; the batch is committed before it starts, so nothing is lost
and nothing waits on it but the next batch.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from schemas.tables import ALERTS, BATCH_LOG, FLOWS_SCORED, FLOWS_SHADOW, KAFKA_GAPS, OUTBOX, QUARANTINE, TRAFFIC_1M

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.config import CompactionConfig
    from jobs.storage import TablesLocation

log = logging.getLogger(__name__)

# the tables only the stream's driver commits to, and only by appending
COMPACTED_TABLES: tuple[str, ...] = (FLOWS_SCORED, ALERTS, QUARANTINE, TRAFFIC_1M, BATCH_LOG, KAFKA_GAPS, FLOWS_SHADOW,
                                     OUTBOX)
MIN_FILE_SIZE = "spark.databricks.delta.optimize.minFileSize"
MAX_FILE_SIZE = "spark.databricks.delta.optimize.maxFileSize"


@dataclass(frozen=True)
class CompactionRun:
    table: str
    files_removed: int
    files_added: int
    seconds: float


class StreamCompactor:
    """Decides when the next compaction is due and runs it (:meth:`maybe_compact`, after a batch)."""

    def __init__(self, settings: "CompactionConfig", tables: "TablesLocation",
                 clock=time.monotonic) -> None:
        self.settings = settings
        self.tables = tables
        self.clock = clock
        interval = settings.interval
        self.interval_s = interval.total_seconds() if interval is not None else None
        self._next = None if self.interval_s is None else clock() + self.interval_s

    def due(self) -> bool:
        return self._next is not None and self.clock() >= self._next

    def maybe_compact(self, spark: "SparkSession") -> list[CompactionRun]:
        """Compact the stream's tables when the interval has passed since the last time (or since the
        start); never raises: a failure is logged and the next interval tries again."""
        if not self.due():
            return []
        try:
            return self.compact(spark)
        except Exception:  # noqa: BLE001 - compaction must never stop the stream: its batch is committed
            log.exception("compaction failed; the tables keep their files and it runs again in %.0f s",
                          self.interval_s)
            return []
        finally:
            self._next = self.clock() + self.interval_s

    def compact(self, spark: "SparkSession") -> list[CompactionRun]:
        """OPTIMIZE each existing table of :data:`COMPACTED_TABLES` once."""
        from jobs.batch.sql import delta_tables

        found = delta_tables(self.tables)
        settings = {MIN_FILE_SIZE: str(self.settings.min_file_mb * 2**20),
                    MAX_FILE_SIZE: str(self.settings.max_file_mb * 2**20)}
        previous = {key: spark.conf.get(key, None) for key in settings}
        for key, value in settings.items():
            spark.conf.set(key, value)
        runs = []
        try:
            for name in COMPACTED_TABLES:
                if name in found:
                    runs.append(_optimize(spark, name, found[name]))
        finally:
            for key, value in previous.items():
                if value is None:
                    spark.conf.unset(key)
                else:
                    spark.conf.set(key, value)
        removed = sum(run.files_removed for run in runs)
        log.info("compaction: %d small files into %d in %.1f s (%s)", removed, sum(run.files_added for run in runs),
                 sum(run.seconds for run in runs),
                 ", ".join(f"{run.table} {run.files_removed}->{run.files_added}" for run in runs if run.files_removed))
        return runs


def _optimize(spark: "SparkSession", name: str, path: str) -> CompactionRun:
    from jobs.batch.maintain import quoted_table

    started = time.monotonic()
    metrics = spark.sql(f"OPTIMIZE {quoted_table(path)}").first()["metrics"]
    return CompactionRun(name, int(metrics["numFilesRemoved"]), int(metrics["numFilesAdded"]),
                         round(time.monotonic() - started, 3))
