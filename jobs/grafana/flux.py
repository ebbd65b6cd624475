"""The Flux queries of the Grafana dashboards and alert rules, over the schema of ``schemas.influx``.

Each query reads the bucket from the dashboard variable ``${bucket}`` and the time range from
Grafana's ``v.timeRangeStart`` / ``v.timeRangeStop`` / ``v.windowPeriod``, so one text serves the
dashboard, the alert rule (whose relative time range sets ``v``) and the test that runs every query
against a real InfluxDB (which declares ``v`` and substitutes the bucket).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from schemas import influx as schema

BUCKET_VARIABLE: Final[str] = "bucket"


def _source(fields: Sequence[str], extra: str = "") -> str:
    """from + range + the measurement and field filter (+ an extra predicate on tags)."""
    field_test = " or ".join(f'r._field == "{name}"' for name in fields)
    predicate = f'r._measurement == "{schema.MEASUREMENT}" and ({field_test})'
    if extra:
        predicate += f" and {extra}"
    return (f'from(bucket: "${{{BUCKET_VARIABLE}}}")\n'
            "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n"
            f"  |> filter(fn: (r) => {predicate})")


def _records(extra: str = "") -> str:
    return _source([schema.COUNT_FIELD], extra)


ANOMALOUS: Final[str] = f'r.{schema.ANOMALY_TAG} == "{schema.TRUE}"'
ANOMALY_AS_PERCENT: Final[str] = (
    f'  |> map(fn: (r) => ({{r with _value: if r.{schema.ANOMALY_TAG} == "{schema.TRUE}" then 100.0 else 0.0}}))')


# --- Traffic -------------------------------------------------------------------------------------

def protocol_activity() -> str:
    return (_records() + "\n"
            '  |> group(columns: ["protocol"])\n'
            '  |> sort(columns: ["_time"])\n'
            "  |> aggregateWindow(every: v.windowPeriod, fn: count, createEmpty: false)")


def benign_rate(fn: str) -> str:
    """``Rate`` of the records the classifier calls Benign, per window (fn: mean or stddev)."""
    return (_source(["rate"], 'r.predicted_class == "Benign"') + "\n"
            "  |> group()\n"
            '  |> sort(columns: ["_time"])\n'
            f"  |> aggregateWindow(every: v.windowPeriod, fn: {fn}, createEmpty: false)\n"
            f'  |> set(key: "_field", value: "benign rate ({fn})")')


def attack_distribution() -> str:
    return (_records('r.predicted_class != "Benign"') + "\n"
            '  |> group(columns: ["predicted_class"])\n'
            "  |> count()")


def traffic_bytes() -> str:
    return (_source(["tot_size"]) + "\n"
            "  |> group()\n"
            '  |> sort(columns: ["_time"])\n'
            "  |> aggregateWindow(every: v.windowPeriod, fn: sum, createEmpty: false)\n"
            '  |> set(key: "_field", value: "bytes (sum of Tot size)")')


def record_count() -> str:
    return (_records() + "\n"
            "  |> group()\n"
            "  |> count()\n"
            '  |> set(key: "_field", value: "records")')


# --- Anomalies -----------------------------------------------------------------------------------

def ensemble_score(fn: str) -> str:
    return (_records() + "\n"
            "  |> group()\n"
            '  |> sort(columns: ["_time"])\n'
            f"  |> aggregateWindow(every: v.windowPeriod, fn: {fn}, createEmpty: false)\n"
            f'  |> set(key: "_field", value: "ensemble score ({fn})")')


def anomaly_rate_over_time() -> str:
    return (_records() + "\n"
            "  |> group()\n"
            '  |> sort(columns: ["_time"])\n'
            + ANOMALY_AS_PERCENT + "\n"
            "  |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)\n"
            '  |> set(key: "_field", value: "anomaly rate %")')


def anomaly_rate() -> str:
    """One value: the percentage of records flagged in the time range (also the alert's query)."""
    return (_records() + "\n"
            "  |> group()\n"
            + ANOMALY_AS_PERCENT + "\n"
            "  |> mean()\n"
            '  |> set(key: "_field", value: "anomaly rate %")')


def recent_anomalies(limit: int = 50) -> str:
    fields = [*schema.SCORE_FIELDS, "label"]
    keep = ["_time", "source", "protocol", "predicted_class", "predicted_category", "severity",
            "ensemble_score", "ae_error", "if_score", "clf_attack_proba", "label"]
    keep_list = ", ".join(f'"{name}"' for name in keep)
    return (_source(fields, ANOMALOUS) + "\n"
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
            "  |> group()\n"
            f"  |> keep(columns: [{keep_list}])\n"
            '  |> sort(columns: ["_time"], desc: true)\n'
            f"  |> limit(n: {limit})")


def anomalies_per_device(limit: int = 15) -> str:
    """Flagged records per device (the ``source`` tag: the sensor's device, or a replayed file) in the
    time range, most first."""
    return (_records(ANOMALOUS) + "\n"
            '  |> group(columns: ["source"])\n'
            "  |> count()\n"
            "  |> group()\n"
            '  |> rename(columns: {_value: "anomalies"})\n'
            '  |> keep(columns: ["source", "anomalies"])\n'
            '  |> sort(columns: ["anomalies"], desc: true)\n'
            f"  |> limit(n: {limit})")


def attack_heatmap() -> str:
    """Flagged records per predicted class and window: one row per class in a status history."""
    return (_records(ANOMALOUS) + "\n"
            '  |> group(columns: ["predicted_class"])\n'
            '  |> sort(columns: ["_time"])\n'
            "  |> aggregateWindow(every: v.windowPeriod, fn: count, createEmpty: false)")


def seconds_since_last_record() -> str:
    return (_records() + "\n"
            "  |> group()\n"
            "  |> last()\n"
            "  |> map(fn: (r) => ({_time: r._time, _field: \"seconds since the last record\",\n"
            "      _value: float(v: int(v: now()) - int(v: r._time)) / 1000000000.0}))")


def records_per_second() -> str:
    return (_records() + "\n"
            "  |> group()\n"
            '  |> sort(columns: ["_time"])\n'
            "  |> aggregateWindow(every: 1m, fn: count, createEmpty: false)\n"
            "  |> map(fn: (r) => ({_time: r._time, _field: \"records/s\", _value: float(v: r._value) / 60.0}))")


# --- Models --------------------------------------------------------------------------------------

def ae_error_vs_if_score(limit: int = 2000) -> str:
    return (_source(["ae_error", "if_score"]) + "\n"
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
            f'  |> group(columns: ["{schema.ANOMALY_TAG}"])\n'
            f'  |> keep(columns: ["_time", "ae_error", "if_score", "{schema.ANOMALY_TAG}"])\n'
            f"  |> limit(n: {limit})")


def detection_per_class() -> str:
    """Percentage flagged per true class (the ``label`` field); for Benign, the false-positive rate."""
    return (_source(["label"]) + "\n"
            f'  |> map(fn: (r) => ({{_time: r._time, class: r._value,\n'
            f'      _value: if r.{schema.ANOMALY_TAG} == "{schema.TRUE}" then 100.0 else 0.0}}))\n'
            '  |> group(columns: ["class"])\n'
            "  |> mean()")


def threshold_table(thresholds: Mapping[str, float]) -> str:
    """Per detector: its threshold from the bundle and the share of records above it."""
    fields = list(thresholds)
    branches = " else ".join(f'if f == "{name}" then {value!r}' for name, value in thresholds.items())
    return ("threshold = (f) => " + branches + " else 0.0\n"
            + _source(fields) + "\n"
            '  |> group(columns: ["_field"])\n'
            "  |> map(fn: (r) => ({r with above: if r._value > threshold(f: r._field) then 100.0 else 0.0}))\n"
            '  |> mean(column: "above")\n'
            "  |> map(fn: (r) => ({detector: r._field, threshold: threshold(f: r._field), "
            "\"% of records above\": r.above}))")


def score_quantile(q: float) -> str:
    fields = list(schema.SCORE_FIELDS)
    return (_source(fields) + "\n"
            '  |> group(columns: ["_field"])\n'
            f'  |> quantile(q: {q}, column: "_value")')


def model_versions() -> str:
    return (_records() + "\n"
            '  |> group(columns: ["model_version"])\n'
            "  |> count()\n"
            '  |> map(fn: (r) => ({"model version": r.model_version, records: r._value}))\n'
            "  |> group()")
