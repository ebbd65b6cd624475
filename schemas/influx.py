"""The InfluxDB schema of IoMT-AD: one point per scored record.

measurement ``flow_scores``
  tags    protocol, predicted_class, predicted_category, is_anomaly ("true"/"false"), severity,
          model_version, source (the device, ``device_id``, or else the source file: ``source_id``
          up to its first ':'; unsafe characters as '_', at most 64 characters: :func:`source_tag`)
  fields  ae_error, if_score, clf_attack_proba, ensemble_score, label (true class where known) and
          the features operators chart: rate, header_length, tot_size, iat, number, protocol_type
  time    the record's event time (ns) plus a deterministic offset below one millisecond derived
          from ``record_id``: two records of one source in the same millisecond stay two points,
          and a replayed batch writes the very same points again (an overwrite, not a duplicate).

Tag values are strings: ``is_anomaly`` is ``"true"`` or ``"false"``, a missing tag value is
``"unknown"``. Every point carries every score field, so ``ensemble_score`` is the field to count
records by. Dashboards and alert rules (``jobs.grafana``) query these names only.

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
