"""The operator dashboard's data: the job's Delta tables read without a JVM (``deltalake``), and the
pure pandas summaries the charts draw. Nothing here imports Streamlit, so it is tested on its own.

The window ends at the present, or at the newest record when that is older (a replay or a paused
stream still shows its last hour, and the header says how old the newest record is). A record
dated in the future never moves the window past the present.
"""
from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from models import DEFAULT_BUNDLE
from schemas.tables import ALERTS, BATCH_LOG, DEVICES, FLOWS_SCORED, TRAFFIC_1M

if TYPE_CHECKING:
    from jobs.storage import TablesLocation

log = logging.getLogger(__name__)

ENV_TABLES = "IOMT_AD_DASHBOARD_TABLES"
ENV_CONF = "IOMT_AD_DASHBOARD_CONF"  # the job's configuration: how to reach an object store
ENV_MODEL = "IOMT_AD_DASHBOARD_MODEL"
ENV_WINDOW = "IOMT_AD_DASHBOARD_WINDOW_MINUTES"
ENV_REFRESH = "IOMT_AD_DASHBOARD_REFRESH_SECONDS"

FLOW_COLUMNS = ["event_time", "is_anomaly", "ensemble_score"]  # the score histogram
SCORE_SAMPLE = 100_000  # the histogram shows the window's newest records, at most this many
ALERTS_SHOWN = 50
ALERT_COLUMNS = ["event_time", "source_id", "device_id", "device_ip", "device_vendor", "protocol", "predicted_class",
                 "predicted_category", "severity", "ensemble_score", "ae_error", "if_score", "top_features", "label",
                 "record_id"]
DEVICE_COLUMNS = ["device_id", "device_mac", "device_ip", "device_vendor", "first_seen", "last_seen", "records",
                  "anomalies", "last_severity", "last_anomaly"]
TRAFFIC_COLUMNS = ["minute", "protocol", "predicted_class", "predicted_category", "is_anomaly", "records"]
BATCH_COLUMNS = ["batch_id", "records", "quarantined", "anomalies", "influx_failed", "seconds", "logged_at"]


@functools.lru_cache(maxsize=4)
def _storage_settings(conf_path: str, mtime_ns: int, size: int):
    """The job configuration's ``stream.storage``, read again only when the file changes (the
    dashboard builds its settings on every refresh)."""
    from jobs.config import load_config

    return load_config(Path(conf_path)).stream.storage


@dataclass(frozen=True)
class DashboardSettings:
    tables_dir: Path | str  # a path, or an object store URI (s3://bucket/prefix)
    model_dir: Path
    window_minutes: int = 60
    refresh_seconds: int = 5
    conf_path: Path | None = None  # the job's configuration, for stream.storage

    @property
    def tables(self) -> "TablesLocation":
        from jobs.storage import TablesLocation

        storage = None
        if self.conf_path is not None:
            stat = Path(self.conf_path).stat()
            storage = _storage_settings(str(self.conf_path), stat.st_mtime_ns, stat.st_size)
        return TablesLocation.of(self.tables_dir, storage)

    @classmethod
    def from_env(cls) -> "DashboardSettings":
        repo = Path(__file__).resolve().parents[2]
        return cls(tables_dir=os.environ.get(ENV_TABLES, str(repo / "var" / "delta")),
                   model_dir=Path(os.environ.get(ENV_MODEL, repo / DEFAULT_BUNDLE)),
                   conf_path=Path(os.environ[ENV_CONF]) if os.environ.get(ENV_CONF) else None,
                   window_minutes=int(os.environ.get(ENV_WINDOW, "60")),
                   refresh_seconds=int(os.environ.get(ENV_REFRESH, "5")))

    def to_env(self) -> dict[str, str]:
        env = {ENV_TABLES: str(self.tables_dir), ENV_MODEL: str(self.model_dir),
               ENV_WINDOW: str(self.window_minutes), ENV_REFRESH: str(self.refresh_seconds)}
        if self.conf_path is not None:
            env[ENV_CONF] = str(self.conf_path)
        return env


@dataclass(frozen=True)
class ModelInfo:
    version: str
    threshold: float


def model_info(model_dir: Path) -> ModelInfo:
    """The ensemble threshold and version from the bundle's manifest (no model is loaded)."""
    manifest = json.loads((Path(model_dir) / "manifest.json").read_text())
    return ModelInfo(version=str(manifest["model_version"]),
                     threshold=float(manifest["ensemble"]["threshold"]["value"]))


def _location(tables: "TablesLocation | Path | str") -> "TablesLocation":
    from jobs.storage import TablesLocation

    return tables if isinstance(tables, TablesLocation) else TablesLocation.of(tables)


