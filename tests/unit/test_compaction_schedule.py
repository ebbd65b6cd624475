"""When the stream compacts (stream.compaction): the interval from the start and from the last
run, off with "0", and the configuration's bounds."""
from __future__ import annotations

import pytest

from jobs.config import CompactionConfig, ConfigError, config_from_mapping
from jobs.storage import TablesLocation
from jobs.stream.compaction import StreamCompactor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_compaction_is_due_once_per_interval(tmp_path) -> None:
    clock = Clock()
    compactor = StreamCompactor(CompactionConfig(every="10 minutes"), TablesLocation.of(tmp_path), clock)
    assert not compactor.due()  # not at the first batch: the tables are new
    clock.now += 599
    assert not compactor.due()
    clock.now += 1
    assert compactor.due()
    assert compactor.maybe_compact(spark=None) == []  # no table yet: nothing to compact, and no error
    assert not compactor.due()  # the next one is an interval later
    clock.now += 600
    assert compactor.due()


def test_a_failed_compaction_is_logged_and_tried_again_later(tmp_path, caplog) -> None:
    clock = Clock()
    (tmp_path / "flows_scored" / "_delta_log").mkdir(parents=True)  # a table Spark cannot optimize: no session
    compactor = StreamCompactor(CompactionConfig(every="1 minute"), TablesLocation.of(tmp_path), clock)
    clock.now += 60
    assert compactor.maybe_compact(spark=None) == []
    assert "compaction failed" in caplog.text
    assert not compactor.due()
    clock.now += 60
    assert compactor.due()


def test_compaction_off_and_bounds() -> None:
    assert CompactionConfig(every="0").interval is None
    assert not StreamCompactor(CompactionConfig(every="0"), TablesLocation.of("/nonexistent")).due()
    with pytest.raises(ConfigError, match="min_file_mb"):
        config_from_mapping({"stream": {"compaction": {"min_file_mb": 512, "max_file_mb": 256}}})
    with pytest.raises(ConfigError, match="stream.compaction.every"):
        config_from_mapping({"stream": {"compaction": {"every": "often"}}})
