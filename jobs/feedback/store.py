"""Analysts' feedback in Delta: verdicts appended to ``feedback`` with delta-rs (from ``iomt-ad
feedback`` and the operator dashboard, local tables or an object store), and the labelled records
read back with their features from ``alerts`` (every alert keeps the record's 39 features), for
``iomt-ad train --feedback`` and ``iomt-ad evaluate --feedback``. The rules are
:mod:`jobs.feedback.labels`'.

Only appends, as for the incidents' actions (:mod:`jobs.incidents.actions_store`): the stream never
writes ``feedback``, and concurrent appends never conflict.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from jobs.feedback.labels import (ALERT, INCIDENT, FeedbackError, LabelledRecord, Verdict, category_of,
                                  check_verdict, current, label_records)
from jobs.incidents.actions_store import IncidentBook
from schemas.flow_record import FEATURES, column_name
from schemas.tables import ALERTS, FEEDBACK

if TYPE_CHECKING:
    from jobs.storage import TablesLocation
    from models.training.feedback import FeedbackSet

log = logging.getLogger(__name__)

MIN_RECORD_PREFIX: Final[int] = 8
# what a labelled record carries besides its 39 features (under the dataset's names)
RECORD_COLUMNS: Final[tuple[str, ...]] = ("record_id", "source_id", "event_time", "label", "predicted_class",
                                          "model_version", "is_anomaly", "ensemble_score")
LABELLED_COLUMNS: Final[tuple[str, ...]] = (
    "record_id", "source_id", "event_time", "stream_label", "predicted_class", "model_version", "label", "category",
    "is_attack", "verdict", "target", "feedback_id", "who", "at")


class FeedbackBook:
    """The verdicts under ``tables``, and the alerts they label."""

    def __init__(self, tables: "TablesLocation") -> None:
        self.incidents = IncidentBook(tables)
        self.tables = self.incidents.tables

    # reading ----------------------------------------------------------------------------------
    def verdicts(self) -> list[Verdict]:
        """Every verdict recorded, superseded ones too, oldest first."""
        table = self.incidents.read(FEEDBACK)
        return sorted((Verdict.from_row(row) for row in (table.to_pylist() if table is not None else [])),
                      key=lambda v: v.at)

    def current(self) -> list[Verdict]:
        return current(self.verdicts())

    def find_alert(self, ident: str) -> dict[str, Any]:
        """The alert whose ``record_id`` is ``ident`` or starts with it (8+ characters, one match)."""
        return self.find_alerts([ident])[0]

    def find_alerts(self, idents: Sequence[str]) -> list[dict[str, Any]]:
        """The alerts whose ``record_id`` is each of ``idents``, or starts with it (8+ characters, one
        match), in one pass over ``alerts``; a :class:`FeedbackError` names the first not found."""
        from deltalake import DeltaTable

        idents = [ident.strip() for ident in idents]
        uri = self.tables.uri(ALERTS)
        if not DeltaTable.is_deltatable(uri, storage_options=self.incidents.options):
            raise FeedbackError(f"no alerts table under {self.tables.root}: the streaming job creates it "
                                "(check --tables / --conf)")
        dataset = DeltaTable(uri, storage_options=self.incidents.options).to_pyarrow_dataset()
        wanted = ["record_id", "event_time", "predicted_class", "model_version", "source_id", "device_id"]
        prefixes = [ident for ident in idents if len(ident) >= MIN_RECORD_PREFIX]
        exact: dict[str, list[dict[str, Any]]] = {ident: [] for ident in idents}
        starting: dict[str, list[dict[str, Any]]] = {ident: [] for ident in prefixes}
        # matched batch by batch in memory, not pushed down: the stream's data files carry statistics
        # for a few columns only (event_time, ...), and delta-rs turns the missing record_id ones into
        # `record_id >= null` guarantees, by which a pushed-down equality skips every file
        for batch in dataset.to_batches(columns=wanted):
            ids = batch.column("record_id")
            for row in batch.filter(pc.fill_null(pc.is_in(ids, value_set=pa.array(idents)), False)).to_pylist():
                exact[row["record_id"]].append(row)
            for ident in prefixes:
                starting[ident] += batch.filter(pc.fill_null(pc.starts_with(ids, pattern=ident), False)).to_pylist()
        found = []
        for ident in idents:
            rows = exact[ident] or starting.get(ident, [])
            if len(rows) != 1:
                short = len(ident) < MIN_RECORD_PREFIX
                raise FeedbackError(f"{len(rows) or 'no'} alerts with the record_id {ident!r}"
                                    f"{'' if short else ' or one starting with it'}: give a whole record_id, or its "
                                    f"first {MIN_RECORD_PREFIX}+ characters (`iomt-ad incidents show ID` lists an "
                                    "incident's alerts)")
            found.append(rows[0])
        return found

    # writing ----------------------------------------------------------------------------------
    def _record(self, verdicts: list[Verdict]) -> list[Verdict]:
        self.incidents._append(FEEDBACK, [v.to_row() for v in verdicts])  # one commit
        for verdict in verdicts:
            log.info("feedback: %s", verdict.describe())
        return verdicts

    def mark_alerts(self, alerts: Sequence[dict[str, Any]], verdict: str, who: str, at: datetime,
                    corrected_class: str | None = None, note: str | None = None, via: str = "cli") -> list[Verdict]:
        """Append one verdict per alert (``alerts`` rows: ``find_alert``), all in one commit."""
        verdict, corrected = check_verdict(verdict, corrected_class)
        return self._record([Verdict(
            uuid.uuid4().hex, ALERT, verdict, _who(who), at, record_id=alert["record_id"],
            covers_from=alert["event_time"], covers_to=alert["event_time"], alerts=1, corrected_class=corrected,
            predicted_classes=tuple(c for c in [alert.get("predicted_class")] if c),
            model_version=alert.get("model_version"), note=note or None, via=via) for alert in alerts])

    def mark_alert(self, alert: dict[str, Any], verdict: str, who: str, at: datetime,
                   corrected_class: str | None = None, note: str | None = None, via: str = "cli") -> Verdict:
        """Append a verdict on one alert (an ``alerts`` row: ``find_alert``)."""
        return self.mark_alerts([alert], verdict, who, at, corrected_class, note, via)[0]

    def mark_incident(self, incident: dict[str, Any], verdict: str, who: str, at: datetime,
                      corrected_class: str | None = None, note: str | None = None, via: str = "cli") -> Verdict:
        """Append a verdict on an incident (an ``incidents`` row): it covers its alerts up to now."""
        verdict, corrected = check_verdict(verdict, corrected_class)
        return self._record([Verdict(
            uuid.uuid4().hex, INCIDENT, verdict, _who(who), at, incident_id=incident["incident_id"],
            subject=incident["subject"], category=incident["category"], covers_from=incident["first_seen"],
            covers_to=incident["last_seen"], alerts=incident.get("alerts"), corrected_class=corrected,
            predicted_classes=tuple(incident.get("predicted_classes") or ()),
            model_version=incident.get("model_version"), note=note or None, via=via)])[0]

    # the labelled records ---------------------------------------------------------------------
    def _covered_rows(self, verdicts: Sequence[Verdict]) -> dict[str, pa.Table]:
        """feedback_id -> the alerts rows (record columns and features) each verdict covers."""
        from jobs.window_reader import read_window

        columns = [*RECORD_COLUMNS, *(column_name(f) for f in FEATURES)]
        found: dict[str, pa.Table] = {}
        alerts = [v for v in verdicts if v.target == ALERT]
        if alerts:  # one read for every alert verdict: the window from the oldest to the newest
            rows = read_window(self.tables, ALERTS, columns, since=min(v.covers_from for v in alerts),
                               time_column="event_time", until=max(v.covers_to for v in alerts))
            rows = rows if rows is not None else pa.table({c: pa.nulls(0) for c in columns})
            index = {rid: i for i, rid in enumerate(rows["record_id"].to_pylist())}
            for verdict in alerts:
                at = index.get(verdict.record_id)
                found[verdict.feedback_id] = rows.take([at]) if at is not None else rows.slice(0, 0)
        for verdict in (v for v in verdicts if v.target == INCIDENT):
            incident = {"subject": verdict.subject, "category": verdict.category, "first_seen": verdict.covers_from,
                        "last_seen": verdict.covers_to}
            found[verdict.feedback_id] = self.incidents.alerts_of(incident, columns)
        return found

    def labelled_records(self) -> pd.DataFrame:
        """One row per alert an analyst's verdict labels: ``LABELLED_COLUMNS`` and the 39 features under
        the dataset's names (``label``: Benign, the attack class, or None for an attack of unknown
        class; ``stream_label``: the record's own ``label`` field, where its producer knew the class)."""
        chosen = self.current()
        covered = self._covered_rows(chosen)
        by_record: dict[str, dict[str, Any]] = {}
        for table in covered.values():
            for row in table.to_pylist():
                by_record.setdefault(row["record_id"], row)
        labelled = label_records(chosen, lambda v: [(r, p) for r, p in zip(
            covered[v.feedback_id]["record_id"].to_pylist(), covered[v.feedback_id]["predicted_class"].to_pylist())])
        rows = [_labelled_row(by_record[rid], record) for rid, record in labelled.items()]
        frame = pd.DataFrame(rows, columns=[*LABELLED_COLUMNS, *FEATURES])
        missing = sum(max(0, (v.alerts or 0) - covered[v.feedback_id].num_rows) for v in chosen)
        if missing:
            log.warning("%d alerts that verdicts covered were not found in %s (removed or not yet readable)",
                        missing, self.tables.uri(ALERTS))
        return frame


