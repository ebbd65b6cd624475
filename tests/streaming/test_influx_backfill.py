"""InfluxDB is eventually complete: batches whose points failed (the stream ran with InfluxDB on a
closed port) are sent again from Delta by ``iomt-ad influx-backfill``, which rebuilds exactly the
stream's points, and the drift figures of their hours from the ``drift`` table: running it again,
or over batches the stream wrote itself, doubles nothing."""
import pytest

from jobs.cli import main
from jobs.config import load_config
from jobs.ops.influx_backfill import pending_batches
from tests.helpers.influx import aggregate_total, count_points, drift_points, new_influx_bucket
from tests.helpers.streaming import good_messages, produce, read_table, run_to_end, stream_conf
from tests.services.influxdb_server import TOKEN
from tests.services.ports import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.influxdb, pytest.mark.spark, pytest.mark.slow]


def test_backfill_fills_an_outage_and_is_idempotent(spark, kafka_broker, influxdb, sample_dir, tmp_path,
                                                    monkeypatch) -> None:
    monkeypatch.setenv("IOMT_AD_TEST_INFLUX_TOKEN", TOKEN)
    topic = "flows-backfill"
    kafka_broker.create_topic(topic, partitions=2)
    bucket = new_influx_bucket(influxdb, "backfill")
    first = good_messages(sample_dir, 160, seed=11)
    produce(kafka_broker.bootstrap, topic, first, [])

    # the outage: InfluxDB on a closed port, every batch's points counted failed
    down = load_config(stream_conf(tmp_path, kafka_broker.bootstrap, topic, max_offsets=60,
                                   influx_url=f"http://127.0.0.1:{free_port()}", bucket=bucket))
    run_to_end(spark, down)
    log = read_table(spark, tmp_path, "batch_log").collect()
    assert len(log) >= 2 and all(b["influx_failed"] > 0 and b["influx_written"] == 0 for b in log)
    assert aggregate_total(influxdb, bucket) == 0
    assert drift_points(influxdb, bucket) == 0  # the drift thread's sends failed too

    conf = stream_conf(tmp_path, kafka_broker.bootstrap, topic, max_offsets=60, influx_url=influxdb.url,
                       bucket=bucket)
    tables = load_config(conf).stream.tables
    assert pending_batches(tables, down.stream.app_id) == sorted(b["batch_id"] for b in log)
    assert main(["influx-backfill", "--conf", str(conf)]) == 0
    scored = read_table(spark, tmp_path, "flows_scored")
    anomalies = scored.filter("is_anomaly").count()
    assert 0 < anomalies < 160
    assert aggregate_total(influxdb, bucket) == 160
    assert aggregate_total(influxdb, bucket, "anomalies") == anomalies
    assert count_points(influxdb, bucket) == anomalies
    assert pending_batches(tables, down.stream.app_id) == []  # recorded: not sent again and again
    drift_rows = read_table(spark, tmp_path, "drift").count()
    assert drift_rows > 0 and drift_points(influxdb, bucket) == drift_rows
    assert len(read_table(spark, tmp_path, "influx_backfills").collect()) == len(log)

    # InfluxDB back: the stream writes the next batches itself
    produce(kafka_broker.bootstrap, topic, good_messages(sample_dir, 140, seed=12), [])
    run_to_end(spark, load_config(conf))
    assert aggregate_total(influxdb, bucket) == 300
    anomalies = read_table(spark, tmp_path, "flows_scored").filter("is_anomaly").count()

    # compaction rewrites the data files (no file names a task any more): each record keeps its slot
    assert main(["maintain", "--conf", str(conf), "--tables", "flows_scored", "--no-vacuum"]) == 0
    from jobs.stream.delta_writer import DATA_FILE

    assert not any(DATA_FILE.search(uri) for uri in tables.delta_table("flows_scored").file_uris())

    # every batch again, by ids and by event time: the stream's own points and the backfilled ones
    # are overwritten, never doubled, compacted or not
    assert main(["influx-backfill", "--conf", str(conf), "--batches", "0-999"]) == 0
    assert main(["influx-backfill", "--conf", str(conf), "--from", "2000-01-01T00:00:00Z",
                 "--to", "2100-01-01T00:00:00Z"]) == 0
    assert aggregate_total(influxdb, bucket) == 300
    assert aggregate_total(influxdb, bucket, "anomalies") == anomalies
    assert count_points(influxdb, bucket) == anomalies
    assert drift_points(influxdb, bucket) == read_table(spark, tmp_path, "drift").count()
    assert main(["influx-backfill", "--conf", str(conf)]) == 0  # nothing pending
