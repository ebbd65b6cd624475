"""Alerts grouped into incidents: per subject (the device; where no device is known, the
``source_id`` up to its first ``:``, as InfluxDB's ``source`` tag, so a replayed file is one
subject) and attack category (``predicted_category``). Pure Arrow/Python: no Spark, no I/O.

The rules, all on event time:

1. An incident opens with an alert of a (subject, category) that has no open incident, and takes
   every later alert of that pair that comes at most ``stream.incident_quiet_time`` after its last
   alert (or at most that long before its first one: alerts arrive out of order).
2. It closes when the stream's time passes its last alert plus the quiet time. The stream's time is
   the latest ``event_time`` of the records (alerts or not) of the batch being written: an incident
   closes in the first batch that shows the quiet time has passed. With no batch (no records) nothing
   closes; ``closed_at`` is its last alert plus the quiet time, whenever the batch that saw it ran.
3. A closed incident is never reopened: an alert after it opens a new one. An alert older than the
   open incident of its pair by more than the quiet time (late data) forms its own incident, closed
   at once: a later one of that pair exists already.
4. The outputs hear of an incident when it opens, when it closes, when its ``max_severity`` rises
   above what they were last told, and otherwise at most once per ``alerts.notify.update_every`` of
   its alerts' time (``notified_batch``, ``notified_severity`` and ``notified_seen`` record the last
   update queued): an attack that lasts an hour is a handful of messages, not one per batch.
5. An incident's ``alerts`` count every alert once; ``max_severity`` is the highest severity of its
   alerts and ``explanation`` that of its most severe alert (the highest ``ensemble_score`` among
   those of that severity); ``predicted_classes`` the classes of its alerts; the device's addresses
   and ``model_version`` those of its latest alert.

Each task summarises its partition's alerts as episodes (:func:`episodes`: runs of one pair's alerts
with no gap longer than the quiet time), a few rows whatever the alert count; the driver merges the
batch's episodes into the open incidents (:func:`update`) and writes the changed incidents
(:mod:`jobs.stream.incident_store`). Splitting at gaps longer than the quiet time in each task and
merging the episodes again on the driver gives the same incidents as one pass over all alerts.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.tables import EXPLANATION, INCIDENTS, STRING, TIMESTAMP

OPEN: Final[str] = "open"
CLOSED: Final[str] = "closed"
SEVERITY_RANK: Final[dict[str, int]] = {"none": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
STREAM_TIME: Final[bytes] = b"stream_time"  # the episodes' schema metadata: the partition's latest event time
DEVICE_FIELDS: Final[tuple[str, ...]] = ("device_id", "device_mac", "device_ip", "device_vendor", "source_id")

# what a task reports per episode (one pair's run of alerts in its partition)
EPISODE_SCHEMA: Final[pa.Schema] = pa.schema([
    ("subject", STRING), ("category", STRING), *((name, STRING) for name in DEVICE_FIELDS),
    ("first_seen", TIMESTAMP), ("last_seen", TIMESTAMP), ("alerts", pa.int64()), ("max_severity", STRING),
    ("max_ensemble_score", pa.float64()), (EXPLANATION, STRING), ("predicted_classes", pa.list_(STRING)),
    ("model_version", STRING)])


def subjects(alerts: pa.Table) -> pa.Array:
    """Each alert's subject: its ``device_id``, or else its ``source_id`` up to the first ``:``."""
    source = pc.list_element(pc.split_pattern(pc.fill_null(alerts["source_id"], ""), ":", max_splits=1), 0)
    device = alerts["device_id"]
    known = pc.fill_null(pc.not_equal(device, ""), False)
    return pc.if_else(known, device, source)


