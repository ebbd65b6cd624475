"""The incident lifecycle rules: what analysts did to an incident (acknowledge, resolve, reopen,
comment) and which mutes and maintenance windows silence its notifications. Pure Python: no I/O;
the rows come from ``incident_actions`` and ``mutes`` (:mod:`jobs.incidents.actions_store`).

The stream owns ``incidents`` and its ``state`` (``open`` while alerts come, ``closed`` once the
quiet time passed: :mod:`jobs.stream.incidents`). Analysts never write that table: their actions are
rows of their own, and an incident's **status** is derived from the stream's row and its actions:

1. ``new``: no acknowledge, resolve or reopen yet (comments never change the status).
2. The latest of its acknowledge / resolve / reopen actions (by time; at the same time, the later
   row) sets it: ``acknowledged``, ``resolved`` or ``reopened``.
3. A resolved incident that holds more alerts than when it was resolved (the stream added alerts
   since: ``incident_alerts`` of the action) is ``reopened`` again, by the stream.

A **mute** silences the notifications of every incident of a device, source, class or category from
its creation until it expires; a **maintenance window** does the same between a start and an end
chosen in advance (a device being serviced). Both are rows of ``mutes`` (``kind`` ``mute`` or
``maintenance``); an ``unmute`` row ends one early (same ``mute_id``). Muted incidents are still
opened, extended and closed by the stream and recorded in Delta: only notifications are skipped
(:func:`notification_suppressed`).

What a mute matches (text compared without regard to case):

- ``device``: the incident's subject, ``device_id``, ``device_mac`` or ``device_ip``;
- ``source``: the incident's subject, or its ``source_id`` whole or up to a ``:``;
- ``category``: its ``category``;
- ``class``: its predicted classes, when every one of them is muted (by any active class mutes
  together): an incident that also holds an unmuted class still notifies.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

ACK: Final[str] = "ack"
RESOLVE: Final[str] = "resolve"
REOPEN: Final[str] = "reopen"
COMMENT: Final[str] = "comment"
ACTIONS: Final[tuple[str, ...]] = (ACK, RESOLVE, REOPEN, COMMENT)

NEW: Final[str] = "new"
ACKNOWLEDGED: Final[str] = "acknowledged"
RESOLVED: Final[str] = "resolved"
REOPENED: Final[str] = "reopened"
STATUS_OF: Final[dict[str, str]] = {ACK: ACKNOWLEDGED, RESOLVE: RESOLVED, REOPEN: REOPENED}
STREAM: Final[str] = "stream"  # who reopened a resolved incident that got new alerts

MUTE: Final[str] = "mute"
MAINTENANCE: Final[str] = "maintenance"
UNMUTE: Final[str] = "unmute"
SCOPES: Final[tuple[str, ...]] = ("device", "source", "class", "category")


@dataclass(frozen=True)
class Action:
    """A row of ``incident_actions``."""

    incident_id: str
    action: str
    who: str
    at: datetime
    note: str | None = None
    incident_alerts: int | None = None  # the incident's alert count when the action was taken
    via: str | None = None              # cli or dashboard
    action_id: str | None = None


@dataclass(frozen=True)
class Status:
    """An incident's status (``new`` / ``acknowledged`` / ``resolved`` / ``reopened``) and the action
    that set it (None for ``new``)."""

    status: str
    who: str | None = None
    at: datetime | None = None
    note: str | None = None


def incident_status(incident: Mapping[str, Any], actions: Iterable[Action]) -> Status:
    """The status of ``incident`` (an ``incidents`` row) after ``actions`` (any actions: those of
    other incidents and comments are passed over)."""
    ordered = [a for a in actions if a.incident_id == incident["incident_id"] and a.action in STATUS_OF]
    if not ordered:
        return Status(NEW)
    latest = max(enumerate(ordered), key=lambda pair: (pair[1].at, pair[0]))[1]
    if latest.action == RESOLVE and latest.incident_alerts is not None and \
            (incident.get("alerts") or 0) > latest.incident_alerts:
        return Status(REOPENED, STREAM, None, f"{incident['alerts'] - latest.incident_alerts} alerts since "
                                               f"{latest.who} resolved it")
    return Status(STATUS_OF[latest.action], latest.who, latest.at, latest.note)


@dataclass(frozen=True)
class Mute:
    """A mute or maintenance window (a row of ``mutes`` of kind ``mute`` / ``maintenance``), with
    ``ended``: when an ``unmute`` row ended it early (None if none did)."""

    mute_id: str
    kind: str
    scope: str
    value: str
    starts: datetime
    ends: datetime
    reason: str
    who: str
    created: datetime
    via: str | None = None
    ended: datetime | None = None

    def active(self, at: datetime) -> bool:
        end = self.ends if self.ended is None else min(self.ends, self.ended)
        return self.starts <= at < end

    def describe(self) -> str:
        what = "muted" if self.kind == MUTE else "maintenance window of"
        return f"{what} {self.scope} {self.value} until {self.ends:%Y-%m-%d %H:%M} UTC by {self.who}: {self.reason}"


def mutes_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[Mute]:
    """``mutes`` table rows as :class:`Mute`s: each ``unmute`` row ends its mute (the earliest such
    row counts); rows of an unknown kind are passed over."""
    rows = list(rows)
    unmuted: dict[str, datetime] = {}
    for row in rows:
        if row["kind"] == UNMUTE and row["mute_id"] and row["created"] is not None:
            known = unmuted.get(row["mute_id"])
            unmuted[row["mute_id"]] = row["created"] if known is None else min(known, row["created"])
    return [Mute(row["mute_id"], row["kind"], row["scope"], row["value"], row["starts"], row["ends"],
                 row["reason"] or "", row["who"] or "", row["created"], row.get("via"), unmuted.get(row["mute_id"]))
            for row in rows if row["kind"] in (MUTE, MAINTENANCE) and row["starts"] is not None
            and row["ends"] is not None]


def _fold(value: Any) -> str:
    return str(value).casefold() if value not in (None, "") else ""


def _matches_subject(mute: Mute, incident: Mapping[str, Any]) -> bool:
    value = _fold(mute.value)
    if mute.scope == "device":
        return value in {_fold(incident.get(name)) for name in ("subject", "device_id", "device_mac", "device_ip")}
    if mute.scope == "source":
        source = _fold(incident.get("source_id"))
        return value in (_fold(incident.get("subject")), source) or source.startswith(value + ":")
    if mute.scope == "category":
        return value == _fold(incident.get("category"))
    return False


def matching_mutes(incident: Mapping[str, Any], mutes: Iterable[Mute], at: datetime) -> list[Mute]:
    """The mutes and windows active at ``at`` that silence ``incident`` (an ``incidents`` row)."""
    active = [m for m in mutes if m.active(at)]
    found = [m for m in active if m.scope != "class" and _matches_subject(m, incident)]
    classes = {_fold(c) for c in incident.get("predicted_classes") or () if c}
    class_mutes = [m for m in active if m.scope == "class" and _fold(m.value) in classes]
    if classes and classes <= {_fold(m.value) for m in class_mutes}:
        found += class_mutes
    return found


def notification_suppressed(update: Mapping[str, Any], mutes: Iterable[Mute], windows: Iterable[Mute],
                            at: datetime) -> str | None:
    """Why a notification of ``update`` must not go out at ``at``, or None when it may.

    The notifier calls this once per incident it is about to notify, and skips it (keeping it in
    its outbox as skipped, with the reason, if it records such things) when a reason comes back.

    - ``update``: a row of the ``incidents`` table as the stream wrote it (a mapping with at least
      ``subject``, ``category``, ``device_id``, ``device_mac``, ``device_ip``, ``source_id`` and
      ``predicted_classes``; missing keys count as null).
    - ``mutes`` and ``windows``: :class:`Mute` objects (``kind`` ``mute`` and ``maintenance``), as
      :func:`jobs.incidents.actions_store.IncidentBook.suppressions` reads them, early ends
      (``unmute``) applied. Any of them may be passed in either argument: each is matched by its own
      scope and times; expired and future ones are passed over.
    - ``at``: when the notification would go out (timezone-aware, UTC): the wall clock, not the
      alerts' event time.

    Returns one line naming the first match (``"muted device mac:aa until ... by alice: firmware
    update"``). Pure: reads nothing, raises nothing for unknown scopes (they match nothing). The
    incident's status (acknowledged, resolved) is not consulted: that policy is the notifier's.
    """
    found = matching_mutes(update, [*mutes, *windows], at)
    if not found:
        return None
    return min(found, key=lambda m: (m.kind != MUTE, m.created)).describe()


def order_by_severity(incidents: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Incidents most severe first (severity, then score), then the most recent first."""
    from jobs.stream.incidents import SEVERITY_RANK

    return sorted(incidents, key=lambda r: (-SEVERITY_RANK.get(r.get("max_severity") or "", 0),
                                            -(r.get("max_ensemble_score") or 0.0),
                                            -(r["last_seen"].timestamp() if r.get("last_seen") else 0.0)))
