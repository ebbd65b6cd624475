"""The job and every reader with the tables on a real S3-compatible object store (SeaweedFS on
loopback): the stream writes its tables and its checkpoint there (executors' data files through
pyarrow's S3 filesystem, commits through delta-rs, the checkpoint through S3A), restarts from that
checkpoint, and ``sql``, ``rescore``, ``maintain`` and the operator dashboard's reader work on those
tables. The same commands on local paths are tested in tests/batch and tests/streaming."""
from __future__ import annotations

import json
import uuid

import pytest

from tests.helpers.streaming import BUNDLE, MALFORMED, good_messages, run_to_end

pytestmark = [pytest.mark.objectstore, pytest.mark.spark, pytest.mark.slow]

N_RECORDS = 300


def _conf(path, incoming, tables_uri: str, endpoint: str):
    path.write_text(
        "spark:\n  master: local[2]\n"
        f"stream:\n  source: files\n  files:\n    path: {incoming}\n    max_files_per_trigger: 1\n"
        f"  tables_dir: {tables_uri}\n  trigger: availableNow\n  model_dir: {BUNDLE}\n"
        f"  storage:\n    endpoint: {endpoint}\n    allow_http: true\n"
        "influxdb:\n  enabled: false\n")
    return path


def test_the_stream_and_every_reader_on_an_object_store(spark, object_store, sample_dir, tmp_path) -> None:
    from jobs.batch.maintain import maintain
    from jobs.batch.rescore import TimeRange, rescore
    from jobs.batch.sql import register_tables
    from jobs.config import load_config
    from jobs.dashboard.data import DashboardSettings, load_snapshot

    for key, value in object_store.hadoop_conf().items():  # the session exists: S3A's settings at runtime
        spark.conf.set(key, value)
    prefix = f"site-{uuid.uuid4().hex[:8]}"
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    messages = [m for _, m in good_messages(sample_dir, N_RECORDS, seed=41)]
    for index in range(2):
        part = messages[index::2]
        (incoming / f"flows-{index}.json").write_text("\n".join(json.dumps(m) for m in part) + "\n")
    (incoming / "flows-bad.json").write_text("\n".join(raw for raw, _ in MALFORMED) + "\n")
    conf_path = _conf(tmp_path / "conf.yaml", incoming, object_store.uri(f"{prefix}/tables"), object_store.endpoint)
    config = load_config(conf_path)
    tables = config.stream.tables
    assert not tables.is_local and config.stream.checkpoint_location.spark_uri().startswith("s3a://")

    run_to_end(spark, config)
    scored = tables.delta_table("flows_scored").to_pyarrow_table(columns=["record_id"])
    assert sorted(scored.column("record_id").to_pylist()) == sorted(m["record_id"] for m in messages)
    quarantined = tables.delta_table("quarantine").to_pyarrow_table(columns=["reason"]).column("reason").to_pylist()
    assert sorted(quarantined) == sorted(reason for _, reason in MALFORMED)
    keys = object_store.keys(f"{prefix}/")
    assert any(k.startswith(f"{prefix}/tables/flows_scored/") and k.endswith(".parquet") for k in keys)
    assert any(k.startswith(f"{prefix}/tables/_checkpoints/score_stream/offsets/") for k in keys)
    assert not (tmp_path / "var").exists()  # nothing went to a local directory instead

    # a restart continues from the checkpoint on the store: nothing new, nothing written twice
    run_to_end(spark, config, timeout_s=300)
    assert tables.delta_table("flows_scored").to_pyarrow_table(columns=["record_id"]).num_rows == N_RECORDS

    views = register_tables(spark, tables)
    assert {"flows_scored", "alerts", "quarantine", "traffic_1m", "batch_log"} <= set(views)
    assert spark.sql("SELECT count(*) AS n FROM flows_scored").first()["n"] == N_RECORDS
    assert spark.sql("SELECT sum(records) AS n FROM traffic_1m").first()["n"] == N_RECORDS

    result = rescore(spark, config, str(BUNDLE), TimeRange.parse("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"))
    assert (result.rows_read, result.rows_written) == (N_RECORDS, N_RECORDS)
    assert result.target == tables.uri("flows_rescored")
    assert tables.delta_table("scoring_runs").to_pyarrow_table(columns=["status"]).column("status").to_pylist() == [
        "succeeded"]

    [maintained] = maintain(spark, tables, ["flows_scored"], retain_hours=0, allow_short=True)
    assert maintained.table == "flows_scored" and maintained.files_after <= maintained.files_before
    assert tables.delta_table("flows_scored").to_pyarrow_table(columns=["record_id"]).num_rows == N_RECORDS

    snapshot = load_snapshot(DashboardSettings(tables_dir=tables.root, model_dir=BUNDLE, conf_path=conf_path))
    assert len(snapshot.flows) == N_RECORDS and not snapshot.batches.empty