def read_table(tables: "TablesLocation | Path | str", name: str, columns: list[str],
               since: datetime | None = None, time_column: str | None = None) -> pd.DataFrame:
    """A Delta table (only ``columns``); an empty frame while the job has not created the table yet.
    With ``since``: only rows whose ``time_column`` is at or after it, from the files that can hold
    them (:mod:`jobs.window_reader`), so that a refresh opens the window's files and not
    the day's, however long the job has run."""
    from jobs.window_reader import read_window

    location = _location(tables)
    try:
        rows = read_window(location, name, columns, since, time_column)
    except FileNotFoundError:  # the table was replaced (a new demo run) since this process opened it
        rows = read_window(location, name, columns, since, time_column)
    if rows is None:
        return pd.DataFrame(columns=columns)
    frame = rows.to_pandas()
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]) and frame[column].dt.tz is None:
            frame[column] = frame[column].dt.tz_localize("UTC")  # the job writes UTC
    return frame


def newest(tables: "TablesLocation | Path | str", name: str, column: str) -> pd.Timestamp | None:
    """The largest ``column`` in the table, from its files' statistics when every file has them (no
    data file is opened), else read from the column; None for a missing or empty table."""
    from jobs.window_reader import newest_value

    value = newest_value(_location(tables), name, column)
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp


@dataclass(frozen=True)
class Snapshot:
    flows: pd.DataFrame
    alerts: pd.DataFrame
    traffic: pd.DataFrame
    batches: pd.DataFrame
    newest: pd.Timestamp | None
    devices: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DEVICE_COLUMNS))
    read_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def empty(self) -> bool:
        return self.traffic.empty


def load_snapshot(settings: DashboardSettings) -> Snapshot:
    """The window: traffic per minute (the counts), the scores of its newest records (at most
    ``SCORE_SAMPLE``, for the histogram), its newest alerts, the devices. What a refresh reads is
    bounded by the window and those limits, not by how long the job has run or how fast records come."""
    tables = settings.tables
    last_minute = newest(tables, TRAFFIC_1M, "minute")
    if last_minute is None:
        empty = pd.DataFrame(columns=FLOW_COLUMNS)
        return Snapshot(empty, pd.DataFrame(columns=ALERT_COLUMNS), pd.DataFrame(columns=TRAFFIC_COLUMNS),
                        pd.DataFrame(columns=BATCH_COLUMNS), None)
    now = pd.Timestamp.now(tz="UTC")
    start = (min(last_minute.floor("min"), now.floor("min")) - timedelta(minutes=settings.window_minutes)).to_pydatetime()
    traffic = read_table(tables, TRAFFIC_1M, TRAFFIC_COLUMNS, since=start, time_column="minute")
    batches = read_table(tables, BATCH_LOG, BATCH_COLUMNS, since=start, time_column="logged_at")
    latest = newest(tables, FLOWS_SCORED, "event_time")
    shown = min(latest, now) if latest is not None else None  # a record from the future is not "newest"
    flows = newest_rows(tables, FLOWS_SCORED, FLOW_COLUMNS, start, shown, SCORE_SAMPLE,
                        first_try=reach_back(traffic, SCORE_SAMPLE))
    alerts = newest_rows(tables, ALERTS, ALERT_COLUMNS, start, shown, ALERTS_SHOWN,
                         first_try=reach_back(traffic, ALERTS_SHOWN, anomalies=True))
    devices = read_table(tables, DEVICES, DEVICE_COLUMNS)
    return Snapshot(flows, alerts, traffic, batches, shown, devices)


def reach_back(traffic: pd.DataFrame, limit: int, anomalies: bool = False) -> pd.Timestamp | None:
    """The latest minute from which traffic_1m counts at least ``limit`` records (or anomalies):
    where reading back from the window's end should find enough rows at the first try."""
    if traffic.empty:
        return None
    counts = traffic["records"].where(traffic["is_anomaly"].astype(bool), 0) if anomalies else traffic["records"]
    per_minute = counts.groupby(traffic["minute"]).sum().sort_index(ascending=False).cumsum()
    enough = per_minute[per_minute >= limit]
    return enough.index[0] if len(enough) else None


def newest_rows(tables: "TablesLocation", name: str, columns: list[str], start: datetime,
                end: pd.Timestamp | None, limit: int, first_try: pd.Timestamp | None = None) -> pd.DataFrame:
    """The ``limit`` newest rows (by ``event_time``) of the window from ``start``: read back from
    ``end`` from ``first_try`` (where the per-minute counts say enough rows are; else 10 s), then a
    minute, ten, then the whole window, until enough are found, so that a busy window is not read
    whole to show fifty alerts or a histogram."""
    if end is None:
        return pd.DataFrame(columns=columns)
    window_start = pd.Timestamp(start)
    tries = [first_try] if first_try is not None else []
    tries += [end - back for back in (timedelta(seconds=10), timedelta(minutes=1), timedelta(minutes=10))]
    tries = sorted({t for t in tries if t > window_start and (first_try is None or t <= first_try)}, reverse=True)
    for since in [*tries, window_start]:
        rows = read_table(tables, name, columns, since=since.to_pydatetime(), time_column="event_time")
        if since == window_start or len(rows) >= limit:
            break
    return rows.sort_values("event_time", ascending=False).head(limit).reset_index(drop=True)


