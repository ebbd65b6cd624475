"""The Delta tables IoMT-AD writes: names, schemas and partitioning.

Feature columns use :func:`schemas.flow_record.column_name` (``protocol_type``, ``tot_sum``...).
``docs``-level descriptions live in README's table section; this module is the source of truth.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from schemas.flow_record import FEATURE_COLUMNS

FLOWS_SCORED: Final[str] = "flows_scored"
ALERTS: Final[str] = "alerts"
QUARANTINE: Final[str] = "quarantine"
TRAFFIC_1M: Final[str] = "traffic_1m"
BATCH_LOG: Final[str] = "batch_log"

# Columns the scoring step adds to each record: ``protocol`` comes from the record itself
# (jobs.transforms.with_protocol), the others from udfs.scoring.score_frame.
SCORE_FIELDS: Final[tuple[tuple[str, str], ...]] = (
    ("protocol", "string"),
    ("ae_error", "double"),
    ("if_score", "double"),
    ("clf_attack_proba", "double"),
    ("ensemble_score", "double"),
    ("is_anomaly", "boolean"),
    ("severity", "string"),
    ("predicted_class", "string"),
    ("predicted_category", "string"),
    ("top_features", "array<string>"),
    ("model_version", "string"),
)


@dataclass(frozen=True)
class TableSpec:
    name: str
    partition_by: tuple[str, ...]
    description: str


TABLES: Final[dict[str, TableSpec]] = {
    FLOWS_SCORED: TableSpec(FLOWS_SCORED, ("event_date",),
                            "every valid record with its features, scores and decision"),
    ALERTS: TableSpec(ALERTS, ("event_date",), "the records whose is_anomaly is true"),
    QUARANTINE: TableSpec(QUARANTINE, ("ingest_date",),
                          "records that failed parsing or validation, with the reason and raw payload"),
    TRAFFIC_1M: TableSpec(TRAFFIC_1M, (),
                          "per-minute counts by protocol, predicted class and anomaly flag, one row "
                          "per (batch, minute, group): SUM(records) GROUP BY minute for totals"),
    BATCH_LOG: TableSpec(BATCH_LOG, (), "one row per micro-batch: counts, durations, sink failures"),
}


def record_columns_ddl() -> str:
    """DDL of the record part (metadata + features) shared by flows_scored and alerts."""
    features = ", ".join(f"{name} double" for name in FEATURE_COLUMNS)
    return "record_id string, source_id string, event_time timestamp, label string, " + features


# Set by the scoring UDF, instead of the scores, on a record the models could not score; the
# streaming job sends such a record to quarantine (it is never a column of flows_scored).
SCORING_ERROR: Final[str] = "scoring_error"


def score_struct_ddl() -> str:
    """DDL of the struct the scoring pandas UDF returns: every score field but ``protocol``, and
    ``scoring_error``."""
    return ", ".join([*(f"{name} {kind}" for name, kind in SCORE_FIELDS if name != "protocol"),
                      f"{SCORING_ERROR} string"])
