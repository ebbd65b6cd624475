"""The flow record in binary wire formats, for the wire-format measurement (issue 19, item 5):
Avro and Protobuf schemas derived from :mod:`schemas.flow_record`, producer-side encoders framed
in the Confluent wire format, and the job-side Avro decode step.

Not the product's wire format (JSON stays that): if the measurement makes a binary format an
option, its schema moves to ``schemas/`` and its decode step to ``jobs/stream/parse.py``.

Confluent wire format (what Confluent's, Karapace's and Apicurio's ccompat serializers write):
byte 0 is the magic byte 0, bytes 1-4 the schema id (big-endian), then the Avro binary record;
a Protobuf message has, between id and payload, the message indexes as zig-zag varints (a single
0 byte for the first message type of the schema). Spark's ``from_avro`` knows nothing of this
header: the job strips it (``substring(value, 6)``) and decodes with the schema fetched once from
the registry at query start, after checking magic byte and id.

Names: Avro and Protobuf names are ``[A-Za-z_][A-Za-z0-9_]*``, so the features go by their
column names (``protocol_type``, ``tot_sum``...), which are also the parsed records' column names.
"""
from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Mapping
from functools import reduce
from typing import TYPE_CHECKING, Any, Final

from schemas.flow_record import (DEFAULT_MAX_MISSING_SHARE, DEVICE_PORT_FIELDS, DEVICE_TEXT_FIELDS, EVENT_TIME,
                                  FEATURES, LABEL, METADATA_FIELDS, RECORD_ID, SOURCE_ID, column_name)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

CONFLUENT_MAGIC: Final[int] = 0
CONFLUENT_HEADER_BYTES: Final[int] = 5
AVRO_NAMESPACE: Final[str] = "io.iomt_ad.wire"
AVRO_RECORD: Final[str] = "FlowRecord"
PROTO_PACKAGE: Final[str] = "iomt_ad.wire"
PROTO_MESSAGE: Final[str] = "FlowRecord"

# (wire name, JSON name, kind) of every field, in the order of schemas.flow_record.flow_schema
WIRE_FIELDS: Final[tuple[tuple[str, str, str], ...]] = (
    *[(name, name, "string") for name in (*METADATA_FIELDS, *DEVICE_TEXT_FIELDS)],
    *[(name, name, "int") for name in DEVICE_PORT_FIELDS],
    *[(column_name(f), f, "double") for f in FEATURES],
)


def avro_schema() -> dict[str, Any]:
    """The flow record as an Avro record: every field nullable (``["null", type]``, default null),
    as in the JSON wire schema; the parse step's checks decide what a record must have."""
    return {
        "type": "record", "name": AVRO_RECORD, "namespace": AVRO_NAMESPACE,
        "doc": "IoMT-AD flow record: metadata, device fields, the 39 CICIoMT2024 features (column names)",
        "fields": [{"name": wire, "type": ["null", kind], "default": None,
                    **({"doc": json_name} if json_name != wire else {})} for wire, json_name, kind in WIRE_FIELDS],
    }


def avro_schema_json() -> str:
    return json.dumps(avro_schema(), separators=(",", ":"))


def confluent_header(schema_id: int) -> bytes:
    return struct.pack(">bI", CONFLUENT_MAGIC, schema_id)


