"""The foreachBatch sink commits to a table only when a batch has rows for it, once the table exists."""
import json
from datetime import datetime

import pytest

from jobs.config import load_config
from jobs.stream.score_stream import prepared_records
from jobs.stream.sink import ForeachBatchSink
from tests.helpers.streaming import good_messages, read_table, stream_conf

pytestmark = pytest.mark.spark


def _batch(spark, config, messages: list[str], first_offset: int):
    raw = spark.createDataFrame(
        [(text, "topic-a", 0, first_offset + i, datetime(2026, 5, 5, 5, 5, 5)) for i, text in enumerate(messages)],
        "raw_value string, origin string, partition int, offset long, ingest_time timestamp")
    return prepared_records(raw, config.stream)


def _commits(spark, tmp_path, name: str) -> int:
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, str(tmp_path / "delta" / name)).history().count()


def test_an_empty_quarantine_is_created_once_then_not_committed_to(spark, sample_dir, tmp_path) -> None:
    config = load_config(stream_conf(tmp_path, "127.0.0.1:1", "unused"))
    sink = ForeachBatchSink(config)
    messages = [json.dumps(message) for _, message in good_messages(sample_dir, 41, seed=3)]

    sink(_batch(spark, config, messages[:20], 0), 0)
    assert read_table(spark, tmp_path, "quarantine").count() == 0  # created by the first batch
    assert _commits(spark, tmp_path, "quarantine") == 1

    sink(_batch(spark, config, messages[20:40] + ["{not json"], 20), 1)
    sink(_batch(spark, config, messages[40:], 41), 2)
    assert read_table(spark, tmp_path, "flows_scored").count() == 41
    assert _commits(spark, tmp_path, "flows_scored") == 3
    assert read_table(spark, tmp_path, "quarantine").count() == 1
    assert _commits(spark, tmp_path, "quarantine") == 2  # batch 2 had no bad record: no commit
    assert read_table(spark, tmp_path, "batch_log").count() == 3
