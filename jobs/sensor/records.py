"""Closed windows -> flow records in the streaming job's wire format (one JSON object a record).

A record carries the 39 features, the window's device (``device_id``, also its ``source_id`` and its
Kafka key), what the sensor knows of the device (MAC, IP, vendor) and of the window's traffic (the
dominant peer, transport and ports), ``event_time`` (the window's last packet, UTC) and a
``record_id`` derived from the device, its first packet's time and the window's number: reading the
same capture twice gives the same ids (InfluxDB then overwrites its points).
"""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd

from jobs.sensor.windows import Windows
from schemas.flow_record import (DEVICE_ID, DEVICE_MAC, DEVICE_IP, DEVICE_PORT, DEVICE_VENDOR, EVENT_TIME, FEATURES,
                                 LABEL, PEER_IP, PEER_PORT, RECORD_ID, SOURCE_ID, TRANSPORT)


def record_frame(windows: Windows, label: str | None = None) -> pd.DataFrame:
    """One row per window, the columns of the wire record (non-finite numbers as JSON's tokens)."""
    first_us = np.round(windows.first_ts * 1e6).astype(np.int64)
    ids = [f"{device}@{us}#{n}" for device, us, n in zip(windows.device, first_us.tolist(), windows.sequence.tolist())]
    times = pd.to_datetime(np.round(windows.last_ts * 1e6).astype(np.int64), unit="us", utc=True)
    frame = pd.DataFrame({
        RECORD_ID: ids, SOURCE_ID: windows.device,
        EVENT_TIME: times.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        LABEL: label,
        DEVICE_ID: windows.device, DEVICE_MAC: windows.device_mac, DEVICE_IP: windows.device_ip,
        DEVICE_VENDOR: windows.device_vendor, PEER_IP: windows.peer_ip, TRANSPORT: windows.transport,
        DEVICE_PORT: pd.array(windows.device_port, dtype="Int64"), PEER_PORT: pd.array(windows.peer_port, dtype="Int64"),
    })
    for name in FEATURES:
        values = windows.features[name]
        if np.isfinite(values).all():
            frame[name] = values
        else:  # pandas writes inf as null: Spark's JSON reader takes these tokens quoted as numbers
            frame[name] = [v if np.isfinite(v) else ("Infinity" if v > 0 else "-Infinity" if v < 0 else None)
                           for v in values.tolist()]
    return frame


def json_lines(frame: pd.DataFrame) -> list[str]:
    """Each record as one line of JSON (no trailing newline)."""
    if frame.empty:
        return []
    return frame.to_json(orient="records", lines=True, double_precision=15, date_format="iso").splitlines()


def messages(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Each record as a dict under the JSON names (nulls as None), for a binary wire format
    (:func:`jobs.wire.message_encoder`; it takes the ``Infinity`` tokens as numbers)."""
    if frame.empty:
        return []
    return [{name: (None if value is pd.NA or (isinstance(value, float) and np.isnan(value)) else value)
             for name, value in row.items()} for row in frame.astype(object).to_dict(orient="records")]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()
