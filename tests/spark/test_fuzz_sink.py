"""Fuzzing the whole path a message takes: Kafka bytes -> parse -> score -> the foreachBatch sink ->
Delta and a real InfluxDB. Whatever the bytes, every message of a batch ends exactly once either in
``flows_scored`` or in ``quarantine`` with a reason, a clean record is scored, the stored payload is
capped, and the batch never fails. See tests/helpers/fuzzing.py for the budget and a longer run."""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.config import load_config
from jobs.stream.score_stream import prepared_records
from jobs.stream.sink import ForeachBatchSink
from jobs.stream.parse import kafka_to_raw
from tests.helpers.fuzzing import fuzz_settings, messages, seeded
from tests.services.influxdb_server import TOKEN
from tests.helpers.streaming import stream_conf
from tests.helpers.influx import aggregate_total, count_points, new_influx_bucket

pytestmark = [pytest.mark.spark, pytest.mark.influxdb, pytest.mark.fuzz, pytest.mark.slow]

CAP = 4096


def _table(path, name: str):
    from deltalake import DeltaTable

    return DeltaTable(str(path / "delta" / name)).to_pyarrow_table()


def test_every_message_is_scored_or_quarantined_whatever_its_bytes(spark, influxdb, tmp_path, monkeypatch) -> None:
    bucket = new_influx_bucket(influxdb, "fuzz")
    conf = stream_conf(tmp_path, "127.0.0.1:1", "unused", influx_url=influxdb.url, bucket=bucket)
    monkeypatch.setenv("IOMT_AD_TEST_INFLUX_TOKEN", TOKEN)
    config = load_config(conf)
    stream = dataclasses.replace(config.stream, quarantine_max_chars=CAP)
    sink = ForeachBatchSink(config)
    batch_ids = itertools.count()

    @seeded
    @fuzz_settings(ci_examples=25)
    @given(st.lists(messages(), min_size=1, max_size=25))
    def one_batch(batch: list[tuple[bytes | None, bool]]) -> None:
        batch_id = next(batch_ids)
        rows = [(value, "fuzz", 0, offset, datetime.now(timezone.utc)) for offset, (value, _) in enumerate(batch)]
        kafka = spark.createDataFrame(rows, "value binary, topic string, partition int, offset long, timestamp timestamp")
        sink(prepared_records(kafka_to_raw(kafka), stream), batch_id)

        scored = [r for r in _table(tmp_path, "flows_scored").to_pylist() if r["batch_id"] == batch_id]
        quarantined = [r for r in _table(tmp_path, "quarantine").to_pylist() if r["batch_id"] == batch_id]
        assert len(scored) + len(quarantined) == len(batch)
        offsets = [r["offset"] for r in quarantined]
        assert len(set(offsets)) == len(offsets) and set(offsets) <= set(range(len(batch)))
        for row in quarantined:
            value = batch[row["offset"]][0]
            assert row["reason"], row
            assert not batch[row["offset"]][1], f"a clean record was quarantined: {row['reason']}"
            if value is None:
                assert row["raw_value"] is None and row["raw_bytes"] is None
            else:
                assert row["raw_bytes"] == len(value)
                assert row["raw_sha256"] == hashlib.sha256(value).hexdigest()
                assert len(row["raw_value"]) <= CAP
        clean = sum(1 for _, is_clean in batch if is_clean)
        assert len(scored) >= clean
        log = [r for r in _table(tmp_path, "batch_log").to_pylist() if r["batch_id"] == batch_id]
        assert len(log) == 1 and log[0]["records"] == len(scored) and log[0]["quarantined"] == len(quarantined)
        # points: the batch's per-device aggregates (one at least) and one per anomalous record
        flagged = sum(1 for r in scored if r["is_anomaly"])
        assert log[0]["influx_failed"] == 0, log[0]["influx_error"]
        assert flagged + (1 if scored else 0) <= log[0]["influx_written"] <= flagged + len(scored)

    one_batch()
    assert next(batch_ids) >= 25  # the budget ran
    # InfluxDB counts every scored record once in the aggregates, and holds a point per anomalous one
    scored = _table(tmp_path, "flows_scored")
    assert aggregate_total(influxdb, bucket) == scored.num_rows
    assert count_points(influxdb, bucket) == sum(1 for flag in scored.column("is_anomaly").to_pylist() if flag)