def anomaly_rate_per_minute(traffic: pd.DataFrame) -> pd.DataFrame:
    """minute, records, anomalies, rate_pct — from traffic_1m (several rows per minute and group)."""
    frame = traffic.assign(anomalies=traffic["records"].where(traffic["is_anomaly"].astype(bool), 0))
    per_minute = frame.groupby("minute", as_index=False)[["records", "anomalies"]].sum().sort_values("minute")
    per_minute["rate_pct"] = 100.0 * per_minute["anomalies"] / per_minute["records"]
    return per_minute.reset_index(drop=True)


def protocol_activity(traffic: pd.DataFrame) -> pd.DataFrame:
    """minute, protocol, records."""
    return (traffic.groupby(["minute", "protocol"], as_index=False)["records"].sum()
            .sort_values(["minute", "protocol"]).reset_index(drop=True))


def per_class(traffic: pd.DataFrame) -> pd.DataFrame:
    """Per predicted class (from traffic_1m): category, records, flagged records, flagged share; most
    records first."""
    frame = traffic.assign(flagged=traffic["records"].where(traffic["is_anomaly"].astype(bool), 0),
                           predicted_category=traffic["predicted_category"].fillna("unknown"))
    grouped = frame.groupby(["predicted_class", "predicted_category"], as_index=False)[["records", "flagged"]].sum()
    grouped["flagged_pct"] = 100.0 * grouped["flagged"] / grouped["records"]
    return grouped.sort_values(["records", "predicted_class"], ascending=[False, True]).reset_index(drop=True)


def score_histogram(flows: pd.DataFrame, threshold: float, width: float = 0.05) -> pd.DataFrame:
    """Counts of ensemble scores per bin on a symmetric log scale (``symlog``), flagged and not:
    the browser gets a hundred bars, not one value per record."""
    import numpy as np

    scores = flows["ensemble_score"].astype(float).to_numpy()
    flagged = flows["is_anomaly"].astype(bool).to_numpy()
    finite = np.isfinite(scores)
    scores, flagged = symlog(scores[finite]), flagged[finite]
    low = min(float(scores.min()) if len(scores) else 0.0, 0.0)
    high = max(float(scores.max()) if len(scores) else 1.0, float(symlog(threshold)))
    edges = np.arange(np.floor(low / width) * width, high + width + 1e-9, width)
    not_flagged, _ = np.histogram(scores[~flagged], bins=edges)
    flagged_counts, _ = np.histogram(scores[flagged], bins=edges)
    return pd.DataFrame({"low": edges[:-1], "high": edges[1:], "not_flagged": not_flagged, "flagged": flagged_counts})


def symlog(values):
    """sign(x) * log10(1 + |x|): a log scale that keeps zero and negative scores."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    return np.sign(values) * np.log10(1.0 + np.abs(values))


def recent_alerts(alerts: pd.DataFrame, limit: int = 50) -> pd.DataFrame:
    """The newest alerts, for a table: top features joined into one string."""
    frame = alerts.sort_values("event_time", ascending=False).head(limit).copy()
    frame["top_features"] = frame["top_features"].map(
        lambda values: ", ".join(values) if values is not None and len(values) else "")
    frame["device"] = frame["device_id"].where(frame["device_id"].notna(), frame["source_id"])
    columns = ["event_time", "device", "device_ip", "device_vendor", "predicted_class", "predicted_category", "severity",
               "ensemble_score", "top_features", "protocol", "label"]
    return frame[columns].reset_index(drop=True)


def devices_view(devices: pd.DataFrame, limit: int = 50) -> pd.DataFrame:
    """The devices the sensor named, those with anomalies first (then the most recently seen)."""
    if devices.empty:
        return devices
    frame = devices.sort_values(["anomalies", "last_seen"], ascending=[False, False]).head(limit)
    return frame[["device_id", "device_ip", "device_vendor", "records", "anomalies", "last_severity", "last_anomaly",
                  "first_seen", "last_seen"]].reset_index(drop=True)


def headline(snapshot: Snapshot, minutes: int = 5) -> dict[str, float]:
    """Records, anomalies and anomaly rate over the window and over its last ``minutes`` (from
    traffic_1m's per-minute counts), and the records quarantined in the window."""
    traffic = snapshot.traffic
    counts = traffic["records"].astype(float)
    flagged = counts.where(traffic["is_anomaly"].astype(bool), 0.0)
    total, anomalies = float(counts.sum()), float(flagged.sum())
    if len(traffic):
        last = traffic["minute"].max()
        recent = traffic["minute"] > last - timedelta(minutes=minutes)
        recent_total, recent_flagged = float(counts[recent].sum()), float(flagged[recent].sum())
    else:
        recent_total = recent_flagged = 0.0
    return {
        "records": total, "anomalies": anomalies,
        "rate_pct": 100.0 * anomalies / total if total else 0.0,
        "recent_rate_pct": 100.0 * recent_flagged / recent_total if recent_total else 0.0,
        "quarantined": float(snapshot.batches["quarantined"].sum()) if not snapshot.batches.empty else 0.0,
    }
