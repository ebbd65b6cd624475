"""Kafka over TLS against a real broker: the replayer's producer and Spark's Kafka source (the options
the streaming job builds) both reach it over SASL_SSL with SCRAM-SHA-512 and the CA file of an
internal CA, with a user name and password full of the characters a JAAS line must escape; over
SSL with a client certificate (mutual TLS); and not with another CA's file."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from jobs.config import ConfigError, load_config
from tests.helpers.tls import KEYSTORE_PASSWORD, make_pki

pytestmark = [pytest.mark.kafka, pytest.mark.spark]

TOPIC = "secured"
USER = 'iomt "ad" \\ user'            # quotes, a backslash and spaces: all must survive the JAAS line
PASSWORD = 'p"ss\\word; with=signs,'   # and a semicolon, which ends a JAAS entry when unquoted
N_RECORDS = 40


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secure_broker(pki):
    from tests.services.kafka_broker import BrokerTls, KafkaBroker

    broker = KafkaBroker(tls=BrokerTls(keystore=pki.server_p12, keystore_password=KEYSTORE_PASSWORD,
                                       ca_file=pki.ca_cert))
    broker.start()
    try:
        broker.add_scram_user(USER, PASSWORD)
        broker.create_topic(TOPIC, partitions=2)
        yield broker
    finally:
        broker.stop()


def _conf(tmp_path: Path, name: str, kafka: dict) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"stream": {"source": "kafka", "kafka": {
        "topic": TOPIC, "starting_offsets": "earliest", "max_offsets_per_trigger": None, **kafka}}}))
    return path


def _sasl_ssl(tmp_path: Path, broker, ca_file: Path, monkeypatch) -> Path:
    monkeypatch.setenv("IOMT_AD_TEST_SASL_PASSWORD", PASSWORD)
    return _conf(tmp_path, "sasl-ssl", {
        "bootstrap_servers": broker.sasl_ssl_bootstrap, "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": USER, "sasl_password_env": "IOMT_AD_TEST_SASL_PASSWORD",
        "ssl_ca_file": str(ca_file)})


def _read_all(spark, conf: Path) -> list[str]:
    from jobs.stream.sources import kafka_options

    options = kafka_options(load_config(conf).stream.kafka)
    frame = spark.read.format("kafka").options(**options).load()
    return [row.value.decode() for row in frame.selectExpr("value").collect()]


@pytest.fixture(scope="module")
def produced(secure_broker, pki, tmp_path_factory) -> list[str]:
    """N_RECORDS records sent by the replayer's producer over SASL_SSL (the same configuration)."""
    import os

    from jobs.publish import kafka_sink

    tmp = tmp_path_factory.mktemp("producer")
    os.environ["IOMT_AD_TEST_SASL_PASSWORD"] = PASSWORD
    conf = _conf(tmp, "producer", {
        "bootstrap_servers": secure_broker.sasl_ssl_bootstrap, "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": USER, "sasl_password_env": "IOMT_AD_TEST_SASL_PASSWORD",
        "ssl_ca_file": str(pki.ca_cert)})
    values = [json.dumps({"record_id": f"r{i}"}) for i in range(N_RECORDS)]
    sink = kafka_sink(secure_broker.sasl_ssl_bootstrap, TOPIC, str(conf))
    for i, value in enumerate(values):
        sink.send(f"k{i}", value.encode())
    sink.close()
    return values


def test_sasl_ssl_with_escaped_credentials_and_a_ca_file(spark, secure_broker, pki, produced, tmp_path,
                                                         monkeypatch) -> None:
    conf = _sasl_ssl(tmp_path, secure_broker, pki.ca_cert, monkeypatch)
    assert sorted(_read_all(spark, conf)) == sorted(produced)


def test_mutual_tls_with_a_client_keystore(spark, secure_broker, pki, produced, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("IOMT_AD_TEST_KEYSTORE_PASSWORD", KEYSTORE_PASSWORD)
    conf = _conf(tmp_path, "ssl", {
        "bootstrap_servers": secure_broker.ssl_bootstrap, "security_protocol": "SSL", "ssl_ca_file": str(pki.ca_cert),
        "ssl_keystore_file": str(pki.client_p12), "ssl_keystore_password_env": "IOMT_AD_TEST_KEYSTORE_PASSWORD"})
    assert sorted(_read_all(spark, conf)) == sorted(produced)


def test_a_broker_signed_by_another_ca_is_refused(spark, secure_broker, produced, tmp_path, monkeypatch) -> None:
    other = make_pki(tmp_path / "other-ca", name="Another CA")
    conf = _sasl_ssl(tmp_path, secure_broker, other.ca_cert, monkeypatch)
    with pytest.raises(Exception, match="(?i)ssl|certificat|handshake|PKIX"):
        _read_all(spark, conf)


def test_a_producer_with_a_wrong_password_is_refused(secure_broker, pki, produced, tmp_path, monkeypatch) -> None:
    from jobs.publish import BrokerUnreachableError, kafka_sink

    conf = _sasl_ssl(tmp_path, secure_broker, pki.ca_cert, monkeypatch)
    monkeypatch.setenv("IOMT_AD_TEST_SASL_PASSWORD", PASSWORD + "x")
    with pytest.raises(BrokerUnreachableError, match="(?i)authenticat"):
        kafka_sink(secure_broker.sasl_ssl_bootstrap, TOPIC, str(conf))


def test_sasl_without_tls_is_refused_before_connecting(tmp_path) -> None:
    conf = _conf(tmp_path, "plain", {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                                     "sasl_username": "u", "sasl_password_env": "X"})
    with pytest.raises(ConfigError, match="SASL_PLAINTEXT sends the SASL credentials"):
        load_config(conf)
