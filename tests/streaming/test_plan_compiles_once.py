"""The job's plan generates the same Java code for every micro-batch, so Spark compiles it once and
the JIT's work on it is kept. A constant that changes from batch to batch (``current_timestamp()``
becomes a literal of the batch's start time, written into the code) made every batch compile the
plan's code again, on the driver and in every executor."""
from __future__ import annotations

import pytest

from tests.helpers.streaming import drop_messages, files_stream_config, good_messages, run_to_end

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _compilations(spark) -> int:
    """Java classes Spark's code generator has compiled in this JVM so far."""
    return int(spark._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME().getCount())


def test_later_batches_compile_no_new_code(spark, sample_dir, tmp_path) -> None:
    messages = [m for _, m in good_messages(sample_dir, 60, seed=4)]
    config = files_stream_config(tmp_path)
    drop_messages(tmp_path / "incoming", "a.json", messages[:30])
    run_to_end(spark, config)  # the first batch compiles the plan's code
    before = _compilations(spark)
    drop_messages(tmp_path / "incoming", "b.json", messages[30:])
    run_to_end(spark, config)  # a later batch, of a query planned again
    assert _compilations(spark) == before
