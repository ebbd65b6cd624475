"""How producers (``iomt-ad replay``, ``iomt-ad sensor``) turn a flow record into the bytes of a
Kafka message: JSON text (the default) or Avro in the Confluent wire format.

Confluent wire format (what Confluent's, Karapace's and Apicurio's ccompat serializers write):
byte 0 is the magic byte 0, bytes 1-4 the schema id (big-endian), then the Avro binary record of
:func:`schemas.flow_record_avro.avro_schema`. No schema registry is used: the id is pinned in the
configuration (``stream.kafka.avro_schema_id``) and the job takes the schema from ``schemas/``.

A message here is a dict under the JSON names (the dataset's feature names, ``Protocol Type``...),
as the replayer and the sensor build it; absent keys are null.
"""
from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from typing import Any, Final

from schemas.flow_record_avro import WIRE_FIELDS

WIRE_FORMATS: Final[tuple[str, ...]] = ("json", "avro")
DEFAULT_SCHEMA_ID: Final[int] = 1  # what a registry hands out for the first schema registered
CONFLUENT_MAGIC: Final[int] = 0
CONFLUENT_HEADER_BYTES: Final[int] = 5
MAX_SCHEMA_ID: Final[int] = 2**31 - 1  # Confluent's ids are Java ints

Encoder = Callable[[Mapping[str, Any]], bytes]


def confluent_header(schema_id: int) -> bytes:
    """Magic byte 0, then ``schema_id`` as 4 bytes big-endian."""
    if not 0 <= schema_id <= MAX_SCHEMA_ID:
        raise ValueError(f"an Avro schema id is 0 to {MAX_SCHEMA_ID}, not {schema_id}")
    return struct.pack(">bI", CONFLUENT_MAGIC, schema_id)


def wire_record(message: Mapping[str, Any]) -> dict[str, Any]:
    """A message under JSON names -> the same record under Avro names; absent keys become null."""
    return {wire: message.get(json_name) for wire, json_name, _ in WIRE_FIELDS}


def json_encoder() -> Encoder:
    """The message as JSON text, UTF-8 (``inf`` as ``Infinity``, which the job's JSON reader takes)."""
    def encode(message: Mapping[str, Any]) -> bytes:
        return json.dumps(message).encode("utf-8")
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


def avro_record_encoder(schema_id: int) -> Encoder:
    """A record under Avro names -> Confluent header + Avro binary, written by code for this one
    schema (the bytes fastavro's generic writer writes, 4x faster: docs/wire-format.md). Every
    field is a ``["null", T]`` union: the branch (0 null, 1 value, as zig-zag varints: one byte
    0x00 or 0x02), then the value (a double: 8 bytes little-endian; a string: its length as a
    varint, then UTF-8; an int: a varint). A double may be given as a number or as JSON's
    ``"Infinity"``/``"-Infinity"``/``"NaN"`` tokens (the sensor's records hold those)."""
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
                out.append(b"\x02" + pack_double(float(value)))
            elif kind == "string":
                data = str(value).encode("utf-8")
                out.append(b"\x02" + _zigzag_varint(len(data)) + data)
            else:
                out.append(b"\x02" + _zigzag_varint(int(value)))
        return b"".join(out)
    return encode


def message_encoder(wire_format: str, schema_id: int = DEFAULT_SCHEMA_ID) -> Encoder:
    """A message under JSON names -> the bytes of ``wire_format`` (``json`` or ``avro``)."""
    if wire_format == "json":
        return json_encoder()
    if wire_format == "avro":
        encode_record = avro_record_encoder(schema_id)
        return lambda message: encode_record(wire_record(message))
    raise ValueError(f"wire format must be one of {', '.join(WIRE_FORMATS)}, not {wire_format!r}")
