"""The InfluxDB writer against a real InfluxDB 2.x: points land, a replay overwrites, a dead server
is counted, not raised."""
from datetime import datetime

import pytest

from jobs.config import InfluxConfig
from jobs.stream.influx_writer import InfluxWriter
from tests.services.influxdb_server import ORG, TOKEN
from tests.helpers.influx import new_influx_bucket, write_rows

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
    from influxdb_client import InfluxDBClient

    with InfluxDBClient(url=server.url, token=TOKEN, org=ORG) as client:
        tables = client.query_api().query(
            f'from(bucket:"{bucket}") |> range(start: 2026-01-01T00:00:00Z, stop: 2026-01-03T00:00:00Z) '
            f'|> filter(fn: (r) => r._measurement == "flow_scores" and r._field == "ensemble_score"{measurement_filter}) '
            '|> group() |> count()')
        return sum(record.get_value() for table in tables for record in table.records)


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
