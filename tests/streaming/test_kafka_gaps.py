"""Kafka records that expire while the job is stopped are recorded, not lost without a trace: run,
stop, produce, delete the oldest of the new records with the admin API (what retention does),
produce more, restart: ``kafka_gaps`` has exactly the deleted records, ``batch_log`` counts them,
InfluxDB has the point Grafana alerts on; a normal run records no gap."""
import json

import pytest
from pyspark.sql import functions as F

from jobs.config import load_config
from tests.helpers.influx import flux_total, new_influx_bucket
from tests.helpers.streaming import good_messages, read_table, run_to_end, stream_conf
from tests.services.influxdb_server import TOKEN

pytestmark = [pytest.mark.kafka, pytest.mark.influxdb, pytest.mark.spark, pytest.mark.slow]


def _produce(bootstrap: str, topic: str, messages) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for key, message in messages:
        producer.produce(topic, key=key, value=json.dumps(message), partition=0)
    assert producer.flush(60) == 0


def test_expired_offsets_are_recorded_and_a_normal_run_records_none(spark, kafka_broker, influxdb, sample_dir,
                                                                     tmp_path, monkeypatch) -> None:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    monkeypatch.setenv("IOMT_AD_TEST_INFLUX_TOKEN", TOKEN)
    topic = "flows-gaps"
    kafka_broker.create_topic(topic, partitions=1)
    bucket = new_influx_bucket(influxdb, "kafka-gaps")
    messages = good_messages(sample_dir, 100, seed=21)
    config = load_config(stream_conf(tmp_path, kafka_broker.bootstrap, topic, max_offsets=40,
                                     influx_url=influxdb.url, bucket=bucket))

    _produce(kafka_broker.bootstrap, topic, messages[:50])  # offsets 0-49
    run_to_end(spark, config)
    log = read_table(spark, tmp_path, "batch_log")
    assert log.count() >= 2 and log.agg(F.sum("kafka_lost")).first()[0] == 0  # a normal run: no gap
    last = log.orderBy(F.desc("batch_id")).first()
    assert json.loads(last["kafka_offsets"]) == {topic: {"0": 50}}
    assert not (tmp_path / "delta" / "kafka_gaps").exists()

    # the job is stopped; 30 records arrive (50-79) and the oldest 15 expire before it is back
    _produce(kafka_broker.bootstrap, topic, messages[50:80])
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    for future in admin.delete_records([TopicPartition(topic, 0, 65)]).values():
        future.result(timeout=60)
    _produce(kafka_broker.bootstrap, topic, messages[80:])  # 80-99
    run_to_end(spark, config)

    assert read_table(spark, tmp_path, "flows_scored").count() == 50 + 15 + 20
    gaps = read_table(spark, tmp_path, "kafka_gaps").collect()
    assert [(g["topic"], g["partition"], g["from_offset"], g["to_offset"], g["records"]) for g in gaps] == [
        (topic, 0, 50, 64, 15)]
    assert read_table(spark, tmp_path, "batch_log").agg(F.sum("kafka_lost")).first()[0] == 15
    lost = flux_total(influxdb, f'from(bucket:"{bucket}") |> range(start: -1h, stop: 1h) '
                                '|> filter(fn: (r) => r._measurement == "kafka_gaps" and r._field == "lost_records") '
                                '|> group() |> sum()')
    assert lost == 15
