"""The ``outbox`` table: the incident updates worth a message (opened, closed, more severe, or
``alerts.notify.update_every`` since the last one: :mod:`jobs.stream.incidents` rule 4), queued by the
streaming job's driver once per batch, after the batch's incidents are committed and before its
``batch_log`` row (its commit mark).

An update is the incident's row as the batch left it, with ``update_id`` = ``<incident_id>:<batch_id>``
and ``change`` (``opened``, ``updated`` or ``closed``). The append carries the batch's transaction
(``app_id``, batch id), like every table the job writes: a batch replayed after a crash reads the
same incident rows (those whose ``batch_id`` is the batch's) and queues nothing twice; the update id
is the same on every replay, so a receiver can drop a duplicate delivery by it.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Final

import pyarrow as pa

from jobs.stream.delta_writer import DeltaAppender
from schemas.tables import INCIDENTS, OUTBOX, TABLES

log = logging.getLogger(__name__)

OPENED: Final[str] = "opened"
UPDATED: Final[str] = "updated"
CLOSED: Final[str] = "closed"


def update_id(incident_id: str, batch_id: int) -> str:
    """The stable id of an incident's update by a batch (the same whenever the batch is replayed)."""
    return f"{incident_id}:{batch_id}"


def change_of(incident: dict[str, Any]) -> str:
    """``closed`` when the batch closed it, ``opened`` when the batch opened it, else ``updated``."""
    if incident.get("state") == "closed":
        return CLOSED
    return OPENED if incident.get("opened_batch") == incident.get("batch_id") else UPDATED


def outbox_rows(incidents: list[dict[str, Any]], queued_at: datetime) -> pa.Table:
    """The ``outbox`` rows of a batch's changed incidents."""
    spec = TABLES[OUTBOX]
    rows = [{**incident, "update_id": update_id(incident["incident_id"], incident["batch_id"]),
             "change": change_of(incident), "queued_at": queued_at} for incident in incidents]
    return pa.Table.from_pylist([{name: row.get(name) for name in spec.column_names} for row in rows],
                                schema=spec.arrow_schema())


def queue_updates(appender: DeltaAppender, batch_id: int, queued_at: datetime) -> int:
    """Queue the incidents batch ``batch_id`` changed (already committed to ``incidents``) in the
    outbox, once; how many were queued (0 when the outbox already holds the batch)."""
    if appender.committed(OUTBOX, batch_id):
        log.info("%s already holds batch %d of %s: skipped", OUTBOX, batch_id, appender.app_id)
        return 0
    changed = appender.rows(INCIDENTS, batch_id, list(TABLES[INCIDENTS].column_names))
    # only the updates worth a message (jobs.stream.incidents rule 4: opened, closed, more severe, or
    # alerts.notify.update_every since the last one); the incidents table has every change
    rows = outbox_rows([row for row in changed if row.get("notified_batch") == batch_id], queued_at)
    appender.append(OUTBOX, rows, batch_id)
    if rows.num_rows:
        log.info("batch %d: %d incident updates queued for the outputs", batch_id, rows.num_rows)
    return rows.num_rows
