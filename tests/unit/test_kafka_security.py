"""stream.kafka's TLS and SASL keys: what is refused before any connection, the JAAS line's escaping,
and the options both kinds of client get (the real broker: tests/integration/test_kafka_security.py)."""
from __future__ import annotations

import pytest

from jobs.config import ConfigError, config_from_mapping
from jobs.kafka_security import jaas_quoted, java_client_security, librdkafka_security
from jobs.stream.sources import kafka_options


def _kafka(**keys):
    return config_from_mapping({"stream": {"source": "kafka", "kafka": keys}}).stream.kafka


SASL = {"sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "u", "sasl_password_env": "IOMT_AD_UNIT_SASL"}


def test_jaas_values_are_quoted_so_that_kafka_reads_them_back() -> None:
    assert jaas_quoted("plain") == '"plain"'
    assert jaas_quoted('a"b') == '"a\\"b"'
    assert jaas_quoted("a\\b") == '"a\\\\b"'
    assert jaas_quoted('x" password="y') == '"x\\" password=\\"y"'  # no second option smuggled in
    assert jaas_quoted("line\nbreak\r") == '"line\\nbreak\\r"'
    assert jaas_quoted("a;b") == '"a;b"'  # quoted, a semicolon does not end the entry


def test_username_and_password_are_both_escaped(monkeypatch) -> None:
    monkeypatch.setenv("IOMT_AD_UNIT_SASL", 'pw"\\')
    options = kafka_options(_kafka(security_protocol="SASL_SSL", **{**SASL, "sasl_username": 'evil" x="1'}))
    assert options["kafka.sasl.jaas.config"] == ('org.apache.kafka.common.security.scram.ScramLoginModule required '
                                                 'username="evil\\" x=\\"1" password="pw\\"\\\\";')
    assert options["kafka.security.protocol"] == "SASL_SSL"
    assert options["kafka.sasl.mechanism"] == "SCRAM-SHA-512"


def test_sasl_without_tls_is_refused_unless_allowed(monkeypatch) -> None:
    with pytest.raises(ConfigError, match="SASL_PLAINTEXT sends the SASL credentials.*allow_sasl_plaintext"):
        _kafka(security_protocol="SASL_PLAINTEXT", **SASL)
    monkeypatch.setenv("IOMT_AD_UNIT_SASL", "pw")
    allowed = _kafka(security_protocol="sasl_plaintext", allow_sasl_plaintext=True, **SASL)
    assert kafka_options(allowed)["kafka.security.protocol"] == "SASL_PLAINTEXT"


def test_sasl_keys_that_would_be_ignored_are_refused() -> None:
    with pytest.raises(ConfigError, match="connect without SASL"):
        _kafka(**SASL)  # no security_protocol: Kafka would use PLAINTEXT and no SASL at all
    with pytest.raises(ConfigError, match="must be one of"):
        _kafka(security_protocol="TLS")
    with pytest.raises(ConfigError, match=r"options\.security\.protocol: set stream\.kafka\.security_protocol"):
        _kafka(options={"security.protocol": "SASL_PLAINTEXT"})  # around the SASL_PLAINTEXT check
    with pytest.raises(ConfigError, match="sasl_mechanism instead"):
        _kafka(options={"kafka.sasl.mechanism": "PLAIN"})
    with pytest.raises(ConfigError, match="JAAS line of SCRAM-SHA-512 is built"):
        _kafka(security_protocol="SASL_SSL", options={"sasl.jaas.config": "x"}, **SASL)


def test_tls_files_need_a_tls_protocol_and_exist(tmp_path, monkeypatch) -> None:
    ca = tmp_path / "ca.pem"
    with pytest.raises(ConfigError, match="ssl_ca_file is set but security_protocol is PLAINTEXT"):
        _kafka(ssl_ca_file=str(ca))
    with pytest.raises(ConfigError, match="ssl_keystore_password_env or ssl_keystore_password_file"):
        _kafka(security_protocol="SSL", ssl_keystore_file=str(tmp_path / "c.p12"))
    with pytest.raises(ConfigError, match="both set"):
        _kafka(security_protocol="SSL", ssl_ca_file=str(ca), options={"ssl.truststore.location": "x.jks"})
    with pytest.raises(ConfigError, match="is not a file"):
        kafka_options(_kafka(security_protocol="SSL", ssl_ca_file=str(ca)))
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    keystore = tmp_path / "client.p12"
    keystore.write_bytes(b"\x30")
    secret = tmp_path / "keystore-password"
    secret.write_text("ks-pw\n")
    kafka = _kafka(security_protocol="SSL", ssl_ca_file=str(ca), ssl_keystore_file=str(keystore),
                   ssl_keystore_password_file=str(secret))
    assert java_client_security(kafka) == {
        "security.protocol": "SSL", "ssl.truststore.type": "PEM", "ssl.truststore.location": str(ca),
        "ssl.keystore.type": "PKCS12", "ssl.keystore.location": str(keystore), "ssl.keystore.password": "ks-pw"}
    assert librdkafka_security(kafka) == {"security.protocol": "ssl", "ssl.ca.location": str(ca),
                                          "ssl.keystore.location": str(keystore), "ssl.keystore.password": "ks-pw"}


def test_a_missing_secret_says_where_to_put_it(monkeypatch) -> None:
    monkeypatch.delenv("IOMT_AD_UNIT_SASL", raising=False)
    with pytest.raises(ConfigError, match="sasl_password_env or sasl_password_file"):
        kafka_options(_kafka(security_protocol="SASL_SSL", **SASL))


def test_other_mechanisms_keep_their_own_jaas_line() -> None:
    kafka = _kafka(security_protocol="SASL_SSL", sasl_mechanism="GSSAPI",
                   options={"sasl.jaas.config": "com.sun.security.auth.module.Krb5LoginModule required;",
                            "sasl.kerberos.service.name": "kafka"})
    options = kafka_options(kafka)
    assert options["kafka.sasl.jaas.config"].startswith("com.sun.security.auth.module.Krb5LoginModule")
    with pytest.raises(ConfigError, match="replayer and the sensor support"):
        librdkafka_security(kafka)
