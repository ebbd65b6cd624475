"""The ``incidents`` table, written by the driver once per batch: the batch's episodes (reported by
its tasks, :func:`jobs.stream.incidents.episodes`) merged into the open incidents read from the table
(:func:`jobs.stream.incidents.update`), and the changed incidents merged into the table by
``incident_id`` in one commit that carries the batch's transaction (``app_id``, batch id), as the
``devices`` table is. A batch replayed after a crash finds its transaction in the table and changes
nothing: no alert is counted twice.

The open incidents are read from the table once, then kept by the driver with the table version its
own commit made: the next batch reads the table again only when another commit came in between
(a restarted job, a compaction), so the driver's work per batch does not grow with the table's
closed incidents. Only this job's driver changes the incidents, one batch after the other.
"""
from __future__ import annotations

import logging
import weakref
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from jobs.stream.delta_writer import DeltaAppender
from jobs.stream.incidents import OPEN, batch_stream_time, incident_rows, update
from schemas.tables import INCIDENTS

log = logging.getLogger(__name__)


# per appender (one per running query): the table version of the driver's last commit, and the
# incidents open after it (rows as the table gives them)
_OPEN: "weakref.WeakKeyDictionary[DeltaAppender, tuple[int, list[dict[str, Any]]]]" = weakref.WeakKeyDictionary()


def commit_incidents(appender: DeltaAppender, payloads: list[str], batch_id: int, quiet: timedelta,
                     updated_at: datetime, notify_every: timedelta = timedelta(0)) -> bool:
    """Open, extend and close incidents with a batch's episodes (``payloads``: the tasks' reports);
    False when the table already holds the batch or nothing changed."""
    from jobs.stream.executor import from_text

    version, holds = appender.version_holding(INCIDENTS, batch_id)
    if holds:
        log.info("%s already holds batch %d of %s: skipped", INCIDENTS, batch_id, appender.app_id)
        return False
    tables = [from_text(text) for text in payloads]
    episodes = [row for table in tables for row in table.to_pylist()]
    current = open_incidents(appender, version)
    rows = update(current, episodes, batch_stream_time(tables), quiet, batch_id, updated_at, notify_every)
    changed = incident_rows(rows)
    if changed.num_rows:
        log.info("batch %d: %d incidents opened or changed (%d open)", batch_id, changed.num_rows,
                 sum(1 for row in rows if row["state"] == OPEN))
    committed = appender.upsert(INCIDENTS, changed, batch_id, key="incident_id")
    if version is not None:  # the version this commit made; any other commit makes the next batch read
        changed_ids = set(changed.column("incident_id").to_pylist())
        still_open = [row for row in current if row["incident_id"] not in changed_ids]
        still_open += [row for row in changed.to_pylist() if row["state"] == OPEN]
        _OPEN[appender] = (version + int(committed), still_open)
    return committed


def open_incidents(appender: DeltaAppender, version: int | None) -> list[dict[str, Any]]:
    """The open incidents of the table at ``version``: kept from this appender's last commit when
    the table is still at the version that commit made, read otherwise."""
    if version is None:
        return []
    kept = _OPEN.get(appender)
    if kept is not None and kept[0] == version:
        return [dict(row) for row in kept[1]]
    table = appender.read(INCIDENTS)
    return table.filter(pc.equal(table["state"], OPEN)).to_pylist() if table is not None else []


def read_incidents(appender: DeltaAppender) -> pa.Table | None:
    """Every incident (tests, tools)."""
    return appender.read(INCIDENTS)
