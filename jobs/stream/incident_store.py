"""The ``incidents`` table, written by the driver once per batch: the batch's episodes (reported by
its tasks, :func:`jobs.stream.incidents.episodes`) merged into the open incidents read from the table
(:func:`jobs.stream.incidents.update`), and the changed incidents merged into the table by
``incident_id`` in one commit that carries the batch's transaction (``app_id``, batch id), as the
``devices`` table is. A batch replayed after a crash finds its transaction in the table and changes
nothing: no alert is counted twice. The driver reads the table whole each batch (incidents are few;
closed ones could be left out by a partition or a filter once the table grows). The read and the merge both see the table as the previous batch
left it, since only this job's driver writes it, one batch after the other.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from jobs.stream.delta_writer import DeltaAppender
from jobs.stream.incidents import OPEN, batch_stream_time, incident_rows, update
from schemas.tables import INCIDENTS

log = logging.getLogger(__name__)


def commit_incidents(appender: DeltaAppender, payloads: list[str], batch_id: int, quiet: timedelta,
                     updated_at: datetime, notify_every: timedelta = timedelta(0)) -> bool:
    """Open, extend and close incidents with a batch's episodes (``payloads``: the tasks' reports);
    False when the table already holds the batch or nothing changed."""
    from jobs.stream.executor import from_text

    if appender.committed(INCIDENTS, batch_id):
        log.info("%s already holds batch %d of %s: skipped", INCIDENTS, batch_id, appender.app_id)
        return False
    tables = [from_text(text) for text in payloads]
    episodes = [row for table in tables for row in table.to_pylist()]
    table = appender.read(INCIDENTS)
    current = table.filter(pc.equal(table["state"], OPEN)).to_pylist() if table is not None else []
    rows = update(current, episodes, batch_stream_time(tables), quiet, batch_id, updated_at, notify_every)
    changed = incident_rows(rows)
    if changed.num_rows:
        log.info("batch %d: %d incidents opened or changed (%d open)", batch_id, changed.num_rows,
                 sum(1 for row in rows if row["state"] == OPEN))
    return appender.upsert(INCIDENTS, changed, batch_id, key="incident_id")


def read_incidents(appender: DeltaAppender) -> pa.Table | None:
    """Every incident (tests, tools)."""
    return appender.read(INCIDENTS)
