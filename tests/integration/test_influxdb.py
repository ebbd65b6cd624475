"""The InfluxDB writer against a real InfluxDB 2.x: points land, a replay overwrites, a dead server
is counted, not raised; the per-device aggregates of many tasks and batches add up to the records,
and only anomalous records get a point of their own unless ``record_points: all``."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pytest

from jobs.config import InfluxConfig
from jobs.stream.influx_writer import InfluxWriter
from tests.services.influxdb_server import ORG, TOKEN
from tests.helpers.influx import flux_total, new_influx_bucket, write_rows

if TYPE_CHECKING:
    import pandas as pd

pytestmark = [pytest.mark.influxdb]


def _rows(n: int, offset: int = 0) -> list[dict]:
    return [{
        "record_id": f"r{i}", "source_id": f"pump-{i % 3}:{i}", "event_time": datetime(2026, 1, 2, 3, 4, 5),
        "protocol": "TCP", "predicted_class": "Benign", "predicted_category": "Benign", "is_anomaly": i % 2 == 0,
        "severity": "none", "model_version": "test", "ae_error": 0.01 * i, "if_score": 0.1, "clf_attack_proba": 0.2,
        "ensemble_score": 1.0 + i + offset, "rate": 5.0, "header_length": 20.0, "tot_size": 60.0, "iat": 0.1,
        "number": 10.0, "protocol_type": 6.0, "label": "Benign",
    } for i in range(n)]


def _count(server, bucket: str, measurement_filter: str = "") -> int:
    return flux_total(server,
                      f'from(bucket:"{bucket}") |> range(start: 2026-01-01T00:00:00Z, stop: 2026-01-03T00:00:00Z) '
                      f'|> filter(fn: (r) => r._measurement == "flow_scores" and r._field == "ensemble_score"'
                      f'{measurement_filter}) |> group() |> count()')


def test_points_are_written_and_a_replay_overwrites(influxdb, monkeypatch) -> None:
    monkeypatch.setenv("IOMT_TEST_TOKEN", TOKEN)
    bucket = new_influx_bucket(influxdb, "writer-test")  # the server is shared by the test session
    config = InfluxConfig(enabled=True, url=influxdb.url, org=ORG, bucket=bucket, token_env="IOMT_TEST_TOKEN",
                          batch_size=7)
    writer = InfluxWriter(config)
    try:
        assert write_rows(writer, _rows(20)).written == 20
        assert _count(influxdb, bucket) == 20  # 20 records at the same event time stay 20 points
        assert write_rows(writer, _rows(20, offset=100)).written == 20  # the same records again
        assert _count(influxdb, bucket) == 20
        assert _count(influxdb, bucket, ' and r._value > 100.0') == 20  # overwritten with the new values
    finally:
        writer.close()


def test_unreachable_influxdb_is_counted_not_raised(monkeypatch) -> None:
    from tests.services.ports import free_port

    monkeypatch.setenv("IOMT_TEST_TOKEN", "x")
    config = InfluxConfig(enabled=True, url=f"http://127.0.0.1:{free_port()}", org=ORG, bucket="iomt",
                          token_env="IOMT_TEST_TOKEN", batch_size=5, max_retries=1, timeout_ms=1000)
    writer = InfluxWriter(config)
    try:
        result = write_rows(writer, _rows(12))
    finally:
        writer.close()
    assert result.written == 0 and result.failed == 12
    assert result.error is not None


def test_an_arrow_batch_is_written_in_parallel_requests(influxdb, monkeypatch) -> None:
    import pyarrow as pa

    monkeypatch.setenv("IOMT_TEST_TOKEN", TOKEN)
    bucket = new_influx_bucket(influxdb, "writer-arrow")
    config = InfluxConfig(enabled=True, url=influxdb.url, org=ORG, bucket=bucket, token_env="IOMT_TEST_TOKEN",
                          batch_size=7, parallel_writes=2)
    writer = InfluxWriter(config)
    try:
        result = writer.write_table(pa.Table.from_pylist(_rows(20)))  # 3 requests, 2 at a time
    finally:
        writer.close()
    assert (result.written, result.failed, result.error) == (20, 0, None)
    assert _count(influxdb, bucket) == 20


def test_an_unreachable_influxdb_fails_every_arrow_request_once(monkeypatch) -> None:
    import pyarrow as pa

    from tests.services.ports import free_port

    monkeypatch.setenv("IOMT_TEST_TOKEN", "x")
    config = InfluxConfig(enabled=True, url=f"http://127.0.0.1:{free_port()}", org=ORG, bucket="iomt",
                          token_env="IOMT_TEST_TOKEN", batch_size=5, max_retries=1, timeout_ms=1000,
                          parallel_writes=2)
    writer = InfluxWriter(config)
    try:
        result = writer.write_table(pa.Table.from_pylist(_rows(12)))
    finally:
        writer.close()
    assert result.written == 0 and result.failed == 12 and result.error is not None


# --- what the stream writes: per-device aggregates and a point per anomalous record ------------------

def _scored(n: int) -> "pd.DataFrame":
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(19)
    start = pd.Timestamp("2026-01-02 03:04:00", tz="UTC")
    return pd.DataFrame({
        "record_id": [f"rec-{i}" for i in range(n)],
        "source_id": [f"file-{i % 2}.csv:{i}" for i in range(n)],
        "device_id": rng.choice(["pump-1", "monitor-2", None], n),
        "event_time": start + pd.to_timedelta(rng.integers(0, 60_000, n), "ms"),  # 6 intervals of 10 s
        "protocol": rng.choice(["TCP", "UDP"], n), "predicted_class": rng.choice(["Benign", "DoS-TCP"], n),
        "predicted_category": "x", "is_anomaly": rng.random(n) < 0.3, "severity": "low", "model_version": "v3",
        "ae_error": rng.random(n), "if_score": rng.random(n), "clf_attack_proba": rng.random(n),
        "ensemble_score": rng.normal(size=n) * 3, "rate": rng.random(n) * 1e4, "header_length": 20.0,
        "tot_size": rng.integers(40, 1500, n).astype(float), "iat": 0.1, "number": 9.0, "protocol_type": 6.0,
        "label": rng.choice(["Benign", "DoS-TCP", None], n),
    })


def _tasks(rows: "pd.DataFrame", batches: int, partitions: int):
    """The rows as the stream's tasks would hand them over: (batch id, partition, table)."""
    import pyarrow as pa

    size = -(-len(rows) // (batches * partitions))
    for task in range(batches * partitions):
        part = rows.iloc[task * size:(task + 1) * size]
        yield 40 + task // partitions, task % partitions, pa.Table.from_pandas(part, preserve_index=False)


def _write_tasks(writer, tasks) -> int:
    from jobs.stream.writers import BatchOutput
    from schemas.tables import FLOWS_SCORED

    written = 0
    for batch_id, partition, table in tasks:
        outcome = writer.write(BatchOutput(batch_id=batch_id, partition=partition, tables={FLOWS_SCORED: table}))
        assert outcome.failed == 0, outcome.error
        written += outcome.written
    return written


def _per_source(server, bucket: str) -> dict[str, dict[str, float]]:
    """Flux's sum (or max) of each device_traffic field per source over the whole range."""
    from influxdb_client import InfluxDBClient

    query = (f'from(bucket:"{bucket}") |> range(start: 2026-01-01T00:00:00Z, stop: 2026-01-03T00:00:00Z) '
             '|> filter(fn: (r) => r._measurement == "device_traffic") |> group(columns: ["source", "_field"]) ')
    totals: dict[str, dict[str, float]] = {}
    with InfluxDBClient(url=server.url, token=TOKEN, org=ORG) as client:
        for fn in ("sum", "max"):
            for table in client.query_api().query(query + f"|> {fn}()"):
                for record in table.records:
                    totals.setdefault(record["source"], {})[f"{record['_field']}:{fn}"] = record.get_value()
    return totals


def _points_writer(influxdb, bucket: str, **options):
    from jobs.stream.influx_writer import InfluxPointsWriter

    return InfluxPointsWriter(InfluxConfig(enabled=True, url=influxdb.url, org=ORG, bucket=bucket,
                                           token_env="IOMT_TEST_TOKEN", batch_size=50, **options))


def test_aggregates_add_up_to_the_records_over_tasks_and_batches_and_a_replay_does_not_double(
        influxdb, monkeypatch) -> None:
    monkeypatch.setenv("IOMT_TEST_TOKEN", TOKEN)
    bucket = new_influx_bucket(influxdb, "aggregates")
    rows = _scored(600)
    writer = _points_writer(influxdb, bucket)
    try:
        first = _write_tasks(writer, _tasks(rows, batches=3, partitions=4))  # 12 partials of each interval
        replayed = _write_tasks(writer, _tasks(rows, batches=3, partitions=4))  # every batch again
    finally:
        writer.close()
    assert first == replayed

    # the truth, counted from the input rows
    rows["source"] = rows["device_id"].fillna(rows["source_id"].str.split(":").str[0])
    expected = rows.groupby("source").agg(records=("record_id", "size"), anomalies=("is_anomaly", "sum"),
                                          bytes=("tot_size", "sum"), top=("ensemble_score", "max"),
                                          last=("event_time", "max"))
    totals = _per_source(influxdb, bucket)
    assert sorted(totals) == sorted(expected.index) == ["file-0.csv", "file-1.csv", "monitor-2", "pump-1"]
    for source, truth in expected.iterrows():
        got = totals[source]
        assert got["records:sum"] == truth["records"], source
        assert got["anomalies:sum"] == truth["anomalies"], source
        assert got["tot_size_sum:sum"] == pytest.approx(truth["bytes"])
        assert got["ensemble_score_max:max"] == pytest.approx(truth["top"])
        assert got["last_seen:max"] == pytest.approx(truth["last"].timestamp())
    benign = rows[rows["predicted_class"] == "Benign"]
    assert sum(t["benign_records:sum"] for t in totals.values()) == len(benign)
    assert sum(t["benign_rate_sum:sum"] for t in totals.values()) == pytest.approx(benign["rate"].sum())
    # a point per anomalous record, none for the others
    assert _count(influxdb, bucket) == int(rows["is_anomaly"].sum())
    assert _count(influxdb, bucket, ' and r.is_anomaly == "false"') == 0


def test_record_points_all_writes_a_point_per_record(influxdb, monkeypatch) -> None:
    monkeypatch.setenv("IOMT_TEST_TOKEN", TOKEN)
    bucket = new_influx_bucket(influxdb, "all-records")
    rows = _scored(120)
    writer = _points_writer(influxdb, bucket, record_points="all")
    try:
        _write_tasks(writer, _tasks(rows, batches=2, partitions=2))
    finally:
        writer.close()
    assert _count(influxdb, bucket) == 120
    assert _count(influxdb, bucket, ' and r.is_anomaly == "false"') == int((~rows["is_anomaly"]).sum())
    assert sum(t["records:sum"] for t in _per_source(influxdb, bucket).values()) == 120
