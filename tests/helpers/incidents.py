"""Incidents on real Delta tables, written as the stream writes them: the alerts with its
DeltaAppender, the incidents with commit_incidents from the tasks' episodes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

import pyarrow as pa

from jobs.storage import TablesLocation
from jobs.stream import incidents
from jobs.stream.delta_writer import DeltaAppender
from jobs.stream.executor import to_text
from jobs.stream.incident_store import commit_incidents
from jobs.stream.table_rows import utc_date
from schemas.tables import ALERTS
from tests.unit.test_incidents import alerts

QUIET = timedelta(minutes=10)
Tables = TypeVar("Tables", Path, TablesLocation)


def write_incidents(tables: Tables) -> Tables:
    """Two batches: a DDoS incident of mac:a (3 alerts, the worst critical), a Recon one of mac:b
    (1 alert), and a DDoS one of mac:a that closed before (1 alert, 40 minutes earlier)."""
    appender = DeltaAppender(tables, "app-1")
    batches = [alerts((-40, "mac:a", "s", "DDoS", "DDoS-SYN", "low", 2)),
               alerts((0, "mac:a", "s", "DDoS", "DDoS-SYN", "medium", 4), (2, "mac:a", "s", "DDoS", "DDoS-UDP", "critical", 30),
                      (3, "mac:b", "s", "Recon", "Recon-Port_Scan", "low", 1.5),
                      (4, "mac:a", "s", "DDoS", "DDoS-SYN", "high", 9))]
    for batch_id, rows in enumerate(batches):
        rows = rows.set_column(rows.schema.get_field_index("event_date"), "event_date", utc_date(rows["event_time"]))
        rows = rows.set_column(rows.schema.get_field_index("record_id"), "record_id",
                               pa.array([f"r{batch_id}-{i}" for i in range(rows.num_rows)]))
        assert appender.append(ALERTS, rows, batch_id)
        latest = max(rows["event_time"].to_pylist())
        assert commit_incidents(appender, [to_text(incidents.episodes(rows, QUIET, latest))], batch_id, QUIET,
                                datetime.now(timezone.utc))
    return tables
