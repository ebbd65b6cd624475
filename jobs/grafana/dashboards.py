"""``iomt-ad grafana``: the Grafana dashboards (Traffic, Anomalies, Models) and alert rules as code.

Dashboards are built with grafana-foundation-sdk and written as JSON under
``docker/grafana/dashboards/``; the alert rules, contact point and notification policy go to
``docker/grafana/provisioning/alerting/`` (see ``jobs.grafana.alerts``; ``jobs.grafana.command`` writes both). Thresholds come from the
model bundle's manifest, so regenerating after a retrain moves the threshold lines. The output is
deterministic (sorted keys, fixed uids): a test checks the committed files equal a fresh run.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.grafana import flux
from jobs.grafana.sdk import datasource_ref, flux_query
from models import DEFAULT_BUNDLE_PATH
from schemas import influx as schema

REPO = Path(__file__).resolve().parents[2]
GRAFANA_DIR = REPO / "docker" / "grafana"
DEFAULT_MODEL = DEFAULT_BUNDLE_PATH
DEFAULT_BUCKET = "iomt"
DASHBOARD_FILES = ("traffic.json", "anomalies.json", "models.json")


@dataclass(frozen=True)
class ModelFacts:
    """What the dashboards need from a bundle's manifest."""
    version: str
    thresholds: dict[str, float]  # InfluxDB field -> threshold

    @property
    def ensemble_threshold(self) -> float:
        return self.thresholds[schema.COUNT_FIELD]


def model_facts(bundle_dir: Path) -> ModelFacts:
    manifest = json.loads((Path(bundle_dir) / "manifest.json").read_text())
    thresholds = {field: float(manifest["thresholds"][detector]["value"])
                  for detector, field in schema.THRESHOLD_FIELDS.items()}
    return ModelFacts(version=str(manifest["model_version"]), thresholds=thresholds)


def thresholds(steps: list[tuple[float | None, str]]) -> Any:
    from grafana_foundation_sdk.builders.dashboard import ThresholdsConfig
    from grafana_foundation_sdk.models.dashboard import Threshold, ThresholdsMode

    return ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(
        [Threshold(value=value, color=color) for value, color in steps])


def _panel(module: Any, title: str, description: str, queries: list[tuple[str, str]],
           height: int, width: int) -> Any:
    panel = (module.Panel().title(title).description(description).datasource(datasource_ref())
             .height(height).span(width))
    for ref_id, query in queries:
        panel = panel.with_target(flux_query(ref_id, query))
    return panel


def _dashboard(uid: str, title: str, description: str) -> Any:
    from grafana_foundation_sdk.builders.dashboard import ConstantVariable, Dashboard, TimePicker
    from grafana_foundation_sdk.models.dashboard import DashboardCursorSync

    return (Dashboard(title).uid(uid).description(description).tags(["iomt-ad"])
            .time("now-1h", "now").refresh("30s").timezone("browser")
            .tooltip(DashboardCursorSync.CROSSHAIR)
            .timepicker(TimePicker().refresh_intervals(["10s", "30s", "1m", "5m", "15m"]))
            .with_variable(ConstantVariable(flux.BUCKET_VARIABLE).value(DEFAULT_BUCKET)
                           .description("InfluxDB bucket the streaming job writes to")))


FLAGGED_POINTS = "flagged record (every record where influxdb.record_points is all)"


def traffic_dashboard(facts: ModelFacts, interval: str = flux.DEFAULT_INTERVAL) -> Any:
    from grafana_foundation_sdk.builders import piechart, stat, table, timeseries

    return (_dashboard("iomt-ad-traffic", "IoMT-AD · Traffic",
                       "Flow records scored by the streaming job: protocols, benign variability, attacks, volume, "
                       "devices.")
            .with_panel(_panel(timeseries, "Protocol activity", "Records per window by protocol.",
                               [("A", flux.protocol_activity(interval))], 9, 16).unit("short"))
            .with_panel(_panel(stat, "Records scored", "Records in the time range.",
                               [("A", flux.record_count())], 9, 8).unit("short"))
            .with_panel(_panel(timeseries, "Benign variability (Rate)",
                               "Mean and standard deviation of Rate over the records classified Benign (those "
                               "with a finite Rate), per window.",
                               [("A", flux.benign_rate("mean", interval)), ("B", flux.benign_rate("stddev", interval))],
                               9, 12).unit("pps"))
            .with_panel(_panel(piechart, "Attack distribution",
                               "Flagged records per predicted attack class in the time range (flagged records "
                               "the classifier calls Benign are left out).",
                               [("A", flux.attack_distribution())], 9, 12).unit("short"))
            .with_panel(_panel(timeseries, "Traffic volume", "Sum of Tot size per window.",
                               [("A", flux.traffic_bytes(interval))], 8, 24).unit("decbytes"))
            .with_panel(_panel(table, "Devices", "Per device (the sensor's device_id, or the replayed file) in the "
                               "time range: records, anomalies, anomaly rate, highest ensemble score and seconds "
                               "since its latest record; most anomalies first.",
                               [("A", flux.devices())], 10, 24)))


