"""The streaming job's pure DataFrame steps (no I/O here): raw messages -> typed, checked records
-> bounded event times -> scored records as the sink takes them.

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

from datetime import timedelta
from typing import TYPE_CHECKING

from schemas.flow_record import (DEFAULT_MAX_MISSING_SHARE, DEVICE_FIELDS, DEVICE_PORT_FIELDS, DEVICE_TEXT_FIELDS,
                                  EVENT_TIME, FEATURES, LABEL, METADATA_FIELDS, RECORD_ID, SOURCE_ID, column_name)
from schemas.tables import DEFAULT_QUARANTINE_MAX_CHARS

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

RAW_VALUE = "raw_value"
ORIGIN = "origin"            # Kafka topic, or the file the record came from
PARTITION = "partition"      # Kafka partition (null for files)
OFFSET = "offset"            # Kafka offset (null for files)
INGEST_TIME = "ingest_time"  # Kafka timestamp, or when the file source read the file
QUARANTINE_REASON = "quarantine_reason"
RAW_BYTES = "raw_bytes"      # the quarantined message's length in bytes (before any cap)
RAW_SHA256 = "raw_sha256"    # and its sha256 (hex), so a capped payload can still be matched
MAX_RAW_IN_REASON = 40


def _as_double(raw: "Column") -> "Column":
    """A JSON value's text as a double, or null. Spark hands non-finite numbers (``Infinity``,
    ``NaN``) over quoted; JSON strings holding numbers (``"2.5"``) are accepted as numbers."""
    from pyspark.sql import functions as F

    return F.regexp_replace(raw, r'^"(.*)"$', "$1").try_cast("double")


# The longest text each metadata field may hold, and characters none may hold: a record's strings
# become tags, keys and table cells downstream (InfluxDB, Grafana, the dashboard, analysts' SQL).
TEXT_FIELD_MAX_CHARS: dict[str, int] = {RECORD_ID: 256, SOURCE_ID: 256, LABEL: 64,
                                        **{name: 256 for name in DEVICE_TEXT_FIELDS}}
CONTROL_CHARACTERS = r"[\x00-\x1f\x7f]"


def _metadata_reason_parts(record: "Column") -> list["Column"]:
    """Checks of the metadata fields, for a record parsed either way: ``record`` is the map of the
    second parse or the struct of the typed parse (``record[name]`` reads both)."""
    from pyspark.sql import functions as F

    parts: list[Column] = []
    for name in (RECORD_ID, SOURCE_ID, LABEL, *DEVICE_TEXT_FIELDS):
        raw = record[name]
        limit = TEXT_FIELD_MAX_CHARS[name]
        parts.append(F.when(raw.startswith("{") | raw.startswith("["),
                            F.lit(f"wrong type: {name} must be a string")))
        parts.append(F.when(F.char_length(raw) > limit,
                            F.concat(F.lit(f"too long: {name} has "), F.char_length(raw).cast("string"),
                                     F.lit(f" characters (at most {limit})"))))
        parts.append(F.when(raw.rlike(CONTROL_CHARACTERS), F.lit(f"control characters in {name}")))
    for name in DEVICE_PORT_FIELDS:
        raw = record[name]
        parts.append(F.when(raw.isNotNull() & ~F.coalesce(raw.try_cast("int").between(0, 65535), F.lit(False)),
                            F.lit(f"wrong type: {name} must be a port number (0-65535)")))
    event_time = record[EVENT_TIME]
    parts.append(
        F.when(event_time.isNotNull() & F.try_to_timestamp(event_time).isNull(),
               F.concat(F.lit(f"{EVENT_TIME} is not an ISO-8601 timestamp: "),
                        F.substring(event_time, 1, MAX_RAW_IN_REASON)))
    )
    return parts


def _message_reason(raw: "Column", is_object: "Column") -> "Column":
    """Checks of the message as a whole, before its fields: no value at all, bytes that are not
    UTF-8 (JSON text must be), or not exactly one JSON object (``{..}{..}`` or ``{..} garbage``:
    Spark's JSON reader would take the first object and drop the rest without a word)."""
    from pyspark.sql import functions as F

    # Exact test, on the few messages that may hold more than one value (not ending in '}', or a
    # '}' followed by '{'): one JSON array of them has one element. json_array_length knows no
    # NaN/Infinity, so those tokens are read as 0 for this test only.
    maybe_more = ~F.rtrim(raw).endswith("}") | F.regexp_like(raw, F.lit(r"\}\s*\{"))
    numbers_only = F.regexp_replace(raw, r"(?<![\w\\])[-+]?(Infinity|INF|NaN)(?!\w)", "0")
    one_value = F.json_array_length(F.concat(F.lit("["), numbers_only, F.lit("]"))) == 1
    return (F.when(raw.isNull(), F.lit("empty message: no value (a Kafka tombstone?)"))
            .when(~F.is_valid_utf8(raw), F.lit("invalid UTF-8: a JSON message must be UTF-8 text"))
            .when(is_object & maybe_more & F.coalesce(~one_value, F.lit(True)),
                  F.lit("trailing data after the JSON object")))


def _reason_parts(fields: "Column") -> list["Column"]:
    """Every check, on the map<string,string> of the second parse."""
    from pyspark.sql import functions as F

    parts: list[Column] = [
        F.when(fields.isNull() & F.col(RAW_VALUE).isNotNull() & F.is_valid_utf8(F.col(RAW_VALUE)),
               F.lit("malformed JSON: not a JSON object")),
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
    """The wire schema (:func:`schemas.flow_record.flow_schema`) plus Spark's corrupt-record column,
    set when a value does not fit its type (fast path)."""
    from pyspark.sql import types as T

    from schemas.flow_record import flow_schema

    return flow_schema().add(T.StructField(CORRUPT, T.StringType()))


def origin_record_id() -> "Column":
    """The id of a record sent without ``record_id`` (most simple producers send a CSV row's columns
    and nothing else), taken from where it came from, so a replayed batch gets the same ids:
    ``kafka:<topic>:<partition>:<offset>``, or for a line of a file ``file:<file name>:<the first 32
    hex digits of the line's SHA-256>`` (Spark's text source has no line numbers: two identical
    lines of one file share an id, and both are kept)."""
    from pyspark.sql import functions as F

    kafka = F.concat_ws(":", F.lit("kafka"), F.col(ORIGIN), F.col(PARTITION).cast("string"), F.col(OFFSET).cast("string"))
    line = F.concat_ws(":", F.lit("file"), F.coalesce(F.col(ORIGIN), F.lit("")),
                       F.substring(F.sha2(F.col(RAW_VALUE).cast("binary"), 256), 1, 32))
    return F.when(F.col(OFFSET).isNotNull(), kafka).otherwise(line)


def parse_flows(raw: "DataFrame", strict: bool = False,
                max_missing_share: float = DEFAULT_MAX_MISSING_SHARE) -> "DataFrame":
    """Typed flow records from raw messages.

    ``raw`` has ``raw_value`` (the message as a string), ``origin``, ``partition``, ``offset`` and
    ``ingest_time``. The result has those, ``quarantine_reason`` (null when the record is good), the
    metadata fields and the 39 features under their column names (``protocol_type``...). A missing
    ``event_time`` falls back to ``ingest_time``. With ``strict``, unknown extra fields quarantine
    the record too. A record with more than ``max_missing_share`` of its features null or NaN is
    quarantined (imputing most of it would make it look benign). A message that is empty, not
    UTF-8 or more than one JSON value is quarantined whatever its fields hold. Duplicate keys: the
    last value wins (as in most JSON readers); with ``strict`` they quarantine the record.

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
    is_object = ~F.col("_suspicious") | fields_col.isNotNull()
    # Each expression used more than once below becomes a column of its own first (``_stage``):
    # written inline, every use would copy its whole expression tree into the plan, which Spark
    # optimizes again for every micro-batch (the driver's main cost per batch).
    staged, field_reason = _stage(staged, "_field_reason",
                                  F.when(F.col("_suspicious"), slow_reason).otherwise(fast_reason))
    reason = F.concat_ws("; ", _message_reason(F.col(RAW_VALUE), is_object), F.when(field_reason != "", field_reason))
    staged, reason = _stage(staged, "_reason", reason)
    if strict:
        allowed = F.array(*[F.lit(name) for name in (*METADATA_FIELDS, *DEVICE_FIELDS, *FEATURES)])
        unknown = F.array_sort(F.array_except(F.col("_keys"), allowed))
        keys = F.col("_keys")
        duplicated = F.array_sort(F.array_distinct(F.filter(
            keys, lambda key: F.size(F.filter(keys, lambda other: other == key)) > 1)))
        reason = F.concat_ws("; ", F.when(reason != "", reason), F.when(F.size(unknown) > 0, F.concat(
            F.lit("unknown fields: "), F.array_join(unknown, ", "))),
            F.when(F.size(keys) != F.size(F.array_distinct(keys)), F.concat(
                F.lit("duplicate keys: "), F.array_join(duplicated, ", "))))
        staged, reason = _stage(staged, "_reason", reason)

    def value(name: str) -> "Column":
        return F.when(F.col("_suspicious"), fields_col.getItem(name)).otherwise(typed_col[name])

    feature_values = {}
    for f in FEATURES:
        staged, feature_values[f] = _stage(staged, f"_feature_{column_name(f)}", F.when(
            F.col("_suspicious"), _as_double(fields_col.getItem(f))).otherwise(typed_col[f]))
    staged, missing = _stage(staged, "_missing", missing_count(list(feature_values.values())))
    staged, reason = _stage(staged, "_reason", with_missing_check(reason, missing, max_missing_share))
    features = [value.alias(column_name(f)) for f, value in feature_values.items()]
    return staged.select(
        F.col(RAW_VALUE), F.col(ORIGIN), F.col(PARTITION), F.col(OFFSET), F.col(INGEST_TIME),
        F.when(reason == "", F.lit(None).cast("string")).otherwise(reason).alias(QUARANTINE_REASON),
        record_id_or_origin(value(RECORD_ID)).alias(RECORD_ID),
        value(SOURCE_ID).alias(SOURCE_ID),
        F.coalesce(F.try_to_timestamp(value(EVENT_TIME)), F.col(INGEST_TIME)).alias(EVENT_TIME),
        value(LABEL).alias(LABEL),
        *[value(name).alias(name) for name in DEVICE_TEXT_FIELDS],
        *[F.when(F.col("_suspicious"), fields_col.getItem(name).try_cast("int")).otherwise(typed_col[name]).alias(name)
          for name in DEVICE_PORT_FIELDS],
        *features,
    )


def missing_count(features: list["Column"]) -> "Column":
    """How many of ``features`` (the 39 values as doubles) are null or NaN."""
    from functools import reduce

    from pyspark.sql import functions as F

    return reduce(lambda a, b: a + b, [F.when(v.isNull() | F.isnan(v), 1).otherwise(0) for v in features])


def with_missing_check(reason: "Column", missing: "Column", max_missing_share: float) -> "Column":
    """``reason`` (empty when the record passed every other check), or why a record with too many
    missing features (more than ``max_missing_share`` of them) is not scored."""
    from pyspark.sql import functions as F

    allowed_missing = int(max_missing_share * len(FEATURES))
    return F.concat_ws("; ", F.when(reason != "", reason), F.when(
        (reason == "") & (missing > allowed_missing),
        F.concat(F.lit("too many missing features: "), missing.cast("string"),
                 F.lit(f" of {len(FEATURES)} are null or NaN (at most {allowed_missing} are imputed)"))))


def record_id_or_origin(record_id: "Column") -> "Column":
    """A record's own id (trimmed), or when it has none the id of where it came from."""
    from pyspark.sql import functions as F

    return F.coalesce(F.nullif(F.trim(record_id), F.lit("")), origin_record_id())


def _stage(frame: "DataFrame", name: str, column: "Column") -> tuple["DataFrame", "Column"]:
    """``frame`` with ``column`` added as ``name`` (replacing one of that name), and a reference to it."""
    from pyspark.sql import functions as F

    return frame.withColumn(name, column), F.col(name)


CLAIMED_EVENT_TIME = "claimed_event_time"  # a record's own event_time (ISO text) when out of bounds, else null


def bound_event_time(flows: "DataFrame", max_past: timedelta, max_future: timedelta) -> "DataFrame":
    """Keep ``event_time`` within ``[reference - max_past, reference + max_future]``: a time outside
    (a device clock off by years, a hostile producer) is replaced by the reference and kept in
    ``claimed_event_time`` (null otherwise). The reference is ``ingest_time`` (Kafka's timestamp or
    the file's time: deterministic, so a replayed batch gets the same times) unless it is itself out
    of bounds around the job's clock (a producer sets Kafka's timestamp), then the batch's start
    time. Every stored time so stays where tables, InfluxDB (1677-2262) and dashboards can use it;
    the claimed time is kept as ISO-8601 text (year 1 to 9999 read back in any client)."""
    from pyspark.sql import functions as F

    past, future = (int(bound / timedelta(microseconds=1)) for bound in (max_past, max_future))

    def within(time: "Column", reference: "Column") -> "Column":
        offset = F.unix_micros(time) - F.unix_micros(reference)
        return offset.between(-past, future)

    flows, now = _stage(flows, _NOW, job_clock())
    reference = F.when(within(F.col(INGEST_TIME), now), F.col(INGEST_TIME)).otherwise(now)
    kept = F.coalesce(within(F.col(EVENT_TIME), reference), F.lit(False))
    claimed = F.date_format(F.col(EVENT_TIME), "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX")  # text: any year reads back
    return (flows.withColumn(CLAIMED_EVENT_TIME, F.when(~kept & F.col(EVENT_TIME).isNotNull(), claimed))
            .withColumn(EVENT_TIME, F.when(kept, F.col(EVENT_TIME)).otherwise(reference))
            .drop(_NOW))


_NOW = "_job_clock"


def job_clock() -> "Column":
    """The job's clock as each record is processed (milliseconds). Not ``current_timestamp()``:
    Spark replaces that with a literal of the micro-batch's start time, and a literal is written
    into the generated Java code, so every micro-batch compiled its plan's code anew (on the driver
    and in every executor) and the JIT compiled the new classes again: about two compilations a
    batch, and the JIT's threads busy all the time. The clock read by reflection is not a constant
    and leaves the code the same from batch to batch."""
    from pyspark.sql import functions as F

    return F.expr("timestamp_millis(cast(reflect('java.lang.System', 'currentTimeMillis') as bigint))")


def kafka_to_raw(kafka: "DataFrame", binary: bool = False) -> "DataFrame":
    """Spark's Kafka source rows -> the ``raw`` input of :func:`parse_flows` (``raw_value`` as
    text), or with ``binary`` of :func:`jobs.stream.parse_avro.parse_avro_flows` (the bytes as is)."""
    from pyspark.sql import functions as F

    value = F.col("value") if binary else F.col("value").cast("string")
    return kafka.select(
        value.alias(RAW_VALUE),
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


def cap_quarantined_payloads(parsed: "DataFrame", quarantine_max_chars: int = DEFAULT_QUARANTINE_MAX_CHARS) -> "DataFrame":
    """Parsed records as the sink's tasks take them (they score and write them,
    :mod:`jobs.stream.executor`): ``raw_value`` kept for quarantined records only, cut to its first
    ``quarantine_max_chars`` characters, with ``raw_bytes`` and ``raw_sha256`` of the whole message.
    A binary ``raw_value`` (the Avro wire format) is kept as base64 text: the first
    ``quarantine_max_chars`` characters of the base64 of the whole message.
    Part of the streaming query's plan, built once."""
    from pyspark.sql import functions as F

    quarantined = F.col(QUARANTINE_REASON).isNotNull()
    raw = F.col(RAW_VALUE)
    text = F.base64(raw) if dict(parsed.dtypes)[RAW_VALUE] == "binary" else F.make_valid_utf8(raw)
    return parsed.select(*[F.col(c) for c in parsed.columns if c != RAW_VALUE],
                         F.when(quarantined, F.left(text, F.lit(quarantine_max_chars))).alias(RAW_VALUE),
                         F.when(quarantined, F.octet_length(raw)).alias(RAW_BYTES),
                         F.when(quarantined, F.sha2(raw.cast("binary"), 256)).alias(RAW_SHA256))
