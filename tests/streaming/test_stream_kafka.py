"""The streaming job end to end: real Kafka -> Spark -> Delta tables + real InfluxDB."""
import pytest
from pyspark.sql import functions as F

from jobs.config import load_config
from tests.helpers.influx import aggregate_total, count_points, new_influx_bucket
from tests.helpers.streaming import bad_messages, good_messages, produce, read_table, run_to_end, stream_conf
from tests.services.influxdb_server import TOKEN

pytestmark = [pytest.mark.kafka, pytest.mark.influxdb, pytest.mark.spark, pytest.mark.slow]

N_GOOD = 400


def test_kafka_to_delta_and_influxdb_exactly_once(spark, kafka_broker, influxdb, sample_dir, tmp_path,
                                                  monkeypatch) -> None:
    monkeypatch.setenv("IOMT_AD_TEST_INFLUX_TOKEN", TOKEN)
    topic = "flows-e2e"
    kafka_broker.create_topic(topic, partitions=2)
    good = good_messages(sample_dir, N_GOOD)
    bad = bad_messages(good[0][1])
    produce(kafka_broker.bootstrap, topic, good, bad)
    bucket = new_influx_bucket(influxdb, "flows-e2e")
    config = load_config(stream_conf(tmp_path, kafka_broker.bootstrap, topic, max_offsets=150,
                                     influx_url=influxdb.url, bucket=bucket, max_records_per_partition=50))

    run_to_end(spark, config)

    # no task held more than max_records_per_partition records: each wrote its own data file
    import pyarrow as pa
    from deltalake import DeltaTable

    files = pa.table(DeltaTable(str(tmp_path / "delta" / "flows_scored")).get_add_actions(flatten=True)).to_pydict()
    assert len(files["num_records"]) >= N_GOOD // 50 and max(files["num_records"]) <= 50

    scored = read_table(spark, tmp_path, "flows_scored")
    ids = {row["record_id"] for row in scored.select("record_id").collect()}
    assert scored.count() == N_GOOD
    assert ids == {message["record_id"] for _, message in good}

    quarantine = read_table(spark, tmp_path, "quarantine")
    reasons = sorted((row["raw_value"], row["reason"]) for row in quarantine.collect())
    assert reasons == sorted(bad)
    assert quarantine.filter(F.col("offset").isNull() | F.col("partition").isNull()).count() == 0

    alerts = read_table(spark, tmp_path, "alerts")
    anomalous = {row["record_id"] for row in scored.filter("is_anomaly").select("record_id").collect()}
    assert {row["record_id"] for row in alerts.select("record_id").collect()} == anomalous
    assert alerts.count() == len(anomalous)
    # the sample holds floods: some records must be flagged, and not every record
    assert 0 < len(anomalous) < N_GOOD

    traffic = read_table(spark, tmp_path, "traffic_1m")
    assert traffic.agg(F.sum("records")).first()[0] == N_GOOD

    batches = read_table(spark, tmp_path, "batch_log")
    assert batches.count() >= 2  # max_offsets_per_trigger=150 splits the input
    assert batches.agg(F.sum("influx_failed")).first()[0] == 0
    # InfluxDB: every record in the per-device aggregates, a point of its own for each anomalous one
    assert aggregate_total(influxdb, bucket) == N_GOOD
    assert aggregate_total(influxdb, bucket, "anomalies") == len(anomalous)
    assert count_points(influxdb, bucket, "ae_error") == len(anomalous)

    columns = set(scored.columns)
    for name in ("ae_error", "if_score", "ensemble_score", "is_anomaly", "severity", "predicted_class",
                 "predicted_category", "top_features", "model_version", "scored_at", "protocol", "event_date",
                 "record_id", "source_id", "event_time", "label", "rate", "protocol_type"):
        assert name in columns, name
    assert scored.filter(F.size("top_features") != 3).count() == 0

    # a second run from the same checkpoint finds nothing new and writes nothing twice
    run_to_end(spark, config, timeout_s=300)
    assert read_table(spark, tmp_path, "flows_scored").count() == N_GOOD
    assert count_points(influxdb, bucket, "ae_error") == len(anomalous)
    assert aggregate_total(influxdb, bucket) == N_GOOD


def test_influxdb_down_loses_no_delta_output_and_keeps_streaming(spark, kafka_broker, sample_dir, tmp_path,
                                                                 monkeypatch) -> None:
    from tests.services.ports import free_port

    monkeypatch.setenv("IOMT_AD_TEST_INFLUX_TOKEN", "no-server-here")
    topic = "flows-influx-down"
    kafka_broker.create_topic(topic, partitions=2)
    good = good_messages(sample_dir, 120, seed=5)
    produce(kafka_broker.bootstrap, topic, good, [])
    config = load_config(stream_conf(tmp_path, kafka_broker.bootstrap, topic, max_offsets=50,
                                     influx_url=f"http://127.0.0.1:{free_port()}"))
    run_to_end(spark, config)
    assert read_table(spark, tmp_path, "flows_scored").count() == 120
    batches = read_table(spark, tmp_path, "batch_log").collect()
    assert len(batches) >= 3  # the stream went on past the failing batches
    # every batch's points (its aggregates and anomalous records) counted failed, with the reason
    assert sum(b["influx_written"] for b in batches) == 0
    assert all(b["influx_failed"] > 0 and b["influx_error"] for b in batches)
