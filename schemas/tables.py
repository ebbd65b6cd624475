"""Every Delta table IoMT-AD writes: its name, partitioning and columns with their types. This is
the one definition: the streaming job conforms each batch's rows to it (``jobs.stream.table_rows``),
the re-scoring job and analysts' SQL read it, and a test holds ``docs/tables.md`` against it.

Feature columns use :func:`schemas.flow_record.column_name` (``protocol_type``, ``tot_sum``...).
Times are microseconds in UTC, as Delta stores ``timestamp``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pyarrow as pa

from schemas.flow_record import FEATURE_COLUMNS

FLOWS_SCORED: Final[str] = "flows_scored"
ALERTS: Final[str] = "alerts"
QUARANTINE: Final[str] = "quarantine"
TRAFFIC_1M: Final[str] = "traffic_1m"
BATCH_LOG: Final[str] = "batch_log"
DEVICES: Final[str] = "devices"
INCIDENTS: Final[str] = "incidents"
FLOWS_RESCORED: Final[str] = "flows_rescored"
SCORING_RUNS: Final[str] = "scoring_runs"
INFLUX_BACKFILLS: Final[str] = "influx_backfills"
KAFKA_GAPS: Final[str] = "kafka_gaps"
OUTBOX: Final[str] = "outbox"
MODEL_REGISTRY: Final[str] = "model_registry"
FLOWS_SHADOW: Final[str] = "flows_shadow"
DELIVERIES: Final[str] = "deliveries"
INCIDENT_ACTIONS: Final[str] = "incident_actions"
MUTES: Final[str] = "mutes"
FEEDBACK: Final[str] = "feedback"
DRIFT: Final[str] = "drift"

TIMESTAMP: Final[pa.DataType] = pa.timestamp("us", tz="UTC")
STRING, DOUBLE, LONG, INT, BOOLEAN, DATE = pa.string(), pa.float64(), pa.int64(), pa.int32(), pa.bool_(), pa.date32()

# The first characters of a quarantined message kept in ``raw_value`` (its length and sha256 are kept whole).
DEFAULT_QUARANTINE_MAX_CHARS: Final[int] = 8192

# Set by the scoring UDF, instead of the scores, on a record the models could not score; the
# streaming job sends such a record to quarantine (it is never a column of flows_scored).
SCORING_ERROR: Final[str] = "scoring_error"
# Why an alert was flagged, in words (models.explain): a column of alerts and incidents only.
EXPLANATION: Final[str] = "explanation"


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType


def _columns(*pairs: tuple[str, pa.DataType]) -> tuple[Column, ...]:
    return tuple(Column(name, kind) for name, kind in pairs)


# Column groups shared by several tables (docs/tables.md names them "the origin / record / score group").
ORIGIN_COLUMNS: Final[tuple[Column, ...]] = _columns(
    ("origin", STRING), ("partition", INT), ("offset", LONG), ("ingest_time", TIMESTAMP))
RECORD_COLUMNS: Final[tuple[Column, ...]] = _columns(
    ("record_id", STRING), ("source_id", STRING), ("event_time", TIMESTAMP), ("label", STRING),
    *((name, DOUBLE) for name in FEATURE_COLUMNS))
# What the sensor knows of the record's device and its window's traffic (null for replayed rows).
DEVICE_COLUMNS: Final[tuple[Column, ...]] = _columns(
    ("device_id", STRING), ("device_mac", STRING), ("device_ip", STRING), ("device_vendor", STRING),
    ("peer_ip", STRING), ("transport", STRING), ("device_port", INT), ("peer_port", INT))
# ``protocol`` comes from the record itself (udfs.scoring.protocol_names), the others from
# udfs.scoring.score_frame.
SCORE_COLUMNS: Final[tuple[Column, ...]] = _columns(
    ("protocol", STRING), ("ae_error", DOUBLE), ("if_score", DOUBLE), ("clf_attack_proba", DOUBLE),
    ("ensemble_score", DOUBLE), ("is_anomaly", BOOLEAN), ("severity", STRING), ("predicted_class", STRING),
    ("predicted_category", STRING), ("top_features", pa.list_(STRING)), ("model_version", STRING))


def _spark_type(kind: pa.DataType) -> str:
    """The Spark SQL type name of an Arrow type used in these tables."""
    if pa.types.is_list(kind):
        return f"array<{_spark_type(kind.value_type)}>"
    return {STRING: "string", DOUBLE: "double", LONG: "long", INT: "int", BOOLEAN: "boolean", DATE: "date",
            TIMESTAMP: "timestamp"}[kind]


# (name, Spark type) of the score group: the pandas UDF's result struct is built from it
SCORE_FIELDS: Final[tuple[tuple[str, str], ...]] = tuple((c.name, _spark_type(c.type)) for c in SCORE_COLUMNS)


@dataclass(frozen=True)
class TableSpec:
    name: str
    partition_by: tuple[str, ...]
    description: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def arrow_schema(self) -> pa.Schema:
        """Every column nullable, as Spark writes them."""
        return pa.schema([pa.field(c.name, c.type, nullable=True) for c in self.columns])

    def spark_ddl(self) -> str:
        return ", ".join(f"`{c.name}` {_spark_type(c.type)}" for c in self.columns)


_SCORED: Final[tuple[Column, ...]] = (
    *ORIGIN_COLUMNS, *RECORD_COLUMNS, *DEVICE_COLUMNS, *_columns(("claimed_event_time", STRING)), *SCORE_COLUMNS,
    *_columns(("batch_id", LONG), ("scored_at", TIMESTAMP), ("task_slot", INT), ("event_date", DATE)))

TABLES: Final[dict[str, TableSpec]] = {spec.name: spec for spec in (
    TableSpec(FLOWS_SCORED, ("event_date",), "every valid record with its features, scores and decision", _SCORED),
    TableSpec(ALERTS, ("event_date",), "the records whose is_anomaly is true, each with why it was flagged",
              (*_SCORED, *_columns((EXPLANATION, STRING)))),
    TableSpec(QUARANTINE, ("ingest_date",),
              "records that failed parsing or validation, with the reason and raw payload", _columns(
                  ("record_id", STRING), ("reason", STRING), ("raw_value", STRING), ("raw_bytes", LONG),
                  ("raw_sha256", STRING), ("origin", STRING), ("partition", INT), ("offset", LONG),
                  ("ingest_time", TIMESTAMP), ("batch_id", LONG), ("quarantined_at", TIMESTAMP),
                  ("ingest_date", DATE))),
    TableSpec(TRAFFIC_1M, (),
              "per-minute counts by protocol, predicted class and anomaly flag, one row per (batch, minute, "
              "group): SUM(records) GROUP BY minute for totals", _columns(
                  ("minute", TIMESTAMP), ("protocol", STRING), ("predicted_class", STRING),
                  ("predicted_category", STRING), ("is_anomaly", BOOLEAN), ("model_version", STRING),
                  ("records", LONG), ("mean_ensemble_score", DOUBLE), ("mean_rate", DOUBLE),
                  ("sum_tot_size", DOUBLE), ("batch_id", LONG))),
    TableSpec(DEVICES, (), "one row per device the sensor named: when it was seen, its records and anomalies",
              _columns(("device_id", STRING), ("device_mac", STRING), ("device_ip", STRING), ("device_vendor", STRING),
                       ("first_seen", TIMESTAMP), ("last_seen", TIMESTAMP), ("records", LONG), ("anomalies", LONG),
                       ("last_severity", STRING), ("last_anomaly", TIMESTAMP), ("batch_id", LONG))),
    TableSpec(INCIDENTS, (), "alerts grouped per device (or source) and attack category, each saying why "
              "(jobs.stream.incidents)", _columns(
                  ("incident_id", STRING), ("subject", STRING), ("category", STRING), ("device_id", STRING),
                  ("device_mac", STRING), ("device_ip", STRING), ("device_vendor", STRING), ("source_id", STRING),
                  ("predicted_classes", pa.list_(STRING)), ("first_seen", TIMESTAMP), ("last_seen", TIMESTAMP),
                  ("alerts", LONG), ("max_severity", STRING), ("max_ensemble_score", DOUBLE), (EXPLANATION, STRING),
                  ("model_version", STRING), ("state", STRING), ("closed_at", TIMESTAMP), ("opened_batch", LONG),
                  ("batch_id", LONG), ("updated_at", TIMESTAMP), ("notified_batch", LONG),
                  ("notified_severity", STRING), ("notified_seen", TIMESTAMP))),
    TableSpec(BATCH_LOG, (), "one row per micro-batch: counts, durations, sink failures", _columns(
        ("batch_id", LONG), ("records", LONG), ("quarantined", LONG), ("anomalies", LONG),
        ("influx_written", LONG), ("influx_failed", LONG), ("influx_error", STRING), ("seconds", DOUBLE),
        ("app_id", STRING), ("query_id", STRING), ("logged_at", TIMESTAMP), ("kafka_offsets", STRING),
        ("kafka_lost", LONG))),
    TableSpec(KAFKA_GAPS, (), "Kafka records that expired before the stream read them, per partition and batch",
              _columns(("topic", STRING), ("partition", INT), ("from_offset", LONG), ("to_offset", LONG),
                       ("records", LONG), ("batch_id", LONG), ("app_id", STRING), ("detected_at", TIMESTAMP))),
    TableSpec(FLOWS_RESCORED, ("event_date", "model_version"),
              "stored flows scored again with a chosen model version (iomt-ad rescore)", (
                  *RECORD_COLUMNS, *_columns(("stream_model_version", STRING), ("stream_is_anomaly", BOOLEAN),
                                             ("stream_ensemble_score", DOUBLE)),
                  *SCORE_COLUMNS, *_columns((SCORING_ERROR, STRING), ("event_date", DATE)))),
    TableSpec(SCORING_RUNS, (), "one row per re-scoring run", _columns(
        ("run_id", STRING), ("status", STRING), ("error", STRING), ("model_version", STRING),
        ("model_sha256", STRING), ("model_dir", STRING), ("source_table", STRING), ("target_table", STRING),
        ("range_from", TIMESTAMP), ("range_to", TIMESTAMP), ("rows_read", LONG), ("rows_written", LONG),
        ("anomalies", LONG), ("started_at", TIMESTAMP), ("finished_at", TIMESTAMP), ("seconds", DOUBLE),
        ("spark_app_id", STRING))),
    TableSpec(INFLUX_BACKFILLS, (), "one row per batch iomt-ad influx-backfill sent to InfluxDB again", _columns(
        ("batch_id", LONG), ("app_id", STRING), ("points_written", LONG), ("points_failed", LONG),
        ("error", STRING), ("reason", STRING), ("run_id", STRING), ("backfilled_at", TIMESTAMP))),
    # analysts' actions (jobs.incidents): append-only, written by `iomt-ad incidents` and the dashboard,
    # never by the stream (whose driver alone writes `incidents`)
    TableSpec(INCIDENT_ACTIONS, (), "who acknowledged, resolved, reopened or commented an incident, and when",
              _columns(("action_id", STRING), ("incident_id", STRING), ("action", STRING), ("who", STRING),
                       ("at", TIMESTAMP), ("note", STRING), ("incident_alerts", LONG), ("via", STRING))),
    TableSpec(MUTES, (), "mutes and maintenance windows of a device, source, class or category, and their "
              "early ends (unmute)", _columns(
                  ("mute_id", STRING), ("kind", STRING), ("scope", STRING), ("value", STRING),
                  ("starts", TIMESTAMP), ("ends", TIMESTAMP), ("reason", STRING), ("who", STRING),
                  ("created", TIMESTAMP), ("via", STRING))),
)}
# incident updates queued for the outputs, and what each output did with them (jobs.outputs)
_INCIDENT_COLUMNS: Final[tuple[Column, ...]] = TABLES[INCIDENTS].columns
TABLES[OUTBOX] = TableSpec(OUTBOX, (), "every change of an incident, queued once per batch for the alert outputs "
                           "(jobs.outputs.outbox)", (
                               *_columns(("update_id", STRING), ("change", STRING)), *_INCIDENT_COLUMNS,
                               *_columns(("queued_at", TIMESTAMP))))
TABLES[DELIVERIES] = TableSpec(DELIVERIES, (), "each outbox update an output delivered or suppressed "
                               "(jobs.outputs.notifier)", _columns(
                                   ("update_id", STRING), ("incident_id", STRING), ("output", STRING),
                                   ("status", STRING), ("reason", STRING), ("attempts", LONG),
                                   ("recorded_at", TIMESTAMP), ("batch_id", LONG)))
TABLES[FLOWS_SHADOW] = TableSpec(FLOWS_SHADOW, ("event_date",), "each record the challenger scored in shadow beside "
                                 "the champion: both verdicts (jobs.stream.model_roles)", (
                                     *_columns(("record_id", STRING), ("source_id", STRING), ("device_id", STRING),
                                               ("event_time", TIMESTAMP), ("label", STRING),
                                               ("champion_version", STRING), ("champion_is_anomaly", BOOLEAN),
                                               ("champion_ensemble_score", DOUBLE),
                                               ("champion_predicted_class", STRING)),
                                     *SCORE_COLUMNS, *_columns(("batch_id", LONG), ("scored_at", TIMESTAMP),
                                                               ("event_date", DATE))))
TABLES[MODEL_REGISTRY] = TableSpec(MODEL_REGISTRY, (), "registered model bundles and the role aliases (champion, "
                                   "challenger), one row per change (jobs.model_registry)", _columns(
                                       ("event_id", STRING), ("at", TIMESTAMP), ("seq", INT), ("action", STRING),
                                       ("who", STRING), ("reason", STRING), ("version", STRING), ("role", STRING),
                                       ("bundle", STRING), ("manifest_sha256", STRING), ("metrics", STRING),
                                       ("provenance", STRING)))
# analysts' verdicts on alerts and incidents (jobs.feedback): append-only, read by `iomt-ad train --feedback`
TABLES[FEEDBACK] = TableSpec(FEEDBACK, (), "analysts' verdicts on alerts and incidents: true or false positive, the "
                             "corrected class (jobs.feedback)", _columns(
                                 ("feedback_id", STRING), ("target", STRING), ("record_id", STRING),
                                 ("incident_id", STRING), ("subject", STRING), ("category", STRING),
                                 ("covers_from", TIMESTAMP), ("covers_to", TIMESTAMP), ("alerts", LONG),
                                 ("verdict", STRING), ("corrected_class", STRING),
                                 ("predicted_classes", pa.list_(STRING)), ("model_version", STRING),
                                 ("who", STRING), ("at", TIMESTAMP), ("note", STRING), ("via", STRING)))
# how far each hour's traffic moved from the bundle's reference, per device group and measure (jobs.drift)
TABLES[DRIFT] = TableSpec(DRIFT, (), "per hour of event time, device group, model version and measure (a feature the "
                          "models read, or ensemble_score): records per reference bin and their PSI against the "
                          "bundle's drift reference (jobs.drift)", _columns(
                              ("drift_id", STRING), ("hour", TIMESTAMP), ("device_group", STRING),
                              ("model_version", STRING), ("measure", STRING), ("records", LONG),
                              ("bin_counts", pa.list_(LONG)), ("psi", DOUBLE), ("threshold", DOUBLE),
                              ("min_records", LONG), ("drifted", BOOLEAN), ("batch_id", LONG),
                              ("updated_at", TIMESTAMP)))
STREAM_TABLES: Final[tuple[str, ...]] = (FLOWS_SCORED, ALERTS, QUARANTINE, TRAFFIC_1M, DEVICES, INCIDENTS, BATCH_LOG)


def score_struct_ddl() -> str:
    """DDL of the struct the scoring pandas UDF returns: every score field and ``scoring_error``."""
    return ", ".join([*(f"{name} {kind}" for name, kind in SCORE_FIELDS), f"{SCORING_ERROR} string"])
