"""An incident update as an OCSF Detection Finding (class_uid 2004, category_uid 2; OCSF 1.5.0),
the JSON the Kafka and webhook outputs send.

``metadata.uid`` is the update id (a receiver drops a duplicate delivery by it) and
``finding_info.uid`` the incident id (every update of an incident has it). The activity follows the
change: Create (opened), Update, Close; ``status_id`` is New while the incident is open and Resolved
once closed. The device is the affected resource and its addresses observables; what OCSF has no
attribute for (the model version, the scores) is under ``unmapped``.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from jobs.outputs.cef import PRODUCT, VENDOR, title
from jobs.outputs.outbox import CLOSED, OPENED

OCSF_VERSION: Final[str] = "1.5.0"
CLASS_UID: Final[int] = 2004
CATEGORY_UID: Final[int] = 2
ACTIVITY: Final[dict[str, tuple[int, str]]] = {OPENED: (1, "Create"), "updated": (2, "Update"), CLOSED: (3, "Close")}
SEVERITY: Final[dict[str, tuple[int, str]]] = {"none": (1, "Informational"), "low": (2, "Low"),
                                               "medium": (3, "Medium"), "high": (4, "High"),
                                               "critical": (5, "Critical")}
OBSERVABLE_IP, OBSERVABLE_MAC, OBSERVABLE_RESOURCE_UID = 2, 3, 10


def _millis(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None and v != [] and v != {}}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def detection_finding(update: dict[str, Any], version: str) -> dict[str, Any]:
    """The Detection Finding of an outbox update (``update``: an ``outbox`` row)."""
    activity_id, activity = ACTIVITY.get(update.get("change") or "updated", ACTIVITY["updated"])
    severity_id, severity = SEVERITY.get(update.get("max_severity") or "none", (0, "Unknown"))
    closed = update.get("state") == CLOSED
    subject = update.get("subject")
    observables = [{"name": "resources.uid", "type": "Resource UID", "type_id": OBSERVABLE_RESOURCE_UID,
                    "value": subject}]
    if update.get("device_ip"):
        observables.append({"name": "device.ip", "type": "IP Address", "type_id": OBSERVABLE_IP,
                            "value": update["device_ip"]})
    if update.get("device_mac"):
        observables.append({"name": "device.mac", "type": "MAC Address", "type_id": OBSERVABLE_MAC,
                            "value": update["device_mac"]})
    finding = {
        "activity_id": activity_id, "activity_name": activity,
        "category_uid": CATEGORY_UID, "category_name": "Findings",
        "class_uid": CLASS_UID, "class_name": "Detection Finding",
        "type_uid": CLASS_UID * 100 + activity_id, "type_name": f"Detection Finding: {activity}",
        "severity_id": severity_id, "severity": severity,
        "status_id": 4 if closed else 1, "status": "Resolved" if closed else "New",
        "time": _millis(update.get("updated_at")),
        "start_time": _millis(update.get("first_seen")), "end_time": _millis(update.get("last_seen")),
        "count": update.get("alerts"),
        "message": title(update),
        "metadata": {"version": OCSF_VERSION, "uid": update["update_id"], "correlation_uid": update["incident_id"],
                     "product": {"name": PRODUCT, "vendor_name": VENDOR, "version": version},
                     "labels": [update.get("category")] if update.get("category") else None},
        "finding_info": {"uid": update["incident_id"], "title": title(update), "desc": update.get("explanation"),
                         "types": [update.get("category") or "unknown"],
                         "first_seen_time": _millis(update.get("first_seen")),
                         "last_seen_time": _millis(update.get("last_seen")),
                         "modified_time": _millis(update.get("updated_at")),
                         "analytic": {"name": "IoMT-AD ensemble", "type": "Learning (ML/DL)", "type_id": 4,
                                      "uid": "iomt-ad-ensemble", "version": update.get("model_version")}},
        "resources": [{"uid": subject, "name": update.get("device_id") or update.get("source_id"),
                       "type": "IoMT device" if update.get("device_id") else "traffic source",
                       "labels": [update["device_vendor"]] if update.get("device_vendor") else None}],
        "observables": observables,
        "unmapped": {"model_version": update.get("model_version"),
                     "predicted_classes": list(update.get("predicted_classes") or []),
                     "max_ensemble_score": update.get("max_ensemble_score"), "state": update.get("state"),
                     "change": update.get("change"), "closed_at": _millis(update.get("closed_at"))},
    }
    return _without_nulls(finding)
