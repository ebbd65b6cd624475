"""Where the streaming job reads: Spark's Kafka source (options from the configuration, TLS and SASL
from :mod:`jobs.kafka_security`) or a directory of JSON-lines files (the embedded default),
both turned into the raw rows the parse step takes (Kafka's value as text for JSON, as bytes for
Avro: ``stream.kafka.wire_format``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.config import AppConfig, KafkaSourceConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def kafka_options(kafka: KafkaSourceConfig) -> dict[str, str]:
    """Options of Spark's Kafka source; secrets are read from the environment or files
    (:mod:`jobs.kafka_security`)."""
    from jobs.kafka_security import java_client_security

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
    if kafka.max_records_per_partition:
        options["maxRecordsPerPartition"] = str(kafka.max_records_per_partition)
    options.update({f"kafka.{key}": value for key, value in java_client_security(kafka).items()})
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
        return kafka_to_raw(reader.load(), binary=stream.kafka.wire_format == "avro")
    stream.files.path.mkdir(parents=True, exist_ok=True)
    reader = spark.readStream.format("text")
    if stream.files.max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", stream.files.max_files_per_trigger)
    return text_files_to_raw(reader.load(str(stream.files.path)))
