"""Flow records as JSON through a real KRaft Kafka broker into Spark's Kafka source, parsed with
the wire schema (schemas.flow_record.flow_schema) the streaming job parses with."""
import json
import uuid
from datetime import datetime, timezone

import pytest
from pyspark.sql import functions as F

from models.training.datasets import load_flows_pandas
from schemas.flow_record import FEATURES, flow_schema

pytestmark = [pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow]


def test_flow_records_through_kafka_parse_with_flow_schema(spark, kafka_broker, sample_dir) -> None:
    from confluent_kafka import Producer

    topic = f"flows-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=2)
    rows = load_flows_pandas([sample_dir / "TCP_IP-DDoS-SYN_test.pcap.csv"]).head(50)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    sent = {}
    for _, row in rows.iterrows():
        record_id = f"{row['source_file']}:{row['row_number']}"
        message = {name: row[name] for name in FEATURES}
        message.update(record_id=record_id, source_id=row["source_file"], label=row["label"],
                       event_time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc).isoformat())
        sent[record_id] = message
        producer.produce(topic, key=record_id, value=json.dumps(message))
    assert producer.flush(30) == 0

    raw = (spark.read.format("kafka")
           .option("kafka.bootstrap.servers", kafka_broker.bootstrap)
           .option("subscribe", topic)
           .option("startingOffsets", "earliest")
           .load())
    parsed = raw.select(F.from_json(F.col("value").cast("string"), flow_schema()).alias("r")).select("r.*")
    got = {row["record_id"]: row for row in parsed.collect()}
    assert set(got) == set(sent)
    for record_id, message in sent.items():
        row = got[record_id]
        assert row["label"] == "DDoS-SYN"
        assert row["event_time"] == message["event_time"]  # text on the wire; parse_flows reads it
        for name in FEATURES:
            assert row[name] == pytest.approx(message[name]), name
