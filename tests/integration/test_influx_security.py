"""InfluxDB least privilege and TLS against a real influxd: ``iomt-ad influx-tokens`` makes a token the
job can write with and not read with, and one Grafana can read with and not write with; it is
idempotent, replaces a deleted token and rotates on request. A server behind an internal CA is
written to with ``influxdb.ssl_ca_file``, and refused without it."""
from __future__ import annotations

import stat
from datetime import datetime

import pytest

from jobs.cli import main
from jobs.config import ConfigError, InfluxConfig, config_from_mapping
from jobs.stream.influx_writer import InfluxWriter
from tests.helpers.influx import new_influx_bucket, write_rows
from tests.helpers.tls import make_pki
from tests.services.influxdb_server import ORG, TOKEN

pytestmark = pytest.mark.influxdb

ADMIN_ENV = "IOMT_AD_TEST_INFLUX_ADMIN"


def _rows(n: int) -> list[dict]:
    return [{"record_id": f"tok-{i}", "source_id": "pump-1", "event_time": datetime(2026, 1, 2, 3, 4, 5),
             "protocol": "TCP", "predicted_class": "Benign", "predicted_category": "Benign", "is_anomaly": False,
             "severity": "none", "model_version": "test", "ae_error": 0.01, "if_score": 0.1,
             "clf_attack_proba": 0.2, "ensemble_score": 1.0 + i, "rate": 5.0, "header_length": 20.0,
             "tot_size": 60.0, "iat": 0.1, "number": 10.0, "protocol_type": 6.0, "label": "Benign"}
            for i in range(n)]


def _tokens(influxdb, bucket, tmp_path, *extra: str) -> tuple[str, str]:
    job, grafana = tmp_path / "job.token", tmp_path / "grafana.token"
    assert main(["influx-tokens", "--url", influxdb.url, "--org", ORG, "--bucket", bucket,
                 "--admin-token-env", ADMIN_ENV, "--job-token-file", str(job),
                 "--grafana-token-file", str(grafana), *extra]) == 0
    return job.read_text(), grafana.read_text()


def _write(influxdb, bucket, token: str, n: int = 5):
    writer = InfluxWriter(InfluxConfig(enabled=True, url=influxdb.url, org=ORG, bucket=bucket, max_retries=0,
                                       timeout_ms=5000), token=token)
    try:
        return write_rows(writer, _rows(n))
    finally:
        writer.close()


def _query(influxdb, bucket, token: str) -> int:
    from influxdb_client import InfluxDBClient

    with InfluxDBClient(url=influxdb.url, token=token, org=ORG) as client:
        tables = client.query_api().query(
            f'from(bucket:"{bucket}") |> range(start: 2026-01-01T00:00:00Z, stop: 2026-01-03T00:00:00Z) '
            '|> filter(fn: (r) => r._field == "ensemble_score") |> group() |> count()')
        return sum(record.get_value() for table in tables for record in table.records)


def _ours(influxdb, bucket) -> list:
    from influxdb_client import InfluxDBClient

    with InfluxDBClient(url=influxdb.url, token=TOKEN, org=ORG) as client:
        return [a for a in client.authorizations_api().find_authorizations()
                if (a.description or "").endswith(f"bucket {bucket}")]


