"""The InfluxDB schema of IoMT-AD: what Grafana reads. Delta keeps every record; InfluxDB gets, per
micro-batch, aggregates per device and interval plus one point per anomalous record (one per record
with ``influxdb.record_points: all``, for small sites).

measurement ``device_traffic`` (:data:`AGGREGATE_MEASUREMENT`): partial aggregates
  tags    source (:func:`source_tag`, as below), protocol, model_version, label (the true class where
          known: one of the 19 classes, ``other`` for any other text, ``unknown`` where missing:
          :func:`label_tag`, so an untrusted label cannot widen the series)
  fields  (floats) records, anomalies (``is_anomaly`` true), ensemble_score_sum, ensemble_score_max,
          ae_error_max, if_score_max, clf_attack_proba_max, rate_sum, rate_max, rate_records (the
          records whose ``rate`` is finite: the mean rate is rate_sum / rate_records), tot_size_sum,
          benign_records (records predicted Benign), benign_rate_sum, benign_rate_sq_sum,
          benign_rate_records (their finite ``rate``, its square and their number: the mean and
          standard deviation of Benign traffic's rate), last_seen (the latest event time, epoch
          seconds). Sums and maxima skip values that are missing or not finite (the sample has
          0.6% infinite rates); a field with no value is left out of its point.
  time    the start of the record's interval of event time (``influxdb.aggregate_interval``,
          aligned to the epoch) plus :func:`aggregate_offset_ns` of (batch id, task partition).

  Each task of each micro-batch writes its own partial point per (interval, series): InfluxDB keeps
  one point per series and time, so partials must not share a time, yet a replayed batch (same
  batch id, same partitions: Kafka offset ranges and file lists are in the checkpoint) must write
  the very same points again to overwrite them. Queries therefore sum (and take the max of) every
  field over their windows: ``sum(records)``, ``sum(anomalies) / sum(records)``,
  ``sum(ensemble_score_sum) / sum(records)``, ``max(ensemble_score_max)``, ``now - max(last_seen)``.
  Uniqueness bound: the offset is ``(batch_id * 4096 + partition % 4096) mod interval_ns``, so two
  partials of one series and interval never collide when the batch has at most 4096 tasks and their
  batch ids are less than ``interval_ns // 4096`` apart (2,441,406 batches at 10 s: 56 days of 2 s
  triggers, beyond the 30 days ``stream.event_time_max_past`` lets a late record reach back; 244,140
  at 1 s). A replay must keep the batch's partitioning, or its partials add to the first ones: do
  not change ``stream.kafka.min_partitions`` or ``max_records_per_partition`` (Kafka), or the cores and
  ``spark.sql.files.maxPartitionBytes`` (files), between a crash and its restart.

measurement ``flow_scores``: one point per anomalous record (per record with ``record_points: all``)
  tags    protocol, predicted_class, predicted_category, is_anomaly ("true"/"false"), severity,
          model_version, source (the device, ``device_id``, or else the source file: ``source_id``
          up to its first ':'; unsafe characters as '_', at most 64 characters: :func:`source_tag`)
  fields  ae_error, if_score, clf_attack_proba, ensemble_score, label (true class where known) and
          the features operators chart: rate, header_length, tot_size, iat, number, protocol_type
  time    the record's event time (ns) plus a deterministic offset below one millisecond derived
          from ``record_id``: two records of one source in the same millisecond stay two points,
          and a replayed batch writes the very same points again (an overwrite, not a duplicate).

measurement ``kafka_gaps`` (:data:`GAP_MEASUREMENT`): one point per Kafka partition and batch in which
  records expired unread (the driver of the stream writes it; the ``kafka_gaps`` Delta table has
  the same gaps)
  tags    topic, partition
  fields  (floats) lost_records, from_offset, to_offset (the first and last offsets lost)
  time    when the gap was found (the batch's ``detected_at``)

measurement ``model_drift`` (:data:`DRIFT_MEASUREMENT`): per hour of event time, device group, model
  version and measure, how far the traffic moved from the bundle's drift reference (the driver of
  the stream writes it; the ``drift`` Delta table has the same figures and the bin counts)
  tags    device_group (``all``, ``vendor:<vendor>`` or ``device:<device_id>``, made safe as
          :func:`source_tag` makes a source), model_version, measure (a feature's column name, or
          ``ensemble_score``)
  fields  (floats) psi, records, drifted (1 when records >= drift.min_records and psi >=
          drift.threshold, else 0)
  time    the start of the hour: each batch that adds records to the hour writes its point again
          with the hour's figures so far (an overwrite; a replayed batch writes the same point)

Tag values are strings: ``is_anomaly`` is ``"true"`` or ``"false"``, a missing tag value is
``"unknown"``. Every point carries every score field, so ``ensemble_score`` is the field to count
the records that have a point by. Dashboards and alert rules (``jobs.grafana``) query these names only.

Detector thresholds live in the model bundle's manifest (``thresholds.<detector>.value``), not in
InfluxDB; :data:`THRESHOLD_FIELDS` maps each manifest detector to the field its threshold applies to.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import numpy as np

MEASUREMENT: Final[str] = "flow_scores"
TAGS: Final[tuple[str, ...]] = (
    "protocol", "predicted_class", "predicted_category", "is_anomaly", "severity", "model_version", "source",
)
SCORE_FIELDS: Final[tuple[str, ...]] = ("ae_error", "if_score", "clf_attack_proba", "ensemble_score")
FEATURE_FIELDS: Final[tuple[str, ...]] = ("rate", "header_length", "tot_size", "iat", "number", "protocol_type")
STRING_FIELDS: Final[tuple[str, ...]] = ("label",)

ANOMALY_TAG: Final[str] = "is_anomaly"
TRUE: Final[str] = "true"           # the is_anomaly tag of a flagged record
UNKNOWN: Final[str] = "unknown"     # the value of a tag the record had no value for
COUNT_FIELD: Final[str] = "ensemble_score"  # present on every point: count records by this field
RECORD_POINTS: Final[tuple[str, ...]] = ("anomalies", "all")  # influxdb.record_points: which records get a point

AGGREGATE_MEASUREMENT: Final[str] = "device_traffic"
AGGREGATE_TAGS: Final[tuple[str, ...]] = ("source", "protocol", "model_version", "label")
# field -> how the partial points of a window combine in a query
AGGREGATE_FIELDS: Final[dict[str, str]] = {
    "records": "sum", "anomalies": "sum", "ensemble_score_sum": "sum", "ensemble_score_max": "max",
    "ae_error_max": "max", "if_score_max": "max", "clf_attack_proba_max": "max",
    "rate_sum": "sum", "rate_max": "max", "rate_records": "sum", "tot_size_sum": "sum", "benign_records": "sum",
    "benign_rate_sum": "sum", "benign_rate_sq_sum": "sum", "benign_rate_records": "sum", "last_seen": "max",
}
RECORDS_FIELD: Final[str] = "records"
GAP_MEASUREMENT: Final[str] = "kafka_gaps"
GAP_TAGS: Final[tuple[str, ...]] = ("topic", "partition")
GAP_FIELDS: Final[tuple[str, ...]] = ("lost_records", "from_offset", "to_offset")
DRIFT_MEASUREMENT: Final[str] = "model_drift"
DRIFT_TAGS: Final[tuple[str, ...]] = ("device_group", "model_version", "measure")
DRIFT_FIELDS: Final[tuple[str, ...]] = ("psi", "records", "drifted")
OTHER: Final[str] = "other"         # the label tag of a label that names none of the known classes
PARTITION_SLOTS: Final[int] = 4096  # tasks per batch with distinct aggregate offsets

# manifest detector name -> the field its threshold applies to
THRESHOLD_FIELDS: Final[dict[str, str]] = {
    "lstm_ae": "ae_error", "iforest": "if_score", "classifier": "clf_attack_proba", "ensemble": "ensemble_score",
}


_EPOCH: Final[datetime] = datetime(1970, 1, 1, tzinfo=timezone.utc)


# The source tag: ``source_id`` up to its first ':', every character outside this set as '_', at
# most SOURCE_TAG_MAX characters. A tag value is the key of a series: a backslash, a space or a
# control character from an untrusted record must never reach the line protocol or widen a query.
SOURCE_TAG_UNSAFE: Final[str] = r"[^A-Za-z0-9._@/+-]"
SOURCE_TAG_MAX: Final[int] = 64


def source_tag(source_id: str | None, device_id: str | None = None) -> str:
    """The ``source`` tag: the record's device (``device_id``, set by the sensor) or else its
    ``source_id`` up to the first ':' (a replayed file's name), made safe and bounded."""
    import re

    base = device_id or (source_id.split(":", 1)[0] if source_id else "")
    tag = re.sub(SOURCE_TAG_UNSAFE, "_", base[:SOURCE_TAG_MAX])
    return tag or UNKNOWN


def group_tag(device_group: str | None) -> str:
    """The ``device_group`` tag of ``model_drift``: the group, made safe and bounded as a source is."""
    import re

    tag = re.sub(SOURCE_TAG_UNSAFE, "_", (device_group or "")[:SOURCE_TAG_MAX])
    return tag or UNKNOWN


def label_tag(label: str | None) -> str:
    """The ``label`` tag of ``device_traffic``: a known class, ``other`` or ``unknown``."""
    from schemas.classes import CATEGORY_OF_CLASS

    if not label:
        return UNKNOWN
    return label if label in CATEGORY_OF_CLASS else OTHER


def aggregate_offset_ns(batch_id: int, partition: int, interval_ns: int) -> int:
    """The part of a ``device_traffic`` point's time after its interval's start: distinct for each
    task of a batch and for batches less than ``interval_ns // PARTITION_SLOTS`` apart, the same
    when the batch is replayed."""
    return (batch_id * PARTITION_SLOTS + partition % PARTITION_SLOTS) % interval_ns


def interval_start_ns(event_time_ns: int, interval_ns: int) -> int:
    """The start of the interval (aligned to the epoch) that holds ``event_time_ns``."""
    return (event_time_ns // interval_ns) * interval_ns


def point_time_ns(event_time: datetime, record_id: str) -> int:
    """Event time in ns (truncated to the millisecond) + a record-specific offset in [0, 1 ms)."""
    if event_time.tzinfo is None:
        event_time = event_time.replace(tzinfo=timezone.utc)
    millis = (event_time - _EPOCH) // timedelta(milliseconds=1)  # exact: no float rounding
    return millis * 1_000_000 + record_offset_ns(record_id)


def record_offset_ns(record_id: str) -> int:
    """The record-specific part of a point's time: a stable hash of ``record_id`` in [0, 1 ms)."""
    return int.from_bytes(hashlib.blake2b(record_id.encode("utf-8"), digest_size=8).digest(), "big") % 1_000_000


def record_offsets_ns(record_ids: Iterable[object]) -> "np.ndarray":
    """:func:`record_offset_ns` of many records at once (int64; a non-string id is hashed as its text)."""
    import numpy as np

    blake2b = hashlib.blake2b
    digests = b"".join([blake2b(str(r).encode("utf-8"), digest_size=8).digest() for r in record_ids])
    return (np.frombuffer(digests, dtype=">u8") % np.uint64(1_000_000)).astype(np.int64)
