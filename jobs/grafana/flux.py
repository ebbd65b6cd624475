"""The Flux queries of the Grafana dashboards and alert rules, over the schema of ``schemas.influx``.

Each query reads the bucket from the dashboard variable ``${bucket}`` and the time range from
Grafana's ``v.timeRangeStart`` / ``v.timeRangeStop`` / ``v.windowPeriod``, so one text serves the
dashboard, the alert rule (whose relative time range sets ``v``) and the test that runs every query
against a real InfluxDB (which declares ``v`` and substitutes the bucket).

Counts, rates, score means and maxima, devices, model versions and per-class detection come from the
per-device aggregates (``device_traffic``): a window's value combines every partial point in it (the
sum of each ``*_sum`` and count field, the max of each ``*_max`` field), windows being at least one
aggregate interval long (:func:`every`). What needs the records themselves (recent anomalies, attacks
per predicted class, the detectors' scores of flagged records) comes from ``flow_scores``, which holds
the anomalous records (every record with ``influxdb.record_points: all``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from schemas import influx as schema

BUCKET_VARIABLE: Final[str] = "bucket"


def flux_duration(interval: str) -> str:
    """``influxdb.aggregate_interval`` (e.g. ``10s``, ``1 minute``) as a Flux duration (``60s``)."""
    from jobs.config import InfluxConfig

    return f"{InfluxConfig(aggregate_interval=interval).aggregate_interval_ns // 1_000_000_000}s"


def default_interval() -> str:
    """The default ``influxdb.aggregate_interval`` as a Flux duration."""
    from jobs.config import InfluxConfig

    return flux_duration(InfluxConfig().aggregate_interval)


DEFAULT_INTERVAL: Final[str] = default_interval()


def _from(measurement: str, fields: Sequence[str], extra: str = "") -> str:
    """from + range + the measurement and field filter (+ an extra predicate on tags)."""
    field_test = " or ".join(f'r._field == "{name}"' for name in fields)
    predicate = f'r._measurement == "{measurement}" and ({field_test})'
    if extra:
        predicate += f" and {extra}"
    return (f'from(bucket: "${{{BUCKET_VARIABLE}}}")\n'
            "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n"
            f"  |> filter(fn: (r) => {predicate})")


def _aggregates(fields: Sequence[str], extra: str = "") -> str:
    return _from(schema.AGGREGATE_MEASUREMENT, fields, extra)


def _flagged(extra: str = "") -> str:
    """The per-record points of flagged records, one row each (``ensemble_score``: on every point)."""
    return _from(schema.MEASUREMENT, [schema.COUNT_FIELD], ANOMALOUS + (f" and {extra}" if extra else ""))


def every(interval: str) -> str:
    """The line that sets ``every``, the window of a time series: Grafana's ``v.windowPeriod``, but no
    shorter than the aggregate interval (a shorter window would hold some intervals and not others)."""
    return f"every = if int(v: v.windowPeriod) > int(v: {interval}) then v.windowPeriod else {interval}\n"


STREAM_NAMES: Final[dict[str, str]] = {"sum": "sums", "max": "maxima"}


def _totals(fields: Sequence[str], by: Sequence[str]) -> str:
    """``device_traffic``'s ``fields`` combined over the time range per ``by`` (each field as the
    schema says: sum or max), one row per group with a column per field."""
    group = ", ".join(f'"{name}"' for name in (*by, "_field"))
    keep = ", ".join(f'"{name}"' for name in (*by, "_field", "_value"))
    lines, streams = ["data = " + _aggregates(fields)], []
    for fn in ("sum", "max"):
        chosen = [name for name in fields if schema.AGGREGATE_FIELDS[name] == fn]
        if chosen:
            test = " or ".join(f'r._field == "{name}"' for name in chosen)
            lines.append(f"{STREAM_NAMES[fn]} = data\n  |> filter(fn: (r) => {test})\n  |> group(columns: [{group}])\n"
                         f"  |> {fn}()\n  |> keep(columns: [{keep}])")
            streams.append(STREAM_NAMES[fn])
    combined = streams[0] if len(streams) == 1 else f"union(tables: [{', '.join(streams)}])"
    rows = ", ".join(f'"{name}"' for name in by)
    return "\n".join(lines) + (f"\n{combined}\n  |> group()\n"
                               f'  |> pivot(rowKey: [{rows}], columnKey: ["_field"], valueColumn: "_value")')


def _windowed(fields: Sequence[str], fn: str, interval: str) -> str:
    """``device_traffic``'s ``fields`` (combined the same way: ``fn``) per window, a column per field."""
    return (every(interval) + _aggregates(fields) + "\n"
            '  |> group(columns: ["_field"])\n'
            '  |> sort(columns: ["_time"])\n'
            f"  |> aggregateWindow(every: every, fn: {fn}, createEmpty: false)\n"
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")')


ANOMALOUS: Final[str] = f'r.{schema.ANOMALY_TAG} == "{schema.TRUE}"'
RECORDS: Final[str] = schema.RECORDS_FIELD


# --- Traffic -------------------------------------------------------------------------------------

def protocol_activity(interval: str = DEFAULT_INTERVAL) -> str:
    return (every(interval) + _aggregates([RECORDS]) + "\n"
            '  |> group(columns: ["protocol"])\n'
            '  |> sort(columns: ["_time"])\n'
            "  |> aggregateWindow(every: every, fn: sum, createEmpty: false)")


def benign_rate(fn: str, interval: str = DEFAULT_INTERVAL) -> str:
    """``Rate`` of the records the classifier calls Benign, per window (fn: mean, or stddev: the
    sample standard deviation, from the sums of the rates and of their squares)."""
    n, total, squares = "r.benign_rate_records", "r.benign_rate_sum", "r.benign_rate_sq_sum"
    if fn == "mean":
        value, enough = f"{total} / {n}", f"{n} > 0.0"
    elif fn == "stddev":
        spread = f"{squares} - {total} * {total} / {n}"
        value, enough = f"(if {spread} > 0.0 then ({spread}) / ({n} - 1.0) else 0.0) ^ 0.5", f"{n} > 1.0"
    else:
        raise ValueError(f"benign_rate: fn must be mean or stddev, not {fn!r}")
    return (_windowed(["benign_rate_records", "benign_rate_sum", "benign_rate_sq_sum"], "sum", interval) + "\n"
            f"  |> filter(fn: (r) => exists r.benign_rate_records and {enough})\n"
            f'  |> map(fn: (r) => ({{_time: r._time, _field: "benign rate ({fn})", _value: {value}}}))')


def attack_distribution() -> str:
    """Flagged records per predicted attack class in the time range (``flow_scores``)."""
    return (_flagged('r.predicted_class != "Benign"') + "\n"
            '  |> group(columns: ["predicted_class"])\n'
            "  |> count()")


def traffic_bytes(interval: str = DEFAULT_INTERVAL) -> str:
    return (every(interval) + _aggregates(["tot_size_sum"]) + "\n"
            "  |> group()\n"
            '  |> sort(columns: ["_time"])\n'
            "  |> aggregateWindow(every: every, fn: sum, createEmpty: false)\n"
            '  |> set(key: "_field", value: "bytes (sum of Tot size)")')


def record_count() -> str:
    return (_aggregates([RECORDS]) + "\n"
            "  |> group()\n"
            "  |> sum()\n"
            '  |> set(key: "_field", value: "records")')


def devices(limit: int = 50) -> str:
    """Per device (``source``) in the time range: records, anomalies, anomaly rate, highest ensemble
    score, seconds since its latest record; most anomalies first."""
    return (_totals([RECORDS, "anomalies", "ensemble_score_max", "last_seen"], ["source"]) + "\n"
            "  |> map(fn: (r) => ({source: r.source, records: r.records, anomalies: r.anomalies,\n"
            '      "anomaly rate %": 100.0 * r.anomalies / r.records, "max ensemble score": r.ensemble_score_max,\n'
            '      "seconds since last record": float(v: int(v: now())) / 1000000000.0 - r.last_seen}))\n'
            '  |> sort(columns: ["anomalies", "records"], desc: true)\n'
            f"  |> limit(n: {limit})")


# --- Anomalies -----------------------------------------------------------------------------------

def ensemble_score(fn: str, interval: str = DEFAULT_INTERVAL) -> str:
    """The ensemble score per window: its max, or its mean (the sum of the scores over the records)."""
    if fn == "max":
        return (every(interval) + _aggregates(["ensemble_score_max"]) + "\n"
                "  |> group()\n"
                '  |> keep(columns: ["_time", "_value"])\n'
                '  |> sort(columns: ["_time"])\n'
                "  |> aggregateWindow(every: every, fn: max, createEmpty: false)\n"
                '  |> set(key: "_field", value: "ensemble score (max)")')
    if fn != "mean":
        raise ValueError(f"ensemble_score: fn must be max or mean, not {fn!r}")
    return (_windowed([RECORDS, "ensemble_score_sum"], "sum", interval) + "\n"
            "  |> filter(fn: (r) => exists r.ensemble_score_sum and r.records > 0.0)\n"
            '  |> map(fn: (r) => ({_time: r._time, _field: "ensemble score (mean)",\n'
            "      _value: r.ensemble_score_sum / r.records}))")


def anomaly_rate_over_time(interval: str = DEFAULT_INTERVAL) -> str:
    return (_windowed([RECORDS, "anomalies"], "sum", interval) + "\n"
            '  |> map(fn: (r) => ({_time: r._time, _field: "anomaly rate %",\n'
            "      _value: 100.0 * r.anomalies / r.records}))")


def anomaly_rate() -> str:
    """One value: the percentage of records flagged in the time range (also the alert's query)."""
    return (_aggregates([RECORDS, "anomalies"]) + "\n"
            '  |> group(columns: ["_field"])\n'
            "  |> sum()\n"
            "  |> group()\n"
            '  |> pivot(rowKey: [], columnKey: ["_field"], valueColumn: "_value")\n'
            '  |> map(fn: (r) => ({_field: "anomaly rate %", _value: 100.0 * r.anomalies / r.records}))')


def kafka_records_lost() -> str:
    """One value: the Kafka records that expired unread in the time range (no row when none did)."""
    return (_from(schema.GAP_MEASUREMENT, ["lost_records"]) + "\n"
            "  |> group()\n"
            "  |> sum()\n"
            '  |> set(key: "_field", value: "records lost")')


def recent_anomalies(limit: int = 50) -> str:
    fields = [*schema.SCORE_FIELDS, "label"]
    keep = ["_time", "source", "protocol", "predicted_class", "predicted_category", "severity",
            "ensemble_score", "ae_error", "if_score", "clf_attack_proba", "label"]
    keep_list = ", ".join(f'"{name}"' for name in keep)
    return (_from(schema.MEASUREMENT, fields, ANOMALOUS) + "\n"
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
            "  |> group()\n"
            f"  |> keep(columns: [{keep_list}])\n"
            '  |> sort(columns: ["_time"], desc: true)\n'
            f"  |> limit(n: {limit})")


def anomalies_per_device(limit: int = 15) -> str:
    """Flagged records per device (the ``source`` tag: the sensor's device, or a replayed file) in the
    time range, most first."""
    return (_aggregates(["anomalies"]) + "\n"
            '  |> group(columns: ["source"])\n'
            "  |> sum()\n"
            "  |> filter(fn: (r) => r._value > 0.0)\n"
            "  |> group()\n"
            '  |> rename(columns: {_value: "anomalies"})\n'
            '  |> keep(columns: ["source", "anomalies"])\n'
            '  |> sort(columns: ["anomalies"], desc: true)\n'
            f"  |> limit(n: {limit})")


def attack_heatmap() -> str:
    """Flagged records per predicted class and window (``flow_scores``): one row per class in a
    status history."""
    return (_flagged() + "\n"
            '  |> group(columns: ["predicted_class"])\n'
            '  |> sort(columns: ["_time"])\n'
            "  |> aggregateWindow(every: v.windowPeriod, fn: count, createEmpty: false)")


def seconds_since_last_record() -> str:
    """Seconds from the latest event time of any record in the time range to now."""
    return (_aggregates(["last_seen"]) + "\n"
            "  |> group()\n"
            "  |> max()\n"
            "  |> map(fn: (r) => ({_time: r._time, _field: \"seconds since the last record\",\n"
            "      _value: float(v: int(v: now())) / 1000000000.0 - r._value}))")


def records_per_second(interval: str = DEFAULT_INTERVAL) -> str:
    """Records per second, averaged over each window (at least a minute and an aggregate interval)."""
    return (f"every = if int(v: 1m) > int(v: {interval}) then 1m else {interval}\n"
            + _aggregates([RECORDS]) + "\n"
            "  |> group()\n"
            '  |> sort(columns: ["_time"])\n'
            "  |> aggregateWindow(every: every, fn: sum, createEmpty: false)\n"
            "  |> map(fn: (r) => ({_time: r._time, _field: \"records/s\",\n"
            "      _value: r._value / (float(v: int(v: every)) / 1000000000.0)}))")


# --- Models --------------------------------------------------------------------------------------

def ae_error_vs_if_score(limit: int = 2000) -> str:
    """The autoencoder's error and the Isolation Forest's score of each record with a point."""
    return (_from(schema.MEASUREMENT, ["ae_error", "if_score"]) + "\n"
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
            f'  |> group(columns: ["{schema.ANOMALY_TAG}"])\n'
            f'  |> keep(columns: ["_time", "ae_error", "if_score", "{schema.ANOMALY_TAG}"])\n'
            f"  |> limit(n: {limit})")


def detection_per_class() -> str:
    """Percentage flagged per true class (the ``label`` tag, where known); for Benign, the
    false-positive rate."""
    return (_totals([RECORDS, "anomalies"], ["label"]) + "\n"
            f'  |> filter(fn: (r) => r.label != "{schema.UNKNOWN}")\n'
            '  |> map(fn: (r) => ({class: r.label, _value: 100.0 * r.anomalies / r.records}))\n'
            '  |> group(columns: ["class"])')


def threshold_table(thresholds: Mapping[str, float]) -> str:
    """Per detector: its threshold from the bundle and its highest score in the time range."""
    fields = [f"{name}_max" for name in thresholds]
    branches = " else ".join(f'if f == "{name}_max" then {value!r}' for name, value in thresholds.items())
    names = " else ".join(f'if f == "{name}_max" then "{name}"' for name in thresholds)
    return ("threshold = (f) => " + branches + " else 0.0\n"
            "detector = (f) => " + names + " else f\n"
            + _aggregates(fields) + "\n"
            '  |> group(columns: ["_field"])\n'
            "  |> max()\n"
            "  |> group()\n"
            "  |> map(fn: (r) => ({detector: detector(f: r._field), threshold: threshold(f: r._field), "
            "\"highest score\": r._value}))\n"
            '  |> sort(columns: ["detector"])')


def detector_maxima(interval: str = DEFAULT_INTERVAL) -> str:
    """Each detector's highest score per window."""
    fields = [f"{name}_max" for name in schema.SCORE_FIELDS]
    return (every(interval) + _aggregates(fields) + "\n"
            '  |> group(columns: ["_field"])\n'
            '  |> keep(columns: ["_time", "_field", "_value"])\n'
            '  |> sort(columns: ["_time"])\n'
            "  |> aggregateWindow(every: every, fn: max, createEmpty: false)")


def model_versions() -> str:
    return (_aggregates([RECORDS]) + "\n"
            '  |> group(columns: ["model_version"])\n'
            "  |> sum()\n"
            '  |> map(fn: (r) => ({"model version": r.model_version, records: r._value}))\n'
            "  |> group()")


# --- Drift (model_drift: a point per hour, device group, model version and measure) ---------------

def _drift(fields: Sequence[str], extra: str = "") -> str:
    return _from(schema.DRIFT_MEASUREMENT, fields, extra)


def score_drift() -> str:
    """The score distribution's PSI per hour, a series per device group (and model version)."""
    return (_drift(["psi"], f'r.measure == "{DRIFT_SCORE}"') + "\n"
            '  |> group(columns: ["device_group", "model_version"])\n'
            '  |> keep(columns: ["_time", "_value", "device_group", "model_version"])\n'
            '  |> sort(columns: ["_time"])')


def feature_drift_max() -> str:
    """The highest PSI of any feature per hour, a series per device group (and model version)."""
    return (_drift(["psi"], f'r.measure != "{DRIFT_SCORE}"') + "\n"
            '  |> group(columns: ["device_group", "model_version", "_time"])\n'
            "  |> max()\n"
            '  |> group(columns: ["device_group", "model_version"])\n'
            '  |> keep(columns: ["_time", "_value", "device_group", "model_version"])\n'
            '  |> sort(columns: ["_time"])\n'
            '  |> set(key: "_field", value: "highest feature PSI")')


def drifting_measures(limit: int = 20) -> str:
    """The latest hour's figures of every device group and measure in the time range, the furthest
    from the reference first: PSI, records, drifted (1 when the job called it drift)."""
    keys = '"device_group", "model_version", "measure"'
    return (_drift(list(schema.DRIFT_FIELDS)) + "\n"
            f'  |> group(columns: [{keys}, "_field"])\n'
            "  |> last()\n"
            f"  |> group(columns: [{keys}])\n"
            f'  |> pivot(rowKey: [{keys}], columnKey: ["_field"], valueColumn: "_value")\n'
            "  |> group()\n"
            f'  |> keep(columns: [{keys}, "psi", "records", "drifted"])\n'
            '  |> sort(columns: ["psi"], desc: true)\n'
            f"  |> limit(n: {limit})")


def drift_alert() -> str:
    """One value: the highest PSI of the points the job called drifted (``drifted`` 1: at least
    ``drift.min_records`` records and a PSI at ``drift.threshold``); no row while none did."""
    return (_drift(["psi", "drifted"]) + "\n"
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
            "  |> filter(fn: (r) => exists r.psi and exists r.drifted and r.drifted > 0.0)\n"
            "  |> group()\n"
            '  |> max(column: "psi")\n'
            '  |> map(fn: (r) => ({_time: r._time, _field: "highest PSI of a drifted hour", _value: r.psi}))')


DRIFT_SCORE: Final[str] = "ensemble_score"  # the measure of the score distribution (models.drift.SCORE_MEASURE)