def anomalies_dashboard(facts: ModelFacts, interval: str = flux.DEFAULT_INTERVAL) -> Any:
    from grafana_foundation_sdk.builders import bargauge, stat, statushistory, table, timeseries
    from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig
    from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode

    threshold = facts.ensemble_threshold
    score = (_panel(timeseries, "Ensemble score vs threshold",
                    f"Max and mean ensemble score per window; the red line is the bundle's threshold "
                    f"({threshold:.4f}, model {facts.version}).",
                    [("A", flux.ensemble_score("max", interval)), ("B", flux.ensemble_score("mean", interval))],
                    9, 16)
             .thresholds(thresholds([(None, "green"), (threshold, "red")]))
             .thresholds_style(GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.LINE)))
    return (_dashboard("iomt-ad-anomalies", "IoMT-AD · Anomalies (real time)",
                       "Ensemble scores, anomaly rate, recent anomalies, attacks over time, pipeline health.")
            .with_panel(score)
            .with_panel(_panel(stat, "Anomaly rate", "Share of records flagged in the time range.",
                               [("A", flux.anomaly_rate())], 9, 8).unit("percent").decimals(2)
                        .thresholds(thresholds([(None, "green"), (5.0, "orange"), (20.0, "red")])))
            .with_panel(_panel(timeseries, "Anomaly rate over time", "Share of records flagged per window.",
                               [("A", flux.anomaly_rate_over_time(interval))], 8, 12).unit("percent"))
            .with_panel(_panel(statushistory, "Attack heat map (class × time)",
                               "Flagged records per predicted class and window.",
                               [("A", flux.attack_heatmap())], 8, 12)
                        .thresholds(thresholds([(None, "blue"), (10.0, "orange"), (100.0, "red")])))
            .with_panel(_panel(table, "Recent anomalies", "The last 50 flagged records; source is the device "
                               "(the sensor's device_id) or the replayed file.",
                               [("A", flux.recent_anomalies())], 10, 24))
            .with_panel(_panel(bargauge, "Devices with the most anomalies",
                               "Flagged records per device (source) in the time range.",
                               [("A", flux.anomalies_per_device())], 10, 12))
            .with_panel(_panel(stat, "System health: seconds since the last record",
                               "Time since the latest event time of any record in the time range; red when the "
                               "stream has stalled.",
                               [("A", flux.seconds_since_last_record())], 6, 12).unit("s")
                        .thresholds(thresholds([(None, "green"), (60.0, "orange"), (300.0, "red")])))
            .with_panel(_panel(stat, "System health: throughput", "Records per second, per minute.",
                               [("A", flux.records_per_second(interval))], 6, 12).unit("short").decimals(1)))


def models_dashboard(facts: ModelFacts, interval: str = flux.DEFAULT_INTERVAL) -> Any:
    from grafana_foundation_sdk.builders import bargauge, table, timeseries, xychart

    return (_dashboard("iomt-ad-models", "IoMT-AD · Models",
                       "The detectors behind the ensemble: scores, per-class detection, thresholds, versions, drift.")
            .with_panel(_panel(xychart, "Autoencoder error vs Isolation Forest score",
                               f"One point per {FLAGGED_POINTS}, split by the ensemble decision.",
                               [("A", flux.ae_error_vs_if_score())], 10, 12))
            .with_panel(_panel(bargauge, "Detection per true class",
                               "Share of records flagged per labelled class (Benign: false-positive rate); "
                               "records without a label are left out.",
                               [("A", flux.detection_per_class())], 10, 12).unit("percent").min(0).max(100))
            .with_panel(_panel(table, "Thresholds",
                               f"Thresholds of bundle {facts.version} (benign-calibrated) and each detector's "
                               "highest score in the time range. The share of records above each threshold "
                               "needs every record: query flows_scored (iomt-ad sql).",
                               [("A", flux.threshold_table(facts.thresholds))], 7, 12))
            .with_panel(_panel(table, "Model versions", "Records scored per model version.",
                               [("A", flux.model_versions())], 7, 12))
            .with_panel(_panel(timeseries, "Detector scores, maximum per window",
                               "Each detector's highest score per window (the per-device aggregates keep each "
                               "score's maximum, not its distribution).",
                               [("A", flux.detector_maxima(interval))], 7, 24))
            .with_panel(drift_panel())
            .with_panel(_panel(table, "Drifting features and scores",
                               "The latest hour of each device group and measure in the time range, the furthest "
                               "from the bundle's reference first: PSI, records, drifted (1: the job counted at "
                               "least drift.min_records records and a PSI at drift.threshold).",
                               [("A", flux.drifting_measures())], 9, 24)))


DRIFT_LINES = ((None, "green"), (0.1, "orange"), (0.2, "red"))  # the usual moderate and significant PSI


def drift_panel() -> Any:
    """The score distribution's PSI and the highest feature PSI per hour and device group."""
    from grafana_foundation_sdk.builders import timeseries
    from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig
    from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode

    return (_panel(timeseries, "Drift from the model's reference (PSI per hour)",
                   "How far each hour's traffic lies from the bundle's drift reference, per device group: the "
                   "ensemble score's distribution (A) and the feature furthest from its own (B). Below 0.1 no "
                   "shift, 0.1-0.2 moderate (orange), above 0.2 significant (red); the alert rule follows the job's "
                   "drift.threshold and drift.min_records.",
                   [("A", flux.score_drift()), ("B", flux.feature_drift_max())], 9, 24)
            .thresholds(thresholds(list(DRIFT_LINES)))
            .thresholds_style(GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.LINE)))


DASHBOARDS: dict[str, Callable[[ModelFacts, str], Any]] = {
    "traffic.json": traffic_dashboard,
    "anomalies.json": anomalies_dashboard,
    "models.json": models_dashboard,
}


def to_json(obj: Any) -> str:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    return json.dumps(obj, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