def _labelled_row(alert: dict[str, Any], record: LabelledRecord) -> dict[str, Any]:
    verdict = record.verdict
    return {"record_id": record.record_id, "source_id": alert["source_id"], "event_time": alert["event_time"],
            "stream_label": alert["label"], "predicted_class": alert["predicted_class"],
            "model_version": alert["model_version"], "label": record.label, "category": category_of(record.label),
            "is_attack": record.is_attack, "verdict": verdict.verdict, "target": verdict.target,
            "feedback_id": verdict.feedback_id, "who": verdict.who, "at": verdict.at,
            **{feature: alert[column_name(feature)] for feature in FEATURES}}


def _who(who: str) -> str:
    if not who or not who.strip():
        raise FeedbackError("say who gives the verdict (--who): it is recorded with it")
    return who.strip()


def read_feedback(tables: "TablesLocation") -> "FeedbackSet":
    """The labelled records under ``tables`` with where and when they were read (for training and
    evaluation); a :class:`FeedbackError` when there are none."""
    from datetime import timezone

    from deltalake import DeltaTable

    from models.training.feedback import FeedbackSet

    book = FeedbackBook(tables)
    records = book.labelled_records()
    if records.empty:
        raise FeedbackError(f"no labelled records under {book.tables.root}: mark alerts or incidents first "
                            "(`iomt-ad feedback mark`), or check --feedback / --conf")
    uri = book.tables.uri(FEEDBACK)
    version = DeltaTable(uri, storage_options=book.incidents.options).version()
    source = {"tables": book.tables.root, "feedback_table_version": int(version),
              "read_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return FeedbackSet(records=records, source=source)
