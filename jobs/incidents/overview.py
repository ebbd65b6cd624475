"""The incidents list that ``iomt-ad incidents list`` prints and the operator dashboard shows: each
incident with its status (the latest analyst action) and whether a mute or maintenance window
silences it now. Pure: the rows come from :class:`jobs.incidents.actions_store.IncidentBook`.

By default only the incidents that need someone: those the stream holds open (alerts still come)
and nobody resolved; ``everything`` lists closed and resolved ones too.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from jobs.incidents.lifecycle import RESOLVED, Action, Mute, incident_status, matching_mutes, order_by_severity

SHORT_ID: Final[int] = 12
COLUMNS: Final[tuple[str, ...]] = (
    "incident", "max_severity", "subject", "device_ip", "device_vendor", "category", "classes", "alerts",
    "first_seen", "last_seen", "state", "status", "status_by", "muted", "explanation", "incident_id")


def overview(incidents: Iterable[Mapping[str, Any]], actions: Iterable[Action], mutes: Iterable[Mute],
             at: datetime, everything: bool = False) -> list[dict[str, Any]]:
    """One row (:data:`COLUMNS`) per incident, most severe first; ``at``: now, for the mutes."""
    by_incident: dict[str, list[Action]] = {}
    for action in actions:
        by_incident.setdefault(action.incident_id, []).append(action)
    mutes = list(mutes)
    rows = []
    for incident in order_by_severity(list(incidents)):
        status = incident_status(incident, by_incident.get(incident["incident_id"], ()))
        if not everything and (incident["state"] != "open" or status.status == RESOLVED):
            continue
        silenced = matching_mutes(incident, mutes, at)
        rows.append({
            "incident": incident["incident_id"][:SHORT_ID], "max_severity": incident.get("max_severity"),
            "subject": incident.get("subject"), "device_ip": incident.get("device_ip"),
            "device_vendor": incident.get("device_vendor"), "category": incident.get("category"),
            "classes": ", ".join(incident.get("predicted_classes") or ()), "alerts": incident.get("alerts"),
            "first_seen": incident.get("first_seen"), "last_seen": incident.get("last_seen"),
            "state": incident.get("state"), "status": status.status, "status_by": status.who or "",
            "muted": "; ".join(m.describe() for m in silenced), "explanation": incident.get("explanation"),
            "incident_id": incident["incident_id"]})
    return rows