def wire_record(message: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON message as the replayer builds it (dataset feature names) -> the same record under
    wire names; absent keys become null."""
    return {wire: message.get(json_name) for wire, json_name, _ in WIRE_FIELDS}


def json_encoder() -> Callable[[Mapping[str, Any]], bytes]:
    """What the replayer sends today (``jobs.ops.replay``): the message as JSON text, UTF-8."""
    def encode(message: Mapping[str, Any]) -> bytes:
        return json.dumps(message).encode("utf-8")
    return encode


def avro_encoder(schema_id: int) -> Callable[[Mapping[str, Any]], bytes]:
    """A wire record -> Confluent header + Avro binary (fastavro, schemaless: what Confluent's
    Python ``AvroSerializer`` writes after the header)."""
    try:
        import fastavro
    except ImportError as err:  # optional: only the wire-format measurement and its test need it
        raise ImportError("fastavro is needed for Avro encoding: pip install fastavro (in the dev extras)") from err
    parsed = fastavro.parse_schema(avro_schema())
    header = confluent_header(schema_id)
    writer = fastavro.schemaless_writer

    def encode(record: Mapping[str, Any]) -> bytes:
        out = io.BytesIO()
        out.write(header)
        writer(out, parsed, record)
        return out.getvalue()
    return encode


def _zigzag_varint(n: int) -> bytes:
    """Avro's encoding of an int or long: zig-zag, then base-128 varint, low group first."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def avro_specialised_encoder(schema_id: int) -> Callable[[Mapping[str, Any]], bytes]:
    """The same bytes as :func:`avro_encoder`, written by code for this one schema: every field is
    a ``["null", T]`` union, so a field is the branch (0 null, 1 value, as zig-zag varints: one
    byte 0x00 or 0x02) then the value (a double: 8 bytes little-endian; a string: its length as
    a varint, then UTF-8; an int: a varint). fastavro's generic writer resolves each union by
    testing the value's type, which for this record of 51 unions costs more than JSON does."""
    header = confluent_header(schema_id)
    pack_double = struct.Struct("<d").pack
    fields = [(wire, kind) for wire, _, kind in WIRE_FIELDS]

    def encode(record: Mapping[str, Any]) -> bytes:
        out = [header]
        for name, kind in fields:
            value = record[name]
            if value is None:
                out.append(b"\x00")
            elif kind == "double":
                out.append(b"\x02" + pack_double(value))
            elif kind == "string":
                data = value.encode("utf-8")
                out.append(b"\x02" + _zigzag_varint(len(data)) + data)
            else:
                out.append(b"\x02" + _zigzag_varint(int(value)))
        return b"".join(out)
    return encode


def protobuf_message_class():
    """The flow record as a Protobuf message (proto2 ``optional`` fields: explicit presence, so a
    null stays absent), built from a descriptor at run time: no protoc, no generated code."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    types = {"string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
             "int": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
             "double": descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE}
    file = descriptor_pb2.FileDescriptorProto(name="iomt_ad_flow_record.proto", package=PROTO_PACKAGE,
                                              syntax="proto2")
    message = file.message_type.add(name=PROTO_MESSAGE)
    for number, (wire, _, kind) in enumerate(WIRE_FIELDS, start=1):
        message.field.add(name=wire, number=number, type=types[kind],
                          label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PROTO_PACKAGE}.{PROTO_MESSAGE}"))


def protobuf_encoder(schema_id: int) -> Callable[[Mapping[str, Any]], bytes]:
    """A wire record -> Confluent header + message index [0] (one 0 byte) + Protobuf binary."""
    cls = protobuf_message_class()
    header = confluent_header(schema_id) + b"\x00"

    def encode(record: Mapping[str, Any]) -> bytes:
        return header + cls(**{k: v for k, v in record.items() if v is not None}).SerializeToString()
    return encode


# ---- the job's side -------------------------------------------------------------------------

def avro_parse(raw: "DataFrame", schema_json: str, schema_id: int,
               max_missing_share: float = DEFAULT_MAX_MISSING_SHARE) -> "DataFrame":
    """What the job's parse step would be with Avro: ``raw`` as :func:`jobs.stream.parse.parse_flows`
    takes it but with ``raw_value`` binary (Kafka's value as is) -> the same columns, same checks
    where they still apply. Types, field presence and "one value per message" are the schema's
    and the decoder's business now; what is left: the header (magic byte, the one schema id the
    query was started with), a record Avro cannot decode (PERMISSIVE mode: every field null), the
    metadata checks, and the share of missing features. Unlike the JSON path, bytes after a
    complete record go unnoticed: Avro's decoder stops at the record's end."""
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    from jobs.stream.parse import (INGEST_TIME, OFFSET, ORIGIN, PARTITION, QUARANTINE_REASON, RAW_VALUE,
                                   _metadata_reason_parts)

    value = F.col(RAW_VALUE)
    header_ok = ((F.octet_length(value) > CONFLUENT_HEADER_BYTES)
                 & (F.substring(value, 1, 1) == F.lit(bytes([CONFLUENT_MAGIC])))
                 & (F.substring(value, 2, 4) == F.lit(struct.pack(">I", schema_id))))
    decoded = from_avro(F.expr(f"substring({RAW_VALUE}, {CONFLUENT_HEADER_BYTES + 1})"), schema_json,
                        {"mode": "PERMISSIVE"})
    staged = raw.withColumn("_record", F.when(header_ok, decoded))
    record = F.col("_record")
    features = [column_name(f) for f in FEATURES]
    missing = reduce(lambda a, b: a + b, [F.when(record[c].isNull() | F.isnan(record[c]), 1).otherwise(0)
                                          for c in features])
    allowed_missing = int(max_missing_share * len(FEATURES))
    # PERMISSIVE from_avro gives a record whose every field is null for bytes that do not decode
    # (a truncated message, a wrong writer schema); such a record is invalid anyway (no record_id)
    undecoded = record.isNull() | reduce(lambda a, b: a & b, [record[wire].isNull() for wire, _, _ in WIRE_FIELDS])
    reason = (F.when(value.isNull(), F.lit("empty message: no value (a Kafka tombstone?)"))
              .when(~header_ok, F.lit(f"not a Confluent-framed Avro record of schema id {schema_id}"))
              .when(undecoded, F.lit("malformed Avro: the record does not decode (or has no field set)"))
              .otherwise(F.concat_ws("; ", *_metadata_reason_parts(record))))
    reason = F.concat_ws("; ", F.when(reason != "", reason), F.when(
        (reason == "") & (missing > allowed_missing),
        F.concat(F.lit("too many missing features: "), missing.cast("string"),
                 F.lit(f" of {len(FEATURES)} are null or NaN (at most {allowed_missing} are imputed)"))))
    return staged.select(
        value, F.col(ORIGIN), F.col(PARTITION), F.col(OFFSET), F.col(INGEST_TIME),
        F.when(reason == "", F.lit(None).cast("string")).otherwise(reason).alias(QUARANTINE_REASON),
        record[RECORD_ID].alias(RECORD_ID), record[SOURCE_ID].alias(SOURCE_ID),
        F.coalesce(F.try_to_timestamp(record[EVENT_TIME]), F.col(INGEST_TIME)).alias(EVENT_TIME),
        record[LABEL].alias(LABEL),
        *[record[name].alias(name) for name in (*DEVICE_TEXT_FIELDS, *DEVICE_PORT_FIELDS)],
        *[record[c].alias(c) for c in features],
    )
