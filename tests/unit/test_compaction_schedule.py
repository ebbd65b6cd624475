"""When the stream compacts (stream.compaction): once per interval, never two at once, off with
"0", a failure logged and tried again; real delta-rs tables compacted with every row kept."""
from __future__ import annotations

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from jobs.config import CompactionConfig, ConfigError, config_from_mapping
from jobs.storage import TablesLocation
from jobs.stream.compaction import StreamCompactor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_compaction_is_due_once_per_interval(tmp_path) -> None:
    clock = Clock()
    compactor = StreamCompactor(CompactionConfig(every="10 minutes"), TablesLocation.of(tmp_path), clock)
    assert not compactor.after_batch()  # not at the first batch: the tables are new
    clock.now += 600
    assert compactor.after_batch()
    compactor.wait(60)
    assert compactor.completed == 1  # no table yet: nothing to compact, and no error
    assert not compactor.after_batch()  # the next one is an interval later
    clock.now += 600
    assert compactor.due()


def test_small_files_are_merged_and_every_row_kept(tmp_path) -> None:
    path = str(tmp_path / "traffic_1m")
    for batch in range(6):  # six appends: six small files (the rows: a counter, nothing more is needed)
        write_deltalake(path, pa.table({"batch_id": pa.array([batch] * 3, pa.int64())}), mode="append")
    clock = Clock()
    compactor = StreamCompactor(CompactionConfig(every="1 minute"), TablesLocation.of(tmp_path), clock)
    runs = compactor.compact()
    assert [(r.table, r.files_removed, r.files_added) for r in runs] == [("traffic_1m", 6, 1)]
    table = DeltaTable(path)
    assert len(table.file_uris()) == 1 and sorted(table.to_pyarrow_table()["batch_id"].to_pylist()) == \
        sorted(b for b in range(6) for _ in range(3))
    assert table.history(1)[0]["operation"] == "OPTIMIZE"


def test_a_failed_compaction_is_logged_and_tried_again_later(tmp_path, caplog) -> None:
    clock = Clock()
    (tmp_path / "flows_scored" / "_delta_log").mkdir(parents=True)
    (tmp_path / "flows_scored" / "_delta_log" / "00000000000000000000.json").write_text("not a delta log\n")
    compactor = StreamCompactor(CompactionConfig(every="1 minute"), TablesLocation.of(tmp_path), clock)
    clock.now += 60
    assert compactor.after_batch()
    compactor.wait(60)
    assert compactor.completed == 0 and "compaction failed" in caplog.text
    assert not compactor.due()
    clock.now += 60
    assert compactor.due()


def test_compaction_off_and_bounds() -> None:
    assert CompactionConfig(every="0").interval is None
    assert not StreamCompactor(CompactionConfig(every="0"), TablesLocation.of("/nonexistent")).due()
    with pytest.raises(ConfigError, match="target_file_mb"):
        config_from_mapping({"stream": {"compaction": {"target_file_mb": 0}}})
    with pytest.raises(ConfigError, match="stream.compaction.every"):
        config_from_mapping({"stream": {"compaction": {"every": "often"}}})
