"""``iomt-ad maintain``: OPTIMIZE compacts the stream's small files without changing a row, VACUUM
with the default 7-day retention keeps every version readable, and a short retention is refused
unless explicitly allowed."""
from __future__ import annotations

import shutil

import pytest

from jobs.batch.maintain import DEFAULT_RETAIN_HOURS, UnsafeRetentionError, check_retention, maintain

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _rows(spark, path, version: int | None = None):
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return sorted(reader.load(str(path)).collect())


def test_short_retention_is_refused_by_default() -> None:
    assert DEFAULT_RETAIN_HOURS >= 168
    with pytest.raises(UnsafeRetentionError, match="below 168"):
        check_retention(1, allow_short=False)
    check_retention(1, allow_short=True)


def test_optimize_and_safe_vacuum(spark, job_tables, tmp_path) -> None:
    tables = tmp_path / "delta"
    shutil.copytree(job_tables.tables_dir, tables, ignore=shutil.ignore_patterns("_checkpoints"))
    flows = tables / "flows_scored"
    before = _rows(spark, flows)

    with pytest.raises(UnsafeRetentionError):
        maintain(spark, tables, ["flows_scored"], retain_hours=0)
    results = {r.table: r for r in maintain(spark, tables, ["flows_scored", "quarantine"])}

    flows_result = results["flows_scored"]
    assert flows_result.files_compacted > 0 and flows_result.files_after < flows_result.files_before
    assert flows_result.files_vacuumed == 0  # every removed file is younger than 7 days
    assert _rows(spark, flows) == before
    assert _rows(spark, flows, version=0)  # time travel still works: nothing it needs was deleted
    assert spark.conf.get("spark.databricks.delta.retentionDurationCheck.enabled", "true") == "true"


def test_explicit_short_retention_deletes_compacted_files(spark, job_tables, tmp_path) -> None:
    tables = tmp_path / "delta"
    shutil.copytree(job_tables.tables_dir / "traffic_1m", tables / "traffic_1m")
    before = _rows(spark, tables / "traffic_1m")
    [result] = maintain(spark, tables, ["traffic_1m"], retain_hours=0, allow_short=True)
    assert result.files_compacted > 0 and result.files_vacuumed >= result.files_compacted
    assert _rows(spark, tables / "traffic_1m") == before
    assert spark.conf.get("spark.databricks.delta.retentionDurationCheck.enabled", "true") == "true"


def test_cli_refuses_short_retention_before_starting_spark(tmp_path, caplog) -> None:
    from jobs.cli import main

    code = main(["maintain", "--conf", str(tmp_path / "absent.yaml"), "--retain-hours", "24"])
    assert code == 2  # refused before the configuration is even read: no Spark started
    assert "VACUUM retention 24 h is below 168 h" in caplog.text