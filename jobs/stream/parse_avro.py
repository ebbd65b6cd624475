"""The parse step for the Avro wire format (``stream.kafka.wire_format: avro``): Kafka's binary
values in the Confluent wire format (:mod:`jobs.wire`) -> the columns :func:`jobs.stream.parse.parse_flows`
gives for JSON, with the same checks where they still apply, so everything downstream is unchanged.

Types, field presence and "one value a message" are the schema's and the decoder's business here:
"missing feature", "non-numeric feature", "unknown fields" and "duplicate keys" cannot occur. What
is checked: the header (magic byte 0 and the one schema id the query was started with, so a message
of another schema is never decoded with this one), a payload Avro cannot decode (``from_avro`` in
PERMISSIVE mode gives null, or a record with no field set), the metadata checks of the JSON path
(text bounds, control characters, ports, event time) and the share of missing features. Unlike the
JSON path, bytes after a complete record go unnoticed: Avro's decoder stops at the record's end.
"""
from __future__ import annotations

import struct
from functools import reduce
from typing import TYPE_CHECKING

from jobs.stream.parse import (INGEST_TIME, OFFSET, ORIGIN, PARTITION, QUARANTINE_REASON, RAW_VALUE,
                               _metadata_reason_parts, _stage, missing_count, record_id_or_origin, with_missing_check)
from jobs.wire import CONFLUENT_HEADER_BYTES, CONFLUENT_MAGIC
from schemas.flow_record import (DEFAULT_MAX_MISSING_SHARE, DEVICE_PORT_FIELDS, DEVICE_TEXT_FIELDS, EVENT_TIME,
                                  FEATURES, LABEL, RECORD_ID, SOURCE_ID, column_name)
from schemas.flow_record_avro import WIRE_FIELDS, avro_schema_json

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

TOMBSTONE = "empty message: no value (a Kafka tombstone?)"  # the JSON path's words


def bad_header_reason(schema_id: int) -> str:
    return (f"not a Confluent-framed Avro record of schema id {schema_id} "
            f"(magic byte 0, 4-byte schema id, then the record; stream.kafka.avro_schema_id)")


UNDECODED = "malformed Avro: the record does not decode with the flow record's schema (or has no field set)"


def parse_avro_flows(raw: "DataFrame", schema_id: int,
                     max_missing_share: float = DEFAULT_MAX_MISSING_SHARE) -> "DataFrame":
    """Typed flow records from Avro messages: ``raw`` as :func:`jobs.stream.parse.kafka_to_raw`
    gives it with ``binary=True`` -> the columns of ``parse_flows`` (``raw_value`` stays binary:
    :func:`jobs.stream.parse.cap_quarantined_payloads` keeps it as base64 for quarantined records)."""
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    value = F.col(RAW_VALUE)
    header_ok = ((F.octet_length(value) > CONFLUENT_HEADER_BYTES)
                 & (F.substring(value, 1, 1) == F.lit(bytes([CONFLUENT_MAGIC])))
                 & (F.substring(value, 2, 4) == F.lit(struct.pack(">I", schema_id))))
    decoded = from_avro(F.substring(value, CONFLUENT_HEADER_BYTES + 1, 2**31 - 1), avro_schema_json(),
                        {"mode": "PERMISSIVE"})
    staged, record = _stage(raw, "_record", F.when(header_ok, decoded))
    features = [column_name(f) for f in FEATURES]
    staged, missing = _stage(staged, "_missing", missing_count([record[c] for c in features]))
    undecoded = record.isNull() | reduce(lambda a, b: a & b, [record[wire].isNull() for wire, _, _ in WIRE_FIELDS])
    staged, reason = _stage(staged, "_reason", F.when(value.isNull(), F.lit(TOMBSTONE))
                            .when(~header_ok, F.lit(bad_header_reason(schema_id)))
                            .when(undecoded, F.lit(UNDECODED))
                            .otherwise(F.concat_ws("; ", *_metadata_reason_parts(record))))
    staged, reason = _stage(staged, "_reason", with_missing_check(reason, missing, max_missing_share))
    return staged.select(
        value, F.col(ORIGIN), F.col(PARTITION), F.col(OFFSET), F.col(INGEST_TIME),
        F.when(reason == "", F.lit(None).cast("string")).otherwise(reason).alias(QUARANTINE_REASON),
        record_id_or_origin(record[RECORD_ID]).alias(RECORD_ID), record[SOURCE_ID].alias(SOURCE_ID),
        F.coalesce(F.try_to_timestamp(record[EVENT_TIME]), F.col(INGEST_TIME)).alias(EVENT_TIME),
        record[LABEL].alias(LABEL),
        *[record[name].alias(name) for name in (*DEVICE_TEXT_FIELDS, *DEVICE_PORT_FIELDS)],
        *[record[c].alias(c) for c in features],
    )
