"""Offline analysis of a capture: its windows scored by the same core and bundle as the stream
(:func:`udfs.scoring.score_frame`), summarised per device."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from schemas.flow_record import DEVICE_ID, DEVICE_IP, DEVICE_MAC, DEVICE_VENDOR, EVENT_TIME, FEATURES, RECORD_ID

SEVERITY_ORDER = ("none", "low", "medium", "high", "critical")


def score_records(frame: pd.DataFrame, bundle) -> pd.DataFrame:
    """The wire records (``records.record_frame``) with their scores, as the stream would give them."""
    from udfs.scoring import score_frame

    features = frame[list(FEATURES)].apply(pd.to_numeric, errors="coerce").astype(np.float64)
    # the wire's "Infinity" tokens back to numbers, as the stream's parser reads them
    for name in FEATURES:
        text = frame[name]
        if text.dtype == object:
            features[name] = text.map(lambda v: float(v) if isinstance(v, str) else v).astype(np.float64)
    # a sequential autoencoder reads each device's earlier windows (models.sequences): keep who and when
    for name in (RECORD_ID, EVENT_TIME, DEVICE_ID):
        if name in frame.columns:
            features[name] = frame[name]
    scored = score_frame(features.reset_index(drop=True), bundle)
    return pd.concat([frame.reset_index(drop=True), scored], axis=1)


def device_report(scored: pd.DataFrame) -> list[dict[str, Any]]:
    """Per device: windows, anomalies, predicted classes (of its anomalous windows), the highest
    severity and the first and last anomalous window."""
    devices = []
    for device, rows in scored.groupby(DEVICE_ID, sort=True, dropna=False):
        flagged = rows[rows["is_anomaly"].astype(bool)]
        severities = [s for s in rows["severity"] if s in SEVERITY_ORDER]
        devices.append({
            "device_id": device, "device_mac": _first(rows[DEVICE_MAC]), "device_ip": _first(rows[DEVICE_IP]),
            "device_vendor": _first(rows[DEVICE_VENDOR]), "windows": int(len(rows)), "anomalies": int(len(flagged)),
            "anomaly_share": round(len(flagged) / len(rows), 4),
            "predicted_classes": {str(k): int(v) for k, v in flagged["predicted_class"].value_counts().items()},
            "max_severity": max(severities, key=SEVERITY_ORDER.index) if severities else None,
            "first_anomalous_window": _first(flagged.sort_values(EVENT_TIME)[EVENT_TIME]),
            "last_anomalous_window": _first(flagged.sort_values(EVENT_TIME, ascending=False)[EVENT_TIME]),
        })
    return sorted(devices, key=lambda d: (-d["anomalies"], str(d["device_id"])))


def summary(scored: pd.DataFrame) -> dict[str, Any]:
    windows = int(len(scored))
    flagged = int(scored["is_anomaly"].astype(bool).sum()) if windows else 0
    return {"windows": windows, "anomalies": flagged, "share_flagged": round(flagged / windows, 4) if windows else None,
            "predicted_classes": {str(k): int(v) for k, v in scored["predicted_class"].value_counts().items()}
            if windows else {}}


def _first(values: pd.Series) -> Any:
    values = values.dropna()
    return None if values.empty else values.iloc[0]