def test_the_jobs_token_only_writes_and_grafanas_only_reads(influxdb, tmp_path, monkeypatch) -> None:
    from influxdb_client.rest import ApiException

    monkeypatch.setenv(ADMIN_ENV, TOKEN)
    bucket = new_influx_bucket(influxdb, "least-privilege")
    other = new_influx_bucket(influxdb, "least-privilege-other")
    job, grafana = _tokens(influxdb, bucket, tmp_path)
    assert job != grafana and TOKEN not in (job, grafana)
    for name in ("job.token", "grafana.token"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600

    assert _write(influxdb, bucket, job).written == 5          # the job writes its bucket ...
    with pytest.raises(ApiException) as denied:                # ... and cannot read it back
        _query(influxdb, bucket, job)
    assert denied.value.status in (401, 403, 404)
    assert _write(influxdb, other, job).failed == 5            # nor write another bucket

    assert _query(influxdb, bucket, grafana) == 5              # Grafana reads it ...
    refused = _write(influxdb, bucket, grafana)                # ... and cannot write it
    assert refused.written == 0 and refused.failed == 5
    with pytest.raises(ApiException):
        _query(influxdb, other, grafana)                       # nor read another bucket
    assert _query(influxdb, bucket, TOKEN) == 5                # nothing more landed


def test_tokens_are_kept_replaced_when_deleted_and_rotated(influxdb, tmp_path, monkeypatch) -> None:
    from influxdb_client import InfluxDBClient

    monkeypatch.setenv(ADMIN_ENV, TOKEN)
    bucket = new_influx_bucket(influxdb, "token-lifecycle")
    first = _tokens(influxdb, bucket, tmp_path, "--grafana-token-mode", "644")
    assert stat.S_IMODE((tmp_path / "grafana.token").stat().st_mode) == 0o644
    assert _tokens(influxdb, bucket, tmp_path) == first       # idempotent: nothing new
    assert len(_ours(influxdb, bucket)) == 2

    grafana_auth = next(a for a in _ours(influxdb, bucket) if a.token == first[1])
    with InfluxDBClient(url=influxdb.url, token=TOKEN, org=ORG) as client:
        client.authorizations_api().delete_authorization(grafana_auth)
    job, grafana = _tokens(influxdb, bucket, tmp_path)
    assert job == first[0] and grafana != first[1]
    assert _query(influxdb, bucket, grafana) == 0

    rotated = _tokens(influxdb, bucket, tmp_path, "--rotate")
    assert rotated[0] != job and rotated[1] != grafana
    assert {a.token for a in _ours(influxdb, bucket)} == set(rotated)  # the old ones are deleted
    assert _write(influxdb, bucket, job).failed == 5
    assert _write(influxdb, bucket, rotated[0]).written == 5


def test_a_wrong_operator_token_or_bucket_is_one_clear_line(influxdb, tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv(ADMIN_ENV, "not-a-token")
    args = ["influx-tokens", "--url", influxdb.url, "--org", ORG, "--bucket", "iomt", "--admin-token-env", ADMIN_ENV,
            "--job-token-file", str(tmp_path / "j"), "--grafana-token-file", str(tmp_path / "g")]
    assert main(args) == 2
    assert "HTTP 401" in caplog.text and "all-access token" in caplog.text
    monkeypatch.setenv(ADMIN_ENV, TOKEN)
    args[args.index("--bucket") + 1] = "no-such-bucket"
    assert main(args) == 2
    assert "no bucket 'no-such-bucket'" in caplog.text
    assert not (tmp_path / "j").exists()


@pytest.fixture(scope="module")
def tls_influxdb(tmp_path_factory):
    from tests.services.influxdb_server import InfluxServer

    pki = make_pki(tmp_path_factory.mktemp("influx-pki"))
    server = InfluxServer(tls=(pki.server_cert, pki.server_key, pki.ca_cert))
    server.start()
    yield server, pki
    server.stop()


def test_https_with_the_ca_file_of_an_internal_ca(tls_influxdb, tmp_path) -> None:
    server, pki = tls_influxdb
    assert server.url.startswith("https://")
    config = InfluxConfig(enabled=True, url=server.url, org=ORG, bucket="iomt", max_retries=0, timeout_ms=5000)
    without = InfluxWriter(config, token=TOKEN)
    try:
        refused = write_rows(without, _rows(4))
    finally:
        without.close()
    assert refused.written == 0 and "CERTIFICATE_VERIFY_FAILED" in (refused.error or "")

    trusted = InfluxWriter(InfluxConfig(**{**config.__dict__, "ssl_ca_file": str(pki.ca_cert)}), token=TOKEN)
    try:
        assert write_rows(trusted, _rows(4)).written == 4
    finally:
        trusted.close()

    other = make_pki(tmp_path / "other", name="Another CA")
    wrong = InfluxWriter(InfluxConfig(**{**config.__dict__, "ssl_ca_file": str(other.ca_cert)}), token=TOKEN)
    try:
        assert write_rows(wrong, _rows(4)).written == 0
    finally:
        wrong.close()


def test_the_tokens_command_speaks_tls_too(tls_influxdb, tmp_path, monkeypatch) -> None:
    server, pki = tls_influxdb
    monkeypatch.setenv(ADMIN_ENV, TOKEN)
    assert main(["influx-tokens", "--url", server.url, "--org", ORG, "--bucket", "iomt", "--admin-token-env",
                 ADMIN_ENV, "--ssl-ca-file", str(pki.ca_cert), "--job-token-file", str(tmp_path / "j"),
                 "--grafana-token-file", str(tmp_path / "g")]) == 0
    assert (tmp_path / "j").read_text()


def test_a_ca_file_for_plain_http_is_refused() -> None:
    with pytest.raises(ConfigError, match="not https"):
        config_from_mapping({"influxdb": {"url": "http://influx:8086", "ssl_ca_file": "ca.pem"}})
