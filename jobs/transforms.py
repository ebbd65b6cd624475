"""Pure DataFrame -> DataFrame steps of the streaming and batch jobs (no I/O here).

``parse_flows`` turns raw messages into typed flow records and marks, rather than drops, every
record that fails parsing or validation: ``quarantine_reason`` says why (null for good records), and
the raw payload and its origin (topic/partition/offset or file) are kept for the quarantine table.

Every message is parsed once straight into types; a message that does not fit cleanly goes through
a second JSON object -> map<string,string> parse, so each check can tell a missing field from an
explicit null from a non-numeric value (see ``parse_flows``). An explicit JSON ``null`` for a feature
is a missing measurement (the dataset has empty cells) and is imputed downstream; an absent feature
key means a broken producer and is quarantined. ``Infinity``/``inf`` are numbers (``Rate`` holds them).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.flow_record import EVENT_TIME, FEATURES, LABEL, METADATA_FIELDS, RECORD_ID, SOURCE_ID, column_name

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

RAW_VALUE = "raw_value"
ORIGIN = "origin"            # Kafka topic, or the file the record came from
PARTITION = "partition"      # Kafka partition (null for files)
OFFSET = "offset"            # Kafka offset (null for files)
INGEST_TIME = "ingest_time"  # Kafka timestamp, or when the file source read the file
QUARANTINE_REASON = "quarantine_reason"
MAX_RAW_IN_REASON = 40


def _as_double(raw: "Column") -> "Column":
    """A JSON value's text as a double, or null. Spark hands non-finite numbers (``Infinity``,
    ``NaN``) over quoted; JSON strings holding numbers (``"2.5"``) are accepted as numbers."""
    from pyspark.sql import functions as F

    return F.regexp_replace(raw, r'^"(.*)"$', "$1").try_cast("double")


def _metadata_reason_parts(record: "Column") -> list["Column"]:
    """Checks of the metadata fields, for a record parsed either way: ``record`` is the map of the
    second parse or the struct of the typed parse (``record[name]`` reads both)."""
    from pyspark.sql import functions as F

    record_id = record[RECORD_ID]
    parts: list[Column] = [
        F.when(record.isNotNull() & (record_id.isNull() | (F.trim(record_id) == "")),
               F.lit(f"missing field: {RECORD_ID}")),
    ]
    for name in (RECORD_ID, SOURCE_ID, LABEL):
        raw = record[name]
        parts.append(F.when(raw.startswith("{") | raw.startswith("["),
                            F.lit(f"wrong type: {name} must be a string")))
    event_time = record[EVENT_TIME]
    parts.append(
        F.when(event_time.isNotNull() & F.try_to_timestamp(event_time).isNull(),
               F.concat(F.lit(f"{EVENT_TIME} is not an ISO-8601 timestamp: "),
                        F.substring(event_time, 1, MAX_RAW_IN_REASON)))
    )
    return parts


def _reason_parts(fields: "Column") -> list["Column"]:
    """Every check, on the map<string,string> of the second parse."""
    from pyspark.sql import functions as F

    parts: list[Column] = [
        F.when(fields.isNull(), F.lit("malformed JSON: not a JSON object")),
        *_metadata_reason_parts(fields),
    ]
    missing = F.filter(F.array(*[F.lit(f) for f in FEATURES]),
                       lambda name: ~F.map_contains_key(fields, name))
    parts.append(F.when(fields.isNotNull() & (F.size(missing) > 0),
                        F.concat(F.lit("missing features: "), F.array_join(missing, ", "))))
    non_numeric = F.filter(F.array(*[F.lit(f) for f in FEATURES]),
                           lambda name: fields[name].isNotNull() & _as_double(fields[name]).isNull())
    shown = F.transform(non_numeric, lambda name: F.concat(name, F.lit("="),
                                                           F.substring(fields[name], 1, MAX_RAW_IN_REASON)))
    parts.append(F.when(F.size(non_numeric) > 0,
                        F.concat(F.lit("non-numeric features: "), F.array_join(shown, ", "))))
    return parts


CORRUPT = "_corrupt_record"


def _typed_schema():
    """The wire schema parsed straight into types (fast path): metadata as strings, features as
    doubles, plus Spark's corrupt-record column that is set when a value does not fit its type."""
    from pyspark.sql import types as T

    return T.StructType([
        *[T.StructField(name, T.StringType()) for name in METADATA_FIELDS],
        *[T.StructField(name, T.DoubleType()) for name in FEATURES],
        T.StructField(CORRUPT, T.StringType()),
    ])


