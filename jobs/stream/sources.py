"""Where the streaming job reads: Spark's Kafka source (options from the configuration, the SASL
password from the environment or a file) or a directory of JSON-lines files (the embedded default),
both turned into the raw rows :func:`jobs.stream.parse.parse_flows` takes."""
from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.config import AppConfig, ConfigError, KafkaSourceConfig, read_secret

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def kafka_options(kafka: KafkaSourceConfig) -> dict[str, str]:
    """Options of Spark's Kafka source; the SASL password is read from the environment or a file."""
    options = {
        "kafka.bootstrap.servers": kafka.bootstrap_servers,
        "subscribe": kafka.topic,
        "startingOffsets": kafka.starting_offsets,
        "failOnDataLoss": "true" if kafka.fail_on_data_loss else "false",
    }
    if kafka.max_offsets_per_trigger:
        options["maxOffsetsPerTrigger"] = str(kafka.max_offsets_per_trigger)
    if kafka.min_partitions:
        options["minPartitions"] = str(kafka.min_partitions)
    if kafka.security_protocol:
        options["kafka.security.protocol"] = kafka.security_protocol
    if kafka.sasl_mechanism:
        options["kafka.sasl.mechanism"] = kafka.sasl_mechanism
        password = read_secret(kafka.sasl_password_env, kafka.sasl_password_file, "kafka SASL password")
        if not password or not kafka.sasl_username:
            raise ConfigError("stream.kafka.sasl_mechanism is set: give sasl_username and the password "
                              "through sasl_password_env or sasl_password_file")
        module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if kafka.sasl_mechanism == "PLAIN"
                  else "org.apache.kafka.common.security.scram.ScramLoginModule")
        escaped = password.replace("\\", "\\\\").replace('"', '\\"')
        options["kafka.sasl.jaas.config"] = (f'{module} required username="{kafka.sasl_username}" '
                                             f'password="{escaped}";')
    for key, value in kafka.options.items():
        options[key if key.startswith("kafka.") else f"kafka.{key}"] = value
    return options



def read_source(spark: "SparkSession", config: AppConfig) -> "DataFrame":
    from jobs.stream.parse import kafka_to_raw, text_files_to_raw

    stream = config.stream
    if stream.source == "kafka":
        reader = spark.readStream.format("kafka")
        for key, value in kafka_options(stream.kafka).items():
            reader = reader.option(key, value)
        return kafka_to_raw(reader.load())
    stream.files.path.mkdir(parents=True, exist_ok=True)
    reader = spark.readStream.format("text")
    if stream.files.max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", stream.files.max_files_per_trigger)
    return text_files_to_raw(reader.load(str(stream.files.path)))
