"""The job's plan generates the same Java code for every micro-batch, so Spark compiles it once and
the JIT's work on it is kept. A constant that changes from batch to batch (``current_timestamp()``
becomes a literal of the batch's start time, written into the code) made every batch compile the
plan's code again, on the driver and in every executor."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.config import config_from_mapping
from jobs.stream.score_stream import start_query
from tests.helpers.streaming import BUNDLE, good_messages

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _compilations(spark) -> int:
    """Java classes Spark's code generator has compiled in this JVM so far."""
    return int(spark._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME().getCount())


def _run(spark, config, tmp: Path, name: str, messages: list[dict]) -> None:
    (tmp / "incoming").mkdir(exist_ok=True)
    (tmp / "incoming" / name).write_text("".join(json.dumps(m) + "\n" for m in messages))
    query = start_query(spark, config)
    query.awaitTermination()
    assert query.exception() is None


def test_later_batches_compile_no_new_code(spark, sample_dir, tmp_path) -> None:
    messages = [m for _, m in good_messages(sample_dir, 60, seed=4)]
    config = config_from_mapping({"stream": {
        "source": "files", "files": {"path": str(tmp_path / "incoming")}, "tables_dir": str(tmp_path / "delta"),
        "trigger": "availableNow", "model_dir": str(BUNDLE)}})
    _run(spark, config, tmp_path, "a.json", messages[:30])  # the first batch compiles the plan's code
    before = _compilations(spark)
    _run(spark, config, tmp_path, "b.json", messages[30:])  # a later batch, of a query planned again
    assert _compilations(spark) == before