def parse_flows(raw: "DataFrame", strict: bool = False) -> "DataFrame":
    """Typed flow records from raw messages.

    ``raw`` has ``raw_value`` (the message as a string), ``origin``, ``partition``, ``offset`` and
    ``ingest_time``. The result has those, ``quarantine_reason`` (null when the record is good), the
    metadata fields and the 39 features under their column names (``protocol_type``...). A missing
    ``event_time`` falls back to ``ingest_time``. With ``strict``, unknown extra fields quarantine
    the record too.

    Two paths give the same result: every message is parsed once straight into types (fast); only a
    message that did not fit (corrupt, a value of the wrong type, a quoted number, a null or absent
    feature, no record id) is parsed again as map<string,string>, where the checks can tell a missing
    field from an explicit null from a non-numeric value and say which.
    """
    from functools import reduce

    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    typed = F.from_json(F.col(RAW_VALUE), _typed_schema(),
                        {"mode": "PERMISSIVE", "allowNonNumericNumbers": "true",
                         "columnNameOfCorruptRecord": CORRUPT})
    staged = raw.withColumn("_typed", typed)
    typed_col = F.col("_typed")
    suspicious = reduce(lambda a, b: a | b, [
        typed_col.isNull(), typed_col[CORRUPT].isNotNull(), typed_col[RECORD_ID].isNull(),
        *[typed_col[f].isNull() for f in FEATURES],
    ])
    fields = F.from_json(F.col(RAW_VALUE), T.MapType(T.StringType(), T.StringType()),
                         {"mode": "PERMISSIVE", "allowNonNumericNumbers": "true"})
    staged = staged.withColumn("_suspicious", suspicious).withColumn(
        "_fields", F.when(F.col("_suspicious"), fields))
    if strict:
        staged = staged.withColumn("_keys", F.json_object_keys(F.col(RAW_VALUE)))
    fields_col = F.col("_fields")
    slow_reason = F.concat_ws("; ", *_reason_parts(fields_col))
    fast_reason = F.concat_ws("; ", *_metadata_reason_parts(typed_col))
    reason = F.when(F.col("_suspicious"), slow_reason).otherwise(fast_reason)
    if strict:
        allowed = F.array(*[F.lit(name) for name in (*METADATA_FIELDS, *FEATURES)])
        unknown = F.array_sort(F.array_except(F.col("_keys"), allowed))
        reason = F.concat_ws("; ", F.when(reason != "", reason), F.when(F.size(unknown) > 0, F.concat(
            F.lit("unknown fields: "), F.array_join(unknown, ", "))))

    def value(name: str) -> "Column":
        return F.when(F.col("_suspicious"), fields_col.getItem(name)).otherwise(typed_col[name])

    features = [F.when(F.col("_suspicious"), _as_double(fields_col.getItem(f))).otherwise(typed_col[f])
                .alias(column_name(f)) for f in FEATURES]
    return staged.select(
        F.col(RAW_VALUE), F.col(ORIGIN), F.col(PARTITION), F.col(OFFSET), F.col(INGEST_TIME),
        F.when(reason == "", F.lit(None).cast("string")).otherwise(reason).alias(QUARANTINE_REASON),
        value(RECORD_ID).alias(RECORD_ID),
        value(SOURCE_ID).alias(SOURCE_ID),
        F.coalesce(F.try_to_timestamp(value(EVENT_TIME)), F.col(INGEST_TIME)).alias(EVENT_TIME),
        value(LABEL).alias(LABEL),
        *features,
    )


def kafka_to_raw(kafka: "DataFrame") -> "DataFrame":
    """Spark's Kafka source rows -> the ``raw`` input of :func:`parse_flows`."""
    from pyspark.sql import functions as F

    return kafka.select(
        F.col("value").cast("string").alias(RAW_VALUE),
        F.col("topic").alias(ORIGIN),
        F.col("partition").alias(PARTITION),
        F.col("offset").alias(OFFSET),
        F.col("timestamp").alias(INGEST_TIME),
    )


def text_files_to_raw(lines: "DataFrame") -> "DataFrame":
    """Spark's text file source rows (one JSON message a line) -> the ``raw`` input of :func:`parse_flows`."""
    from pyspark.sql import functions as F

    return lines.select(
        F.col("value").alias(RAW_VALUE),
        F.col("_metadata.file_name").alias(ORIGIN),
        F.lit(None).cast("int").alias(PARTITION),
        F.lit(None).cast("long").alias(OFFSET),
        F.col("_metadata.file_modification_time").alias(INGEST_TIME),
    )


def with_protocol(flows: "DataFrame") -> "DataFrame":
    """Add ``protocol``: the IANA name of ``protocol_type`` (TCP, UDP, ICMP, IGMP), ``ARP`` for
    non-IP ARP windows, else ``other``."""
    from pyspark.sql import functions as F

    from schemas.flow_record import PROTOCOL_NAMES

    number = F.round(F.col("protocol_type")).cast("int")
    expression = F.when(F.lit(False), F.lit(None))
    for value, name in PROTOCOL_NAMES.items():
        expression = expression.when(number == value, F.lit(name))
    expression = expression.when(F.col("arp") >= 0.5, F.lit("ARP")).otherwise(F.lit("other"))
    return flows.withColumn("protocol", expression)


def score(flows: "DataFrame", bundle_dir: str) -> "DataFrame":
    """Score valid flow records: the pandas UDF over the 39 features, plus ``protocol``."""
    from pyspark.sql import functions as F

    from schemas.flow_record import FEATURE_COLUMNS
    from udfs.spark_udf import make_score_udf

    score_udf = make_score_udf(bundle_dir)
    scored = flows.withColumn("_score", score_udf(F.struct(*[F.col(c) for c in FEATURE_COLUMNS])))
    return with_protocol(scored.select("*", "_score.*").drop("_score"))


def score_records(parsed: "DataFrame", bundle_dir: str) -> "DataFrame":
    """Every parsed record with its scores, as the streaming job's sink takes it. ``raw_value`` is
    kept for quarantined records only (the quarantine table's payload); their scores are computed
    with the rest and dropped by the sink. Part of the streaming query's plan, built once: a
    micro-batch then costs one Spark job and no DataFrame building from Python."""
    from pyspark.sql import functions as F

    return score(parsed.withColumn(RAW_VALUE, F.when(F.col(QUARANTINE_REASON).isNotNull(), F.col(RAW_VALUE))),
                 bundle_dir)