def _micros(times: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return pc.cast(pc.cast(times, TIMESTAMP), pa.int64()).to_numpy(zero_copy_only=False)


def stream_time(scored: pa.Table) -> datetime | None:
    """The latest ``event_time`` of a partition's scored records (None without records)."""
    return pc.max(scored["event_time"]).as_py() if scored.num_rows else None


def episodes(alerts: pa.Table, quiet: timedelta, latest: datetime | None) -> pa.Table:
    """A partition's alerts (``alerts`` table rows) as episodes (:data:`EPISODE_SCHEMA`), with
    ``latest`` (its records' latest event time) in the schema metadata."""
    metadata = {STREAM_TIME: (latest.isoformat() if latest is not None else "").encode()}
    rows = alerts.filter(pc.is_valid(alerts["event_time"]))
    if rows.num_rows == 0:
        return EPISODE_SCHEMA.empty_table().replace_schema_metadata(metadata)
    keyed = rows.append_column("_subject", subjects(rows)).append_column(
        "_category", pc.fill_null(rows["predicted_category"], "unknown"))
    keyed = keyed.sort_by([("_subject", "ascending"), ("_category", "ascending"), ("event_time", "ascending")])
    times = _micros(keyed["event_time"])
    subject = keyed["_subject"].to_numpy(zero_copy_only=False)
    category = keyed["_category"].to_numpy(zero_copy_only=False)
    starts = np.ones(len(times), dtype=bool)
    starts[1:] = (subject[1:] != subject[:-1]) | (category[1:] != category[:-1]) | (
        np.diff(times) > quiet // timedelta(microseconds=1))
    bounds = np.append(np.flatnonzero(starts), len(times))
    rank = np.array([SEVERITY_RANK.get(s, 0) for s in keyed["severity"].to_pylist()])
    score = np.nan_to_num(pc.fill_null(keyed["ensemble_score"], np.nan).to_numpy(zero_copy_only=False), nan=-np.inf)
    columns = {name: keyed[name].to_pylist() for name in
               (*DEVICE_FIELDS, "event_time", "severity", EXPLANATION, "predicted_class", "model_version")}
    out: list[dict[str, Any]] = []
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        worst = a + int(np.lexsort((-np.arange(a, b), score[a:b], rank[a:b]))[-1])  # severity, score, earliest
        out.append({"subject": subject[a], "category": category[a],
                    **{name: columns[name][b - 1] for name in DEVICE_FIELDS},
                    "first_seen": columns["event_time"][a], "last_seen": columns["event_time"][b - 1],
                    "alerts": b - a, "max_severity": columns["severity"][worst],
                    "max_ensemble_score": float(score[worst]) if np.isfinite(score[worst]) else None,
                    EXPLANATION: columns[EXPLANATION][worst],
                    "predicted_classes": sorted({c for c in columns["predicted_class"][a:b] if c is not None}),
                    "model_version": columns["model_version"][b - 1]})
    return pa.Table.from_pylist(out, schema=EPISODE_SCHEMA).replace_schema_metadata(metadata)


def batch_stream_time(tables: Iterable[pa.Table]) -> datetime | None:
    """The latest of the tasks' stream times (their episodes' metadata)."""
    times = [datetime.fromisoformat(t.schema.metadata[STREAM_TIME].decode()) for t in tables
             if t.schema.metadata and t.schema.metadata.get(STREAM_TIME)]
    return max(times) if times else None


def incident_id(subject: str, category: str, first_seen: datetime) -> str:
    """Fixed when the incident opens (a replayed batch opens it with the same id)."""
    key = f"{subject}\x1f{category}\x1f{first_seen.isoformat()}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


def _more_severe(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether ``a``'s most severe alert outranks ``b``'s (severity, then score; ties keep ``b``)."""
    key = (SEVERITY_RANK.get(a["max_severity"], 0), a["max_ensemble_score"] if a["max_ensemble_score"] is not None
           else -np.inf)
    other = (SEVERITY_RANK.get(b["max_severity"], 0), b["max_ensemble_score"] if b["max_ensemble_score"] is not None
             else -np.inf)
    return key > other


def _merge(into: dict[str, Any], episode: dict[str, Any]) -> None:
    """``episode``'s alerts added to ``into`` (an incident or a merged episode)."""
    if episode["last_seen"] >= into["last_seen"]:
        into.update({name: episode[name] for name in (*DEVICE_FIELDS, "model_version")})
        into["last_seen"] = episode["last_seen"]
    into["first_seen"] = min(into["first_seen"], episode["first_seen"])
    into["alerts"] += episode["alerts"]
    into["predicted_classes"] = sorted(set(into["predicted_classes"] or []) | set(episode["predicted_classes"] or []))
    if _more_severe(episode, into):
        into.update({name: episode[name] for name in ("max_severity", "max_ensemble_score", EXPLANATION)})


def merged_episodes(rows: Iterable[dict[str, Any]], quiet: timedelta) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The batch's episodes per (subject, category), runs closer than the quiet time merged, by time."""
    by_pair: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["subject"], r["category"], r["first_seen"])):
        runs = by_pair.setdefault((row["subject"], row["category"]), [])
        if runs and row["first_seen"] <= runs[-1]["last_seen"] + quiet:
            _merge(runs[-1], row)
        else:
            runs.append(dict(row))
    return by_pair


def _opened(episode: dict[str, Any], batch_id: int) -> dict[str, Any]:
    return {**episode, "incident_id": incident_id(episode["subject"], episode["category"], episode["first_seen"]),
            "state": OPEN, "closed_at": None, "opened_batch": batch_id}


def worth_notifying(incident: dict[str, Any], batch_id: int, every: timedelta) -> bool:
    """Whether a changed incident's update goes to the outputs (rule 4): it opened or closed in this
    batch, its severity rose above the last update's, or ``every`` of alert time passed since it."""
    if incident["state"] == CLOSED or incident.get("opened_batch") == batch_id or incident.get("notified_seen") is None:
        return True
    told = SEVERITY_RANK.get(incident.get("notified_severity") or "none", 0)
    return SEVERITY_RANK.get(incident["max_severity"], 0) > told or \
        incident["last_seen"] - incident["notified_seen"] >= every


def update(open_incidents: Iterable[dict[str, Any]], episodes_rows: Iterable[dict[str, Any]],
           now: datetime | None, quiet: timedelta, batch_id: int, updated_at: datetime,
           notify_every: timedelta = timedelta(0)) -> list[dict[str, Any]]:
    """The incidents a batch opens or changes (rows of the ``incidents`` table): ``open_incidents``
    the table's open rows, ``episodes_rows`` the batch's episodes, ``now`` the batch's stream time;
    those whose update goes to the outputs (:func:`worth_notifying`, ``notify_every``) carry this
    batch as ``notified_batch``."""
    current = {(row["subject"], row["category"]): dict(row) for row in open_incidents}
    changed: dict[str, dict[str, Any]] = {}

    def close(incident: dict[str, Any]) -> None:
        incident.update(state=CLOSED, closed_at=incident["last_seen"] + quiet)
        changed[incident["incident_id"]] = incident

    for pair, runs in merged_episodes(episodes_rows, quiet).items():
        for run in runs:
            incident = current.get(pair)
            if incident is not None and incident["first_seen"] - quiet <= run["last_seen"] and \
                    run["first_seen"] <= incident["last_seen"] + quiet:
                _merge(incident, run)
                changed[incident["incident_id"]] = incident
            elif incident is not None and run["last_seen"] < incident["first_seen"] - quiet:
                close(_opened(run, batch_id))  # late alerts, older than the pair's open incident
            else:
                if incident is not None:
                    close(incident)
                current[pair] = _opened(run, batch_id)
                changed[current[pair]["incident_id"]] = current[pair]
    if now is not None:
        for incident in current.values():
            if incident["state"] == OPEN and incident["last_seen"] + quiet < now:
                close(incident)
    for incident in changed.values():
        incident.update(batch_id=batch_id, updated_at=updated_at)
        if worth_notifying(incident, batch_id, notify_every):
            incident.update(notified_batch=batch_id, notified_severity=incident["max_severity"],
                            notified_seen=incident["last_seen"])
    return list(changed.values())


def incident_rows(rows: list[dict[str, Any]]) -> pa.Table:
    """:func:`update`'s rows as the ``incidents`` table's."""
    from jobs.stream.table_rows import conform, empty

    if not rows:
        return empty(INCIDENTS)
    from schemas.tables import TABLES

    names = TABLES[INCIDENTS].column_names
    return conform(pa.Table.from_pylist([{name: row.get(name) for name in names} for row in rows],
                                        schema=TABLES[INCIDENTS].arrow_schema()), INCIDENTS)
