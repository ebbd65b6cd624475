"""Kafka's security settings from ``stream.kafka`` (checked by :func:`jobs.config.check_kafka_security`),
for both kinds of client the project runs: Spark's Kafka source (the Java client: a JAAS line,
``kafka.``-prefixed options) and the producers of the replayer and the sensor (librdkafka through
confluent-kafka). Secrets (the SASL password, the keystore's password) are read from the
environment or a file here, when a client is built, and never logged.
"""
from __future__ import annotations

from pathlib import Path

from jobs.config import JAAS_MECHANISMS, ConfigError, KafkaSourceConfig, check_kafka_security, read_secret

PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
# inside a quoted JAAS value (Kafka's JaasConfig reads it with java.io.StreamTokenizer): the backslash
# and the quote are escaped, and a line break would end the value, so it is written as an escape
_JAAS_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"))


def jaas_quoted(value: str) -> str:
    """``value`` as a double-quoted JAAS option value that Kafka reads back unchanged."""
    for plain, escaped in _JAAS_ESCAPES:
        value = value.replace(plain, escaped)
    return f'"{value}"'


def _existing_file(path: str, key: str) -> str:
    """A file the client reads, as given (checked here for a clear error). On a cluster the
    executors' consumers open the same path: one mounted on every node, or a bare name shipped with
    ``spark-submit --files`` (found in each executor's working directory)."""
    expanded = Path(path).expanduser()
    if not expanded.is_file():
        raise ConfigError(f"stream.kafka.{key}: {path} is not a file (on a cluster it must exist at this path on "
                          "the driver and every executor: a mounted secret, or spark-submit --files)")
    return str(expanded)


def _sasl_credentials(kafka: KafkaSourceConfig) -> tuple[str, str]:
    password = read_secret(kafka.sasl_password_env, kafka.sasl_password_file, "kafka SASL password")
    if not password or not kafka.sasl_username:
        raise ConfigError("stream.kafka.sasl_mechanism is set: give sasl_username and the password "
                          "through sasl_password_env or sasl_password_file")
    return kafka.sasl_username, password


def _keystore_password(kafka: KafkaSourceConfig) -> str:
    password = read_secret(kafka.ssl_keystore_password_env, kafka.ssl_keystore_password_file,
                           "kafka keystore password")
    if not password:
        raise ConfigError("stream.kafka.ssl_keystore_file is set but its password was not found: set the "
                          f"environment variable {kafka.ssl_keystore_password_env or '(ssl_keystore_password_env)'}"
                          " or ssl_keystore_password_file")
    return password


def java_client_security(kafka: KafkaSourceConfig) -> dict[str, str]:
    """Security properties of the Java client (without Spark's ``kafka.`` prefix)."""
    check_kafka_security(kafka)  # also for a configuration built in code, not loaded
    options: dict[str, str] = {}
    if kafka.security_protocol:
        options["security.protocol"] = kafka.security_protocol.upper()
    mechanism = (kafka.sasl_mechanism or "").upper()
    if mechanism:
        options["sasl.mechanism"] = mechanism
    if mechanism in JAAS_MECHANISMS:
        username, password = _sasl_credentials(kafka)
        module = PLAIN_MODULE if mechanism == "PLAIN" else SCRAM_MODULE
        options["sasl.jaas.config"] = (f"{module} required username={jaas_quoted(username)} "
                                       f"password={jaas_quoted(password)};")
    if kafka.ssl_ca_file:
        options["ssl.truststore.type"] = "PEM"
        options["ssl.truststore.location"] = _existing_file(kafka.ssl_ca_file, "ssl_ca_file")
    if kafka.ssl_keystore_file:
        options["ssl.keystore.type"] = "PKCS12"
        options["ssl.keystore.location"] = _existing_file(kafka.ssl_keystore_file, "ssl_keystore_file")
        options["ssl.keystore.password"] = _keystore_password(kafka)
    return options


def librdkafka_security(kafka: KafkaSourceConfig) -> dict[str, str]:
    """The same settings for a confluent-kafka (librdkafka) producer."""
    check_kafka_security(kafka)
    settings: dict[str, str] = {}
    if kafka.security_protocol:
        settings["security.protocol"] = kafka.security_protocol.lower()
    mechanism = (kafka.sasl_mechanism or "").upper()
    if mechanism and mechanism not in JAAS_MECHANISMS:
        raise ConfigError(f"stream.kafka.sasl_mechanism {mechanism}: the replayer and the sensor support "
                          f"{', '.join(JAAS_MECHANISMS)}")
    if mechanism:
        settings["sasl.mechanism"] = mechanism
    if mechanism in JAAS_MECHANISMS:
        settings["sasl.username"], settings["sasl.password"] = _sasl_credentials(kafka)
    if kafka.ssl_ca_file:
        settings["ssl.ca.location"] = _existing_file(kafka.ssl_ca_file, "ssl_ca_file")
    if kafka.ssl_keystore_file:
        settings["ssl.keystore.location"] = _existing_file(kafka.ssl_keystore_file, "ssl_keystore_file")
        settings["ssl.keystore.password"] = _keystore_password(kafka)
    return settings
