"""A lost checkpoint, or an older copy restored, never makes the job skip or repeat batches silently:
it refuses to start and says what to do; the checkpoint that belongs to the tables continues them;
a new app id starts a new run on purpose."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jobs.stream.checkpoint_guard import CheckpointMismatchError
from jobs.stream.score_stream import start_query
from jobs.stream.sink import ForeachBatchSink
from tests.helpers.streaming import drop_messages, files_stream_config, good_messages, run_to_end

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _record_ids(tmp: Path) -> list[str]:
    from deltalake import DeltaTable

    return DeltaTable(str(tmp / "delta" / "flows_scored")).to_pyarrow_table(columns=["record_id"])["record_id"].to_pylist()


def test_lost_or_old_checkpoints_refuse_to_start_and_the_right_one_continues(spark, sample_dir, tmp_path) -> None:
    messages = [m for _, m in good_messages(sample_dir, 40, seed=11)]
    config = files_stream_config(tmp_path, app_id="guarded")
    checkpoint = config.stream.checkpoint
    drop_messages(tmp_path / "incoming", "a.json", messages[:15])
    run_to_end(spark, config)
    old_backup = tmp_path / "backup-old"
    shutil.copytree(checkpoint, old_backup)
    drop_messages(tmp_path / "incoming", "b.json", messages[15:25])
    run_to_end(spark, config)
    assert sorted(_record_ids(tmp_path)) == sorted(m["record_id"] for m in messages[:25])
    current = tmp_path / "backup-current"
    shutil.copytree(checkpoint, current)

    # the case: checkpoint deleted, new records arrive
    shutil.rmtree(checkpoint)
    drop_messages(tmp_path / "incoming", "c.json", messages[25:])
    with pytest.raises(CheckpointMismatchError, match="checkpoint .* is missing or empty"):
        start_query(spark, config)
    # an older backup restored
    shutil.copytree(old_backup, checkpoint)
    with pytest.raises(CheckpointMismatchError, match=r"ends at batch 0 \(restored from an older backup\?\)"):
        start_query(spark, config)
    assert len(_record_ids(tmp_path)) == 25  # nothing written by the refused starts

    # the checkpoint that belongs to the tables continues them: every record once
    shutil.rmtree(checkpoint)
    shutil.copytree(current, checkpoint)
    run_to_end(spark, config)
    assert sorted(_record_ids(tmp_path)) == sorted(m["record_id"] for m in messages)

    # a new run on purpose: a new app id with a fresh checkpoint (the files source reads every file again)
    shutil.rmtree(checkpoint)
    run_to_end(spark, files_stream_config(tmp_path, app_id="guarded-2"))
    assert len(_record_ids(tmp_path)) == 2 * len(messages)


def test_the_sink_stops_rather_than_skip_a_batch_another_query_wrote(spark, sample_dir, tmp_path) -> None:
    """Defence in depth behind the start check: the sink skips a batch the tables hold only when it
    is the last batch this very query wrote (a replay after a crash)."""
    messages = [m for _, m in good_messages(sample_dir, 10, seed=12)]
    config = files_stream_config(tmp_path, app_id="guarded")
    drop_messages(tmp_path / "incoming", "a.json", messages)
    run_to_end(spark, config)  # batch 0, written by the query of this checkpoint
    batch = spark.read.format("delta").load(str(tmp_path / "delta" / "flows_scored")).limit(0)

    ForeachBatchSink(config)(batch, 0)  # the same query replays its last batch: skipped

    shutil.rmtree(config.stream.checkpoint)
    (config.stream.checkpoint).mkdir(parents=True)
    (config.stream.checkpoint / "metadata").write_text('{"id":"another-query"}\n')
    with pytest.raises(CheckpointMismatchError, match="batch 0 of query another-query is already in the tables"):
        ForeachBatchSink(config)(batch, 0)
    assert len(_record_ids(tmp_path)) == 10
