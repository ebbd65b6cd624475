"""The stream compacts its own small files in a thread beside its batches (``stream.compaction``):
the tables keep every record exactly once, the appends committed beside a compaction never fail a
batch, the tables end with fewer files than the batches wrote, and each record keeps the task slot
of its InfluxDB aggregates."""
from __future__ import annotations

import time

import pytest
from deltalake import DeltaTable

from jobs.config import load_config
from jobs.ops.influx_backfill import batch_tasks
from tests.helpers.streaming import good_messages, produce, read_table, run_to_end, stream_conf

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
    run_to_end(spark, config)

    scored = read_table(spark, tmp_path, "flows_scored")
    ids = [r["record_id"] for r in scored.select("record_id").collect()]
    assert sorted(ids) == sorted(m["record_id"] for _, m in messages)  # each record once
    batches = read_table(spark, tmp_path, "batch_log").count()
    assert batches >= 3
    assert read_table(spark, tmp_path, "traffic_1m").groupBy().sum("records").first()[0] == RECORDS
    assert {r["task_slot"] for r in scored.select("task_slot").distinct().collect()} == {0, 1}

    # the first compaction starts after the first batch, in its own thread: it may still be running
    for name in ("flows_scored", "batch_log"):
        table = DeltaTable(str(tmp_path / "delta" / name))
        deadline = time.monotonic() + 180
        while not any(h["operation"] == "OPTIMIZE" for h in table.history()) and time.monotonic() < deadline:
            time.sleep(2)
            table.update_incremental()
        assert any(h["operation"] == "OPTIMIZE" for h in table.history()), f"no compaction in {name}'s history"
    flows = DeltaTable(str(tmp_path / "delta" / "flows_scored"))
    written = 2 * batches  # one file per task and batch
    assert len(flows.file_uris()) < written, f"{len(flows.file_uris())} data files after {batches} batches"
    assert len(flows.to_pyarrow_table(columns=["record_id"])) == RECORDS  # compaction neither lost nor doubled

    # the InfluxDB slots survive compaction: each batch's records under the two tasks that wrote them
    tasks = batch_tasks(config.stream.tables, list(range(batches)))
    assert sum(rows.num_rows for slots in tasks.values() for rows in slots.values()) == RECORDS
    assert all(set(slots) <= {0, 1} for slots in tasks.values())
