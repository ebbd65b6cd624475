"""Compaction while the stream runs: every ``stream.compaction.every``, once a batch is committed,
a thread of the driver bin-packs the small files of the tables only the stream appends to.

Each micro-batch adds a data file per task to each table, thousands an hour. Left alone, every
reader of a table (the dashboard, analysts), every commit and every Delta checkpoint pays for all of
them: over a soak hour the driver's commit work and the dashboard's memory grew with them.

delta-rs's ``optimize.compact`` does it: files below ``target_file_mb`` are merged into files of
about that size, larger ones are left alone (so a table's big files are not rewritten again and
again). Its commit is a compaction (no data change), which delta-rs commits beside the stream's
appends (a conditional PUT on an object store, checked for conflicts: appends never conflict with
it), so it runs in its own thread and no batch waits for it. Spark's OPTIMIZE was measured first,
between batches: on 2 loaded cores it took 128-158 s for four tables every 10 minutes, most of it
Spark's fixed cost per table, and stalled the stream that long; ``iomt-ad maintain`` keeps it for
the daily run over every table with VACUUM.

The files are read and written by the driver's process, on one thread (``max_concurrent_tasks``
1). On a cluster at rates where that is too much for the driver, turn it off (``every: "0"``) and schedule ``iomt-ad maintain``, whose OPTIMIZE runs on
the executors. Only the tables the stream alone appends to are compacted (not ``devices`` or
``incidents``, which the driver merges into, nor the tables analysts or other commands write). A
failed compaction is logged and tried again at the next interval; nothing is lost either way.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from schemas.tables import ALERTS, BATCH_LOG, FLOWS_SCORED, FLOWS_SHADOW, KAFKA_GAPS, OUTBOX, QUARANTINE, TRAFFIC_1M

if TYPE_CHECKING:
    from jobs.config import CompactionConfig
    from jobs.storage import TablesLocation

log = logging.getLogger(__name__)

# the tables only the stream's driver commits to, and only by appending
COMPACTED_TABLES: tuple[str, ...] = (FLOWS_SCORED, ALERTS, QUARANTINE, TRAFFIC_1M, BATCH_LOG, KAFKA_GAPS, FLOWS_SHADOW,
                                     OUTBOX)


@dataclass(frozen=True)
class CompactionRun:
    table: str
    files_removed: int
    files_added: int
    seconds: float


class StreamCompactor:
    """Starts a compaction in a thread of its own when one is due and none is running
    (:meth:`after_batch`); :meth:`compact` does the work."""

    def __init__(self, settings: "CompactionConfig", tables: "TablesLocation", clock=time.monotonic) -> None:
        self.settings = settings
        self.tables = tables
        self.clock = clock
        interval = settings.interval
        self.interval_s = interval.total_seconds() if interval is not None else None
        self._next = None if self.interval_s is None else clock() + self.interval_s
        self._thread: threading.Thread | None = None
        self.completed = 0  # compactions that ran to the end (their runs logged)

    def due(self) -> bool:
        return self._next is not None and self.clock() >= self._next and not self.running()

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def after_batch(self) -> bool:
        """Called once a batch is committed: start a compaction when one is due; whether it started."""
        if not self.due():
            return False
        self._thread = threading.Thread(target=self._run, name="iomt-compaction")
        self._thread.start()  # not a daemon: a stopping job lets its compaction finish its commit
        return True

    def wait(self, timeout: float | None = None) -> None:
        """Until the running compaction (if any) has ended."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self.compact()
            self.completed += 1
        except Exception:  # noqa: BLE001 - compaction must never stop the stream: its batches are committed
            log.exception("compaction failed; the tables keep their files and it runs again in %.0f s",
                          self.interval_s)
        finally:
            self._next = self.clock() + self.interval_s

    def compact(self) -> list[CompactionRun]:
        """Compact each existing table of :data:`COMPACTED_TABLES` once."""
        runs = []
        for name in COMPACTED_TABLES:
            run = self._compact_table(name)
            if run is not None:
                runs.append(run)
        log.info("compaction: %d small files into %d in %.1f s (%s)", sum(r.files_removed for r in runs),
                 sum(r.files_added for r in runs), sum(r.seconds for r in runs),
                 ", ".join(f"{r.table} {r.files_removed}->{r.files_added}" for r in runs if r.files_removed) or "nothing to do")
        return runs

    def _compact_table(self, name: str) -> CompactionRun | None:
        from deltalake import DeltaTable

        uri, options = self.tables.uri(name), self.tables.storage_options()
        if not DeltaTable.is_deltatable(uri, storage_options=options):
            return None
        started = time.monotonic()
        metrics = DeltaTable(uri, storage_options=options).optimize.compact(
            target_size=self.settings.target_file_mb * 2**20, max_concurrent_tasks=1)
        return CompactionRun(name, int(metrics["numFilesRemoved"]), int(metrics["numFilesAdded"]),
                             round(time.monotonic() - started, 3))
