"""Batch re-scoring over tables the streaming job wrote: the right rows, the stream's scores for the
same bundle, idempotent reruns, overlapping ranges, and one scoring_runs row per run."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from chispa import assert_approx_df_equality

from jobs.config import load_config
from jobs.batch.rescore import SCORING_RUNS, RescoreError, TimeRange, rescore
from tests.batch.conftest import event_time
from tests.helpers.streaming import BUNDLE, BUNDLE_VERSION

pytestmark = [pytest.mark.spark, pytest.mark.slow]

# Its own target table: the analyst-query tests re-score the whole range into flows_rescored.
TARGET = "flows_rescored_under_test"
RANGE_A = ("2025-03-01T23:30:00Z", "2025-03-02T03:00:00Z")   # crosses midnight: two event_date partitions
RANGE_B = ("2025-03-02T02:00:00+01:00", "2025-03-02 05:00:00")  # an offset, and a naive UTC time


def _expected_ids(job_tables, start: str, end: str) -> set[str]:
    low = datetime.fromisoformat(start)
    high = datetime.fromisoformat(end)
    low = low if low.tzinfo else low.replace(tzinfo=timezone.utc)
    high = high if high.tzinfo else high.replace(tzinfo=timezone.utc)
    return {m["record_id"] for i, m in enumerate(job_tables.messages) if low <= event_time(i) < high}


def _table(spark, job_tables, name: str):
    return spark.read.format("delta").load(str(job_tables.tables_dir / name))


@pytest.fixture(scope="module")
def first_run(spark, job_tables):
    config = load_config(job_tables.conf_path)
    return rescore(spark, config, str(BUNDLE), TimeRange.parse(*RANGE_A), target=TARGET)


def test_rescores_exactly_the_rows_of_the_range(spark, job_tables, first_run) -> None:
    expected = _expected_ids(job_tables, *RANGE_A)
    assert len(expected) == 210  # 23:30 -> 03:00 at one record a minute
    rescored = _table(spark, job_tables, TARGET)
    assert first_run.rows_read == first_run.rows_written == len(expected)
    assert {r["record_id"] for r in rescored.select("record_id").collect()} == expected
    assert {r["event_date"].isoformat() for r in rescored.select("event_date").distinct().collect()} == {
        "2025-03-01", "2025-03-02"}
    assert first_run.model_version == BUNDLE_VERSION


def test_same_bundle_gives_the_stream_scores(spark, job_tables, first_run) -> None:
    rescored = _table(spark, job_tables, TARGET)
    stream = _table(spark, job_tables, "flows_scored").join(rescored.select("record_id"), "record_id")
    columns = ["record_id", "ensemble_score", "is_anomaly", "predicted_class", "ae_error", "if_score"]
    assert_approx_df_equality(rescored.select(columns).orderBy("record_id"),
                              stream.select(columns).orderBy("record_id"), precision=1e-6)
    mismatched = rescored.filter("is_anomaly != stream_is_anomaly OR model_version != stream_model_version")
    assert mismatched.count() == 0


def test_running_twice_changes_nothing(spark, job_tables, first_run) -> None:
    config = load_config(job_tables.conf_path)
    before = sorted(_table(spark, job_tables, TARGET).collect())
    again = rescore(spark, config, str(BUNDLE), TimeRange.parse(*RANGE_A), target=TARGET)
    after = sorted(_table(spark, job_tables, TARGET).collect())
    assert again.rows_written == first_run.rows_written
    assert after == before


def test_overlapping_range_keeps_one_row_per_record(spark, job_tables, first_run) -> None:
    config = load_config(job_tables.conf_path)
    second = rescore(spark, config, str(BUNDLE), TimeRange.parse(*RANGE_B), target=TARGET)
    assert second.rows_written == len(_expected_ids(job_tables, *RANGE_B)) == 240  # 01:00 -> 05:00 UTC
    rescored = _table(spark, job_tables, TARGET)
    union = _expected_ids(job_tables, *RANGE_A) | _expected_ids(job_tables, *RANGE_B)
    assert rescored.count() == len(union)
    assert {r["record_id"] for r in rescored.select("record_id").collect()} == union


def test_each_run_is_recorded(spark, job_tables, first_run) -> None:
    runs = _table(spark, job_tables, SCORING_RUNS)
    row = runs.filter(runs.run_id == first_run.run_id).first()
    assert row is not None
    assert (row["status"], row["model_version"], row["rows_read"], row["rows_written"]) == (
        "succeeded", BUNDLE_VERSION, first_run.rows_written, first_run.rows_written)
    in_utc = runs.filter(runs.run_id == first_run.run_id).selectExpr(
        "date_format(range_from, 'yyyy-MM-dd HH:mm') AS f", "date_format(range_to, 'yyyy-MM-dd HH:mm') AS t").first()
    assert (in_utc["f"], in_utc["t"]) == ("2025-03-01 23:30", "2025-03-02 03:00")  # session time zone UTC
    assert row["seconds"] > 0 and row["finished_at"] >= row["started_at"]
    assert runs.select("run_id").distinct().count() == runs.count()


def test_bad_ranges_are_refused() -> None:
    with pytest.raises(RescoreError, match="before"):
        TimeRange.parse("2025-03-02T00:00:00Z", "2025-03-01T00:00:00Z")
    with pytest.raises(RescoreError, match="ISO-8601"):
        TimeRange.parse("yesterday", "2025-03-01T00:00:00Z")
