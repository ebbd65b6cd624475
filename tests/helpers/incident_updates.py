"""Incident rows written by hand (as the stream's driver writes them) and queued in a real outbox,
for the alert outputs' tests; and a parser of CEF written from the CEF specification."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from jobs.outputs.outbox import queue_updates
from jobs.stream.delta_writer import DeltaAppender
from jobs.stream.incidents import incident_rows
from schemas.tables import INCIDENTS

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
HOSTILE_EXPLANATION = "rate=9000 | syn\\flag high\nsecond line = odd"


def incident(n: int, batch_id: int, state: str = "open", opened_batch: int | None = None, **extra) -> dict[str, Any]:
    return {"incident_id": f"{n:032x}", "subject": f"mac:02:00:00:00:00:{n:02x}", "category": "DDoS",
            "device_id": f"mac:02:00:00:00:00:{n:02x}", "device_mac": f"02:00:00:00:00:{n:02x}",
            "device_ip": f"10.0.0.{n}", "device_vendor": "Example Medical | Inc", "source_id": None,
            "predicted_classes": ["DDoS-SYN_Flood", "DDoS-UDP_Flood"], "first_seen": T0,
            "last_seen": T0 + timedelta(minutes=n), "alerts": 10 * n, "max_severity": "high",
            "max_ensemble_score": 4.5, "explanation": HOSTILE_EXPLANATION, "model_version": "v3", "state": state,
            "closed_at": T0 + timedelta(minutes=n + 10) if state == "closed" else None,
            "opened_batch": batch_id if opened_batch is None else opened_batch, "batch_id": batch_id,
            "updated_at": T0 + timedelta(minutes=n, seconds=batch_id),
            # an update worth a message (jobs.stream.incidents rule 4) unless a test says otherwise
            "notified_batch": batch_id, "notified_severity": "high", "notified_seen": T0 + timedelta(minutes=n), **extra}


def queue_batches(tables: Path, batches: dict[int, list[dict[str, Any]]], app_id: str = "test-app") -> DeltaAppender:
    """Each batch's incidents merged into ``incidents``, then queued, as the sink does."""
    appender = DeltaAppender(tables, app_id)
    for batch_id, rows in sorted(batches.items()):
        appender.upsert(INCIDENTS, incident_rows(rows), batch_id, key="incident_id")
        queue_updates(appender, batch_id, T0 + timedelta(hours=1, seconds=batch_id))
    return appender


def parse_cef(text: str) -> tuple[list[str], dict[str, str]]:
    """(the 7 header fields after ``CEF:0``... as unescaped text, the extension as unescaped pairs)."""
    assert text.startswith("CEF:"), text
    header, rest, position = [], text, 0
    for _ in range(7):
        match = re.match(r"((?:[^|\\]|\\.)*)\|", rest[position:])
        assert match, f"CEF header field {len(header)} missing in {text!r}"
        header.append(re.sub(r"\\(.)", r"\1", match.group(1)))
        position += match.end()
    extension = rest[position:]
    pairs: dict[str, str] = {}
    # a key is letters/digits before an unescaped '='; its value runs to the next ' key='
    for match in re.finditer(r"(\w+)=((?:[^=\\]|\\.)*?)(?= \w+=|$)", extension):
        value = match.group(2).replace("\\n", "\n").replace("\\r", "\r")
        pairs[match.group(1)] = re.sub(r"\\([\\=])", r"\1", value)
    return header, pairs
