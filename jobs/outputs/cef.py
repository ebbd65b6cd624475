"""ArcSight Common Event Format (CEF) for an incident update: the message the syslog output sends.

``CEF:0|IoMT-AD|iomt-ad|<version>|<signature id>|<name>|<severity 0-10>|<extension>``. In the header
a ``\\`` or ``|`` is escaped with a backslash; in extension values ``\\``, ``=`` and line breaks
(``\\n``, ``\\r``) are. Keys are CEF's own (``externalId`` carries the update id, by which a SIEM can
drop a duplicate delivery) and custom strings with their labels (``cs1``/``cs1Label``...).
"""
from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any, Final

VENDOR: Final[str] = "IoMT-AD"
PRODUCT: Final[str] = "iomt-ad"
# the incident's max_severity on CEF's 0-10 scale (Low 0-3, Medium 4-6, High 7-8, Very-High 9-10)
CEF_SEVERITY: Final[dict[str, int]] = {"none": 0, "low": 3, "medium": 5, "high": 8, "critical": 10}


def escape_header(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def escape_value(value: object) -> str:
    text = "" if value is None else str(value)
    return (text.replace("\\", "\\\\").replace("=", "\\=").replace("\r\n", "\\n").replace("\n", "\\n")
            .replace("\r", "\\r"))


def _millis(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def signature_id(update: dict[str, Any]) -> str:
    return f"incident:{update.get('category') or 'unknown'}"


def title(update: dict[str, Any]) -> str:
    """One line for humans: what, where, how bad."""
    return (f"IoMT incident {update.get('change', 'updated')}: {update.get('category') or 'unknown'} "
            f"on {update.get('subject')} ({update.get('max_severity')}, {update.get('alerts')} alerts)")


def extension(update: dict[str, Any]) -> list[tuple[str, object]]:
    """The extension's (key, value) pairs, in order; empty values left out."""
    ip = update.get("device_ip")
    pairs: list[tuple[str, object]] = [
        ("externalId", update.get("update_id")), ("rt", _millis(update.get("updated_at"))),
        ("start", _millis(update.get("first_seen"))), ("end", _millis(update.get("last_seen"))),
        ("cnt", update.get("alerts")), ("cat", update.get("category")), ("act", update.get("change")),
        ("outcome", update.get("state")), ("msg", update.get("explanation")),
    ]
    if ip:
        try:
            pairs.append(("src" if ipaddress.ip_address(ip).version == 4 else "c6a2", ip))
        except ValueError:
            pass
    pairs += [("smac", update.get("device_mac")),
              ("cs1Label", "incidentId"), ("cs1", update.get("incident_id")),
              ("cs2Label", "subject"), ("cs2", update.get("subject")),
              ("cs3Label", "predictedClasses"), ("cs3", ",".join(update.get("predicted_classes") or [])),
              ("cs4Label", "modelVersion"), ("cs4", update.get("model_version")),
              ("cs5Label", "deviceVendor"), ("cs5", update.get("device_vendor")),
              ("cs6Label", "deviceId"), ("cs6", update.get("device_id") or update.get("source_id"))]
    return [(key, value) for key, value in pairs if value not in (None, "")]


def format_cef(update: dict[str, Any], version: str) -> str:
    """The CEF message of an outbox update (``update``: an ``outbox`` row)."""
    header = ["CEF:0", escape_header(VENDOR), escape_header(PRODUCT), escape_header(version),
              escape_header(signature_id(update)), escape_header(title(update)),
              str(CEF_SEVERITY.get(update.get("max_severity") or "none", 0))]
    body = " ".join(f"{key}={escape_value(value)}" for key, value in extension(update))
    return "|".join(header) + "|" + body
