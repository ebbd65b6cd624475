"""The flow record in the wire formats the measurement compares (issue 19, item 5), beyond what
the product offers: fastavro's generic Avro writer (the specialised writer's reference) and
Protobuf (producer side only). The product's parts live in their places and are imported here:
the Avro schema in :mod:`schemas.flow_record_avro`, the producers' encoders in :mod:`jobs.wire`,
the job's Avro parse step in :mod:`jobs.stream.parse_avro`.

Protobuf in the Confluent wire format has, between the schema id and the payload, the message
indexes as zig-zag varints (a single 0 byte for the first message type of the schema).
"""
from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any, Final

from jobs.wire import confluent_header
from schemas.flow_record_avro import WIRE_FIELDS, avro_schema

PROTO_PACKAGE: Final[str] = "iomt_ad.wire"
PROTO_MESSAGE: Final[str] = "FlowRecord"


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
