"""An Avro-encoded flow record (Confluent wire format) decodes in Spark to the values its JSON form
parses to, and to the values the producer put in; a message with the wrong header or a broken
payload is quarantined, not dropped (jobs/bench/wire_codecs.py, the wire-format measurement)."""
from __future__ import annotations

import io
import json
import math
import struct
from datetime import datetime, timezone

import pytest

from jobs.bench.wire_codecs import (avro_encoder, avro_parse, avro_schema, avro_schema_json, avro_specialised_encoder,
                                    json_encoder, wire_record)
from jobs.ops.replay import ReplayOptions, iter_messages
from jobs.stream.parse import parse_flows
from models.training.datasets import load_flows_pandas
from schemas.flow_record import FEATURES, column_name

pytestmark = pytest.mark.spark
fastavro = pytest.importorskip("fastavro")

SCHEMA_ID = 7
KAFKA_TIME = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

# A sensor's record (device fields set), written out by hand: a null feature, infinity, non-ASCII text.
SENSOR = {"record_id": "sensor-1", "source_id": "sensor:eth0", "event_time": "2026-01-02T03:04:05.123456+00:00",
          "label": None, "device_id": "mac:00:1a:2b:3c:4d:5e", "device_mac": "00:1a:2b:3c:4d:5e",
          "device_ip": "10.0.0.7", "device_vendor": "Medizintechnik Müller GmbH", "peer_ip": "10.0.0.1",
          "transport": "TCP", "device_port": 1883, "peer_port": 51234,
          **{name: float(i) + 0.25 for i, name in enumerate(FEATURES)}, "Rate": math.inf, "IAT": None}


@pytest.fixture(scope="module")
def messages(sample_dir) -> list[dict]:
    """Real rows as the replayer sends them (rows 300-310 of the sample hold an infinite Rate), plus SENSOR."""
    flows = load_flows_pandas([sample_dir]).iloc[300:310].reset_index(drop=True)
    replayed = [m for _, m in iter_messages(flows, ReplayOptions(rate=0))]
    assert any(m["Rate"] == math.inf for m in replayed)
    return [*replayed, SENSOR]


def kafka_rows(spark, values: list[bytes]):
    """Rows as the Kafka source's, with the parse step's column names; raw_value stays binary."""
    rows = [(v, "t", 0, i, KAFKA_TIME) for i, v in enumerate(values)]
    return spark.createDataFrame(rows, "raw_value binary, origin string, partition int, offset long, "
                                       "ingest_time timestamp")


def by_id(frame) -> dict[str, dict]:
    return {row["record_id"]: row.asDict() for row in frame.drop("raw_value").collect()}


def test_specialised_writer_writes_fastavros_bytes(messages):
    records = [wire_record(m) for m in messages]
    generic, specialised = avro_encoder(SCHEMA_ID), avro_specialised_encoder(SCHEMA_ID)
    for record in records:
        assert specialised(record) == generic(record)
        framed = generic(record)
        assert framed[:5] == b"\x00" + struct.pack(">I", SCHEMA_ID)
        decoded = fastavro.schemaless_reader(io.BytesIO(framed[5:]), fastavro.parse_schema(avro_schema()))
        assert decoded == record


def test_avro_decodes_to_the_json_values(spark, messages):
    from pyspark.sql import functions as F

    encode_json, encode_avro = json_encoder(), avro_specialised_encoder(SCHEMA_ID)
    parsed_json = parse_flows(kafka_rows(spark, [encode_json(m) for m in messages])
                              .withColumn("raw_value", F.col("raw_value").cast("string")))
    parsed_avro = avro_parse(kafka_rows(spark, [encode_avro(wire_record(m)) for m in messages]),
                             avro_schema_json(), SCHEMA_ID)
    assert parsed_avro.columns == parsed_json.columns
    from_json, from_avro = by_id(parsed_json), by_id(parsed_avro)
    assert sorted(from_avro) == sorted(m["record_id"] for m in messages)
    assert from_avro == from_json
    for message in messages:  # and both hold what the producer sent
        row = from_avro[message["record_id"]]
        assert row["quarantine_reason"] is None
        assert row["event_time"].timestamp() == datetime.fromisoformat(message["event_time"]).timestamp()
        for name in ("source_id", "label", "device_vendor", "device_port", "peer_port"):
            assert row[name] == message.get(name)
        for feature in FEATURES:
            assert row[column_name(feature)] == message[feature]


def test_bad_frames_are_quarantined_with_a_reason(spark, messages):
    good = avro_specialised_encoder(SCHEMA_ID)(wire_record(messages[0]))
    other_id = avro_specialised_encoder(SCHEMA_ID + 1)(wire_record(messages[1]))
    cases = {
        "unknown id": (other_id, f"not a Confluent-framed Avro record of schema id {SCHEMA_ID}"),
        "json": (json.dumps(messages[2]).encode(), f"not a Confluent-framed Avro record of schema id {SCHEMA_ID}"),
        "truncated": (good[:40], "malformed Avro: the record does not decode (or has no field set)"),
        "header only": (good[:5], f"not a Confluent-framed Avro record of schema id {SCHEMA_ID}"),
    }
    frame = avro_parse(kafka_rows(spark, [value for value, _ in cases.values()]), avro_schema_json(), SCHEMA_ID)
    reasons = [row["quarantine_reason"] for row in frame.orderBy("offset").collect()]
    assert reasons == [reason for _, reason in cases.values()]
