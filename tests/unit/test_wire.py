"""The Avro schema follows the one flow-record definition; the producers' wire-format choice
(flags, then --conf, then JSON) and the configuration's checks of it."""
from __future__ import annotations

import argparse
import io
import struct

import pytest

from jobs.config import ConfigError, config_from_mapping
from jobs.errors import UserError
from jobs.publish import add_kafka_security_argument, add_wire_format_arguments, wire_choice
from jobs.wire import confluent_header, message_encoder
from schemas.flow_record import FEATURES, flow_schema
from schemas.flow_record_avro import avro_schema


def test_avro_schema_follows_the_flow_record_definition() -> None:
    from pyspark.sql import types as T

    avro_types = {T.StringType(): "string", T.IntegerType(): "int", T.DoubleType(): "double"}
    fields = avro_schema()["fields"]
    spark_fields = flow_schema().fields
    assert len(fields) == len(spark_fields) == 4 + 8 + len(FEATURES)
    for avro_field, spark_field in zip(fields, spark_fields):
        assert avro_field.get("doc", avro_field["name"]) == spark_field.name  # the JSON name
        assert avro_field["name"] == spark_field.name.lower().replace(" ", "_")
        assert avro_field["type"] == ["null", avro_types[spark_field.dataType]]
        assert avro_field["default"] is None


def test_header_is_magic_byte_and_big_endian_id() -> None:
    assert confluent_header(258) == b"\x00\x00\x00\x01\x02"
    with pytest.raises(ValueError):
        confluent_header(2**31)


def test_encoder_writes_what_fastavro_reads_back() -> None:
    fastavro = pytest.importorskip("fastavro")
    message = {"record_id": "r-1", "label": "Benign", "device_port": 443, "Rate": "Infinity",
               "Protocol Type": 6.0, "IAT": float("nan")}
    framed = message_encoder("avro", 3)(message)
    assert framed[:5] == b"\x00" + struct.pack(">I", 3)
    decoded = fastavro.schemaless_reader(io.BytesIO(framed[5:]), fastavro.parse_schema(avro_schema()))
    assert decoded["record_id"] == "r-1" and decoded["device_port"] == 443 and decoded["event_time"] is None
    assert decoded["rate"] == float("inf") and decoded["protocol_type"] == 6.0 and decoded["iat"] != decoded["iat"]
    assert sum(v is not None for v in decoded.values()) == len(message)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_kafka_security_argument(parser)
    add_wire_format_arguments(parser)
    parser.add_argument("--to-dir")
    return parser.parse_args(argv)


def test_wire_choice_flags_then_conf_then_json(tmp_path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text("stream:\n  kafka:\n    wire_format: avro\n    avro_schema_id: 42\n")
    assert wire_choice(_args()) == ("json", 1)
    assert wire_choice(_args("--wire-format", "avro", "--schema-id", "9")) == ("avro", 9)
    assert wire_choice(_args("--conf", str(conf))) == ("avro", 42)
    assert wire_choice(_args("--conf", str(conf), "--wire-format", "json", "--schema-id", "2")) == ("json", 2)
    with pytest.raises(UserError, match="--to-dir"):
        wire_choice(_args("--wire-format", "avro", "--to-dir", str(tmp_path)))
    with pytest.raises(UserError, match="--schema-id"):
        wire_choice(_args("--wire-format", "avro", "--schema-id", "-1"))


def test_configuration_checks_the_wire_keys() -> None:
    kafka = config_from_mapping({}).stream.kafka
    assert (kafka.wire_format, kafka.avro_schema_id) == ("json", 1)
    with pytest.raises(ConfigError, match="wire_format"):
        config_from_mapping({"stream": {"kafka": {"wire_format": "protobuf"}}})
    for bad in (-1, "3", 2**31, True):
        with pytest.raises(ConfigError, match="avro_schema_id"):
            config_from_mapping({"stream": {"kafka": {"avro_schema_id": bad}}})
