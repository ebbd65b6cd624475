"""The Avro wire format end to end on a real broker: ``iomt-ad replay --wire-format avro`` -> the
stream with ``stream.kafka.wire_format: avro`` -> Delta: every replayed record scored once, and
what is no record of the pinned schema id quarantined with a reason, its size and hash."""
from __future__ import annotations

import hashlib
import json

import pytest

from jobs.cli import main as cli
from jobs.config import load_config
from jobs.stream.parse_avro import UNDECODED, bad_header_reason
from jobs.wire import message_encoder
from tests.helpers.streaming import good_messages, produce, read_table, run_to_end, stream_conf

pytestmark = [pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow]

SCHEMA_ID = 5
RECORDS = 60


def test_replayed_avro_is_scored_once_and_bad_frames_quarantined(spark, kafka_broker, sample_dir, tmp_path) -> None:
    topic = "flows-avro"
    kafka_broker.create_topic(topic, partitions=2)
    data = sample_dir / "Benign_test.pcap.csv"
    assert cli(["replay", "--data", str(data), "--bootstrap", kafka_broker.bootstrap, "--topic", topic,
                "--wire-format", "avro", "--schema-id", str(SCHEMA_ID), "--limit", str(RECORDS), "--rate", "0",
                "--no-progress"]) == 0
    template = good_messages(sample_dir, 1)[0][1]
    good = message_encoder("avro", SCHEMA_ID)(dict(template, record_id="framed"))
    bad: list[tuple[bytes | None, str]] = [
        (message_encoder("avro", SCHEMA_ID + 1)(dict(template, record_id="other-id")), bad_header_reason(SCHEMA_ID)),
        (json.dumps(template).encode(), bad_header_reason(SCHEMA_ID)),
        (good[:30], UNDECODED),
        (None, "empty message: no value (a Kafka tombstone?)"),
    ]
    produce(kafka_broker.bootstrap, topic, [], bad)
    config = load_config(stream_conf(tmp_path, kafka_broker.bootstrap, topic, max_offsets=25,
                                     wire_format="avro", avro_schema_id=SCHEMA_ID))

    run_to_end(spark, config)

    scored = read_table(spark, tmp_path, "flows_scored")
    rows = scored.select("record_id", "source_id", "label").collect()
    assert len(rows) == RECORDS == len({row["record_id"] for row in rows})  # each replayed record, once
    assert {row["source_id"].split(":")[0] for row in rows} == {data.name}
    assert {row["label"] for row in rows} == {"Benign"}
    quarantine = read_table(spark, tmp_path, "quarantine").collect()
    assert sorted(row["reason"] for row in quarantine) == sorted(reason for _, reason in bad)
    by_size = {row["raw_bytes"]: row for row in quarantine}
    for value, _ in bad:
        if value is not None:
            assert by_size[len(value)]["raw_sha256"] == hashlib.sha256(value).hexdigest()
