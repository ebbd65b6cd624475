"""The stream compacts its own small files between batches (``stream.compaction``): the tables keep
every record exactly once, compaction never fails a batch, the tables end with fewer files than the
batches wrote, and a batch's InfluxDB points rebuilt after compaction are the stream's own."""
from __future__ import annotations

import pytest
from deltalake import DeltaTable

from jobs.config import load_config
from jobs.ops.influx_backfill import batch_tasks
from jobs.stream.score_stream import start_query
from tests.helpers.streaming import good_messages, produce, read_table, stream_conf

pytestmark = [pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow]

RECORDS = 400


def test_the_stream_compacts_between_batches_and_loses_nothing(spark, kafka_broker, sample_dir, tmp_path) -> None:
    topic = "flows-compaction"
    kafka_broker.create_topic(topic, partitions=2)
    messages = good_messages(sample_dir, RECORDS, seed=21)
    produce(kafka_broker.bootstrap, topic, messages, [])
    # compaction due after every batch; 100 records a batch: four batches, two tasks each
    config = load_config(stream_conf(tmp_path, kafka_broker.bootstrap, topic, max_offsets=100,
                                     compaction_every="1 millisecond"))
    query = start_query(spark, config, available_now=True)
    query.awaitTermination(600)
    assert query.exception() is None

    scored = read_table(spark, tmp_path, "flows_scored")
    ids = [r["record_id"] for r in scored.select("record_id").collect()]
    assert sorted(ids) == sorted(m["record_id"] for _, m in messages)  # each record once
    batches = read_table(spark, tmp_path, "batch_log").count()
    assert batches >= 3
    assert read_table(spark, tmp_path, "traffic_1m").groupBy().sum("records").first()[0] == RECORDS
    assert {r["task_slot"] for r in scored.select("task_slot").distinct().collect()} == {0, 1}

    table = DeltaTable(str(tmp_path / "delta" / "flows_scored"))
    optimized = [h for h in table.history() if h["operation"] == "OPTIMIZE"]
    assert optimized, "no OPTIMIZE in flows_scored's history"
    files = len(table.file_uris())
    assert files < batches, f"{files} data files after {batches} batches of 2 tasks each"
    batch_log = DeltaTable(str(tmp_path / "delta" / "batch_log"))
    assert any(h["operation"] == "OPTIMIZE" for h in batch_log.history())
    assert len(batch_log.file_uris()) < batches

    # the InfluxDB slots survive compaction: each batch's records under the two tasks that wrote them
    tasks = batch_tasks(config.stream.tables, list(range(batches)))
    assert sum(rows.num_rows for slots in tasks.values() for rows in slots.values()) == RECORDS
    assert all(set(slots) <= {0, 1} for slots in tasks.values())
