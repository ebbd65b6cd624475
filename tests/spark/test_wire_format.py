"""The Avro wire format's parse step (jobs/stream/parse_avro.py) gives the JSON parse step's rows for
the same real records (the replayer's messages from data/ciciomt2024-sample, and a sensor's record
written out by hand), and quarantines, with a reason and the payload's size and hash, what is no
record of the pinned schema id: a wrong magic byte or id, JSON, a short or truncated message, a
tombstone, bounds broken as in JSON. fastavro's generic writer checks the product's encoder."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import struct
from datetime import datetime, timezone

import pytest

from jobs.bench.wire_codecs import avro_encoder
from jobs.ops.replay import ReplayOptions, iter_messages
from jobs.stream.parse import cap_quarantined_payloads, parse_flows
from jobs.stream.parse_avro import UNDECODED, bad_header_reason, parse_avro_flows
from jobs.wire import avro_record_encoder, message_encoder, wire_record
from models.training.datasets import load_flows_pandas
from schemas.flow_record import FEATURES, column_name
from schemas.flow_record_avro import avro_schema

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


def kafka_rows(spark, values: list[bytes | None]):
    """Rows as the Kafka source's, with the parse step's column names; raw_value stays binary."""
    rows = [(v, "t", 0, i, KAFKA_TIME) for i, v in enumerate(values)]
    return spark.createDataFrame(rows, "raw_value binary, origin string, partition int, offset long, "
                                       "ingest_time timestamp")


def by_id(frame) -> dict[str, dict]:
    return {row["record_id"]: row.asDict() for row in frame.drop("raw_value").collect()}


def test_product_writer_writes_fastavros_bytes(messages):
    generic, product = avro_encoder(SCHEMA_ID), message_encoder("avro", SCHEMA_ID)
    for message in messages:
        record = wire_record(message)
        assert product(message) == generic(record) == avro_record_encoder(SCHEMA_ID)(record)
        framed = product(message)
        assert framed[:5] == b"\x00" + struct.pack(">I", SCHEMA_ID)
        decoded = fastavro.schemaless_reader(io.BytesIO(framed[5:]), fastavro.parse_schema(avro_schema()))
        assert decoded == record


def test_avro_parse_gives_the_json_parse_rows(spark, messages):
    from pyspark.sql import functions as F

    encode_json, encode_avro = message_encoder("json"), message_encoder("avro", SCHEMA_ID)
    parsed_json = parse_flows(kafka_rows(spark, [encode_json(m) for m in messages])
                              .withColumn("raw_value", F.col("raw_value").cast("string")))
    parsed_avro = parse_avro_flows(kafka_rows(spark, [encode_avro(m) for m in messages]), SCHEMA_ID)
    assert parsed_avro.columns == parsed_json.columns
    assert parsed_avro.drop("raw_value").schema == parsed_json.drop("raw_value").schema
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


def test_what_is_no_record_of_the_pinned_id_is_quarantined(spark, messages):
    encode = message_encoder("avro", SCHEMA_ID)
    good = encode(messages[0])
    too_long = dict(messages[1], record_id="x" * 300)
    empty = dict(messages[2], record_id="empty", **{name: None for name in FEATURES})
    header = bad_header_reason(SCHEMA_ID)
    cases = {
        "other id": (message_encoder("avro", SCHEMA_ID + 1)(messages[1]), header),
        "magic byte": (b"\x01" + good[1:], header),
        "json": (json.dumps(messages[2]).encode(), header),
        "header only": (good[:5], header),
        "too short": (good[:3], header),
        "truncated": (good[:40], UNDECODED),
        "tombstone": (None, "empty message: no value (a Kafka tombstone?)"),
        "text bound": (encode(too_long), "too long: record_id has 300 characters (at most 256)"),
        "missing share": (encode(empty), "too many missing features: 39 of 39 are null or NaN (at most 7 are imputed)"),
        "bad time": (encode(dict(messages[3], event_time="yesterday")),
                     "event_time is not an ISO-8601 timestamp: yesterday"),
        "good": (good, None),
    }
    values = [value for value, _ in cases.values()]
    frame = cap_quarantined_payloads(parse_avro_flows(kafka_rows(spark, values), SCHEMA_ID), quarantine_max_chars=16)
    rows = frame.orderBy("offset").collect()
    assert [row["quarantine_reason"] for row in rows] == [reason for _, reason in cases.values()]
    for row, value in zip(rows, values):  # the payload's size and hash, its start as base64
        if row["quarantine_reason"] is None or value is None:
            assert row["raw_value"] is None and row["raw_bytes"] is None and row["raw_sha256"] is None
        else:
            assert row["raw_bytes"] == len(value)
            assert row["raw_sha256"] == hashlib.sha256(value).hexdigest()
            assert row["raw_value"] == base64.b64encode(value).decode()[:16]
