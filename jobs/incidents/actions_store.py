"""Incidents as analysts see them: the stream's ``incidents`` table read, and analysts' actions,
mutes and maintenance windows appended to ``incident_actions`` and ``mutes`` with delta-rs, from
``iomt-ad incidents`` and the operator dashboard alike (local tables or an object store, through
:class:`jobs.storage.TablesLocation`).

Only appends: the streaming job's driver alone writes ``incidents`` (it merges it every batch), so
an analyst's action never races it; concurrent appends from several analysts never conflict in
Delta. A table is created by its first append.

An incident's alerts: ``alerts`` rows carry no incident id (the executors write them before the
driver groups the batch's alerts), so they are found as the stream grouped them: the alerts of the
incident's subject (the device, or the source up to its first ``:``) and category, with an event
time from its first to its last alert. After late data (an alert older than a closed incident that
opens another one), two incidents of one pair can overlap in time and then share alerts.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from jobs.errors import UserError
from jobs.incidents.lifecycle import (ACTIONS, MAINTENANCE, MUTE, SCOPES, UNMUTE, Action, Mute, mutes_from_rows)
from schemas.tables import ALERTS, INCIDENT_ACTIONS, INCIDENTS, MUTES, TABLES

if TYPE_CHECKING:
    from jobs.storage import TablesLocation

log = logging.getLogger(__name__)

MIN_ID_PREFIX = 6


class IncidentError(UserError):
    """An incident, mute or argument that cannot be used; the message says what to give instead."""


def _rows(table: pa.Table | None) -> list[dict[str, Any]]:
    return table.to_pylist() if table is not None else []


class IncidentBook:
    """The incidents under ``tables`` and what analysts did to them."""

    def __init__(self, tables: "TablesLocation") -> None:
        self.tables = tables.resolved()
        self.options = self.tables.storage_options()

    # reading ----------------------------------------------------------------------------------
    def read(self, name: str, columns: Sequence[str] | None = None) -> pa.Table | None:
        """Table ``name`` in its definition's types (columns it lacks as nulls), or None before it exists.
        (A merge may write ``string_view`` columns, which pyarrow cannot filter on: cast first.)"""
        from deltalake import DeltaTable

        uri = self.tables.uri(name)
        if not DeltaTable.is_deltatable(uri, storage_options=self.options):
            return None
        spec = TABLES[name]
        wanted = list(columns or spec.column_names)
        dataset = DeltaTable(uri, storage_options=self.options).to_pyarrow_dataset()
        rows = dataset.to_table(columns=[c for c in wanted if c in dataset.schema.names])
        schema = spec.arrow_schema()
        for column in wanted:
            if column not in rows.column_names:
                rows = rows.append_column(column, pa.nulls(rows.num_rows, schema.field(column).type))
        return rows.select(wanted).cast(pa.schema([schema.field(c) for c in wanted]))

    def incidents(self) -> list[dict[str, Any]]:
        return _rows(self.read(INCIDENTS))

    def find(self, ident: str) -> dict[str, Any]:
        """The incident whose id is ``ident`` or starts with it (at least 6 characters, one match)."""
        ident = ident.strip().lower()
        if len(ident) < MIN_ID_PREFIX:
            raise IncidentError(f"incident id {ident!r}: give at least {MIN_ID_PREFIX} characters of it "
                                "(`iomt-ad incidents list` shows them)")
        table = self.read(INCIDENTS)
        if table is None:
            raise IncidentError(f"no incidents table under {self.tables.root}: the streaming job creates it "
                                "(check --tables / --conf)")
        found = table.filter(pc.starts_with(table["incident_id"], pattern=ident)).to_pylist()
        if len(found) != 1:
            raise IncidentError(f"{'no' if not found else len(found)} incidents with an id starting with "
                                f"{ident!r}: see `iomt-ad incidents list --all`")
        return found[0]

    def actions(self, incident_id: str | None = None) -> list[Action]:
        table = self.read(INCIDENT_ACTIONS)
        if table is not None and incident_id is not None:
            table = table.filter(pc.equal(table["incident_id"], incident_id))
        return [Action(r["incident_id"], r["action"], r["who"], r["at"], r["note"], r["incident_alerts"], r["via"],
                       r["action_id"]) for r in _rows(table)]

    def mutes(self) -> list[Mute]:
        """Every mute and maintenance window, early ends applied (expired ones too)."""
        return mutes_from_rows(_rows(self.read(MUTES)))

    def suppressions(self, at: datetime) -> tuple[list[Mute], list[Mute]]:
        """The mutes and the maintenance windows active at ``at`` (for
        :func:`jobs.incidents.lifecycle.notification_suppressed`)."""
        active = [m for m in self.mutes() if m.active(at)]
        return [m for m in active if m.kind == MUTE], [m for m in active if m.kind == MAINTENANCE]

    def alerts_of(self, incident: dict[str, Any], columns: Sequence[str], limit: int | None = None) -> pa.Table:
        """The incident's alerts (its subject and category, event time from its first to its last
        alert), newest first; ``columns`` of ``alerts``."""
        from jobs.stream.incidents import subjects
        from jobs.window_reader import read_window

        wanted = list(dict.fromkeys([*columns, "event_time", "device_id", "source_id", "predicted_category"]))
        first, last = incident["first_seen"], incident["last_seen"]

        def between(start: datetime) -> pa.Table:
            # the files that may hold alerts from start on (partition and event_time statistics), then
            # the rows exactly: up to the incident's last alert, of its subject and category
            rows = read_window(self.tables, ALERTS, wanted, since=start, time_column="event_time", until=last)
            if rows is None:
                return TABLES[ALERTS].arrow_schema().empty_table().select(wanted)
            category = pc.fill_null(rows["predicted_category"], "unknown")
            return rows.filter(pc.and_(pc.equal(subjects(rows), incident["subject"]),
                                       pc.equal(category, incident["category"])))

        # with a limit, read back from the last alert a minute, then 10, 100, then all: a long
        # incident's newest alerts without reading its whole history
        backs = (timedelta(minutes=1), timedelta(minutes=10), timedelta(minutes=100)) if limit else ()
        for start in [*(last - back for back in backs if last - back > first), first]:
            rows = between(start)
            if start == first or rows.num_rows >= limit:
                break
        rows = rows.sort_by([("event_time", "descending")])
        return (rows.slice(0, limit) if limit else rows).select(list(columns))

    # writing ----------------------------------------------------------------------------------
    def _append(self, name: str, rows: list[dict[str, Any]]) -> None:
        from deltalake import write_deltalake

        from jobs.stream.table_rows import conform

        table = conform(pa.Table.from_pylist(rows, schema=TABLES[name].arrow_schema()), name)
        write_deltalake(self.tables.uri(name), table, mode="append", schema_mode="merge",
                        storage_options=self.options)

    def record_action(self, incident: dict[str, Any], action: str, who: str, at: datetime,
                      note: str | None = None, via: str = "cli") -> Action:
        """Append ``action`` (ack, resolve, reopen, comment) on ``incident`` (an ``incidents`` row)."""
        if action not in ACTIONS:
            raise IncidentError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
        recorded = Action(incident["incident_id"], action, _who(who), at, note or None, incident.get("alerts"), via,
                          uuid.uuid4().hex)
        self._append(INCIDENT_ACTIONS, [{"action_id": recorded.action_id, "incident_id": recorded.incident_id,
                                         "action": action, "who": recorded.who, "at": at, "note": recorded.note,
                                         "incident_alerts": recorded.incident_alerts, "via": via}])
        log.info("incident %s: %s by %s", incident["incident_id"], action, recorded.who)
        return recorded

    def mute(self, kind: str, scope: str, value: str, starts: datetime, ends: datetime, reason: str, who: str,
             at: datetime, via: str = "cli") -> Mute:
        """Append a mute (``kind`` mute) or maintenance window (``kind`` maintenance)."""
        if kind not in (MUTE, MAINTENANCE):
            raise IncidentError(f"unknown kind {kind!r}: mute or maintenance")
        if scope not in SCOPES:
            raise IncidentError(f"unknown scope {scope!r}: one of {', '.join(SCOPES)}")
        if not value or not value.strip():
            raise IncidentError(f"name the {scope} to {kind}")
        if not reason or not reason.strip():
            raise IncidentError(f"give a reason for the {kind} (--reason): it is recorded with who and when")
        if ends <= starts:
            raise IncidentError(f"the {kind} ends ({ends:%Y-%m-%d %H:%M} UTC) before it starts "
                                f"({starts:%Y-%m-%d %H:%M} UTC)")
        mute = Mute(uuid.uuid4().hex, kind, scope, value.strip(), starts, ends, reason.strip(), _who(who), at, via)
        self._append(MUTES, [{"mute_id": mute.mute_id, "kind": kind, "scope": scope, "value": mute.value,
                              "starts": starts, "ends": ends, "reason": mute.reason, "who": mute.who,
                              "created": at, "via": via}])
        log.info("%s", mute.describe())
        return mute

    def unmute(self, mutes: Iterable[Mute], who: str, at: datetime, reason: str | None = None,
               via: str = "cli") -> int:
        """End ``mutes`` at ``at`` (an ``unmute`` row each); how many were ended."""
        rows = [{"mute_id": m.mute_id, "kind": UNMUTE, "scope": m.scope, "value": m.value, "starts": None,
                 "ends": None, "reason": reason or None, "who": _who(who), "created": at, "via": via} for m in mutes]
        if rows:
            self._append(MUTES, rows)
        return len(rows)


def _who(who: str) -> str:
    if not who or not who.strip():
        raise IncidentError("say who acts (--who): it is recorded with the action")
    return who.strip()


def parse_for(text: str) -> timedelta:
    """``--for``: a duration such as ``2h``, ``30m``, ``1d`` or ``1h30m``, more than zero."""
    from jobs.config import ConfigError, duration

    try:
        value = duration(text, "--for")
    except ConfigError as exc:
        raise IncidentError(str(exc)) from exc
    if value <= timedelta(0):
        raise IncidentError(f"--for {text!r}: give a duration more than zero, e.g. 2h")
    return value
