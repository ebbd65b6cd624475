"""The streaming job: Kafka (or a directory of JSON-lines files) -> parse and quarantine ->
score (pandas UDF over the LSTM autoencoder, Isolation Forest and classifier) -> foreachBatch into
Delta tables and InfluxDB, exactly once per micro-batch.

Run it with ``iomt-ad stream --conf conf/<file>.yaml`` or
``spark-submit jobs/score_stream.py --conf conf/<file>.yaml``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from jobs.config import AppConfig, ConfigError, KafkaSourceConfig, StreamConfig, load_config, read_secret

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)


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
    from jobs.transforms import kafka_to_raw, text_files_to_raw

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


def scored_records(raw: "DataFrame", stream: StreamConfig) -> "DataFrame":
    """The query's plan from raw messages to what the sink takes: parse (quarantine reasons), bound
    each event time, score."""
    from jobs.transforms import bound_event_time, parse_flows, score_records

    parsed = parse_flows(raw, strict=stream.strict_fields, max_missing_share=stream.max_missing_share)
    parsed = bound_event_time(parsed, *stream.event_time_bounds)
    return score_records(parsed, str(stream.model_dir), quarantine_max_chars=stream.quarantine_max_chars)


def start_query(spark: "SparkSession", config: AppConfig, available_now: bool | None = None) -> "StreamingQuery":
    """Start the scoring query; ``available_now`` overrides the configured trigger."""
    from jobs.checkpoint_guard import check_resume, read_checkpoint
    from jobs.sinks import make_foreach_batch
    from models.bundle import read_manifest, verify_manifest
    from udfs.model_cache import driver_bundle_dir

    # fail fast on the driver if the bundle is missing or mismatched (executors use model_dir as is);
    # the driver only checks the manifest and hashes: loading TensorFlow here would cost ~0.7 GB
    bundle_dir = driver_bundle_dir(config.stream.model_dir)
    verify_manifest(bundle_dir, read_manifest(bundle_dir))
    sink = make_foreach_batch(config)
    # the checkpoint must continue the tables, or batches would be skipped as already written
    check_resume(read_checkpoint(config.stream.checkpoint), sink.tables_state(), str(config.stream.tables_dir))
    scored = scored_records(read_source(spark, config), config.stream)
    writer = (scored.writeStream.queryName("iomt_ad_score_stream")
              .option("checkpointLocation", str(config.stream.checkpoint))
              .foreachBatch(sink))
    if available_now if available_now is not None else config.stream.trigger == "availableNow":
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=config.stream.trigger)
    query = writer.start()
    log.info("query %s started: source=%s tables=%s checkpoint=%s", query.id, config.stream.source,
             config.stream.tables_dir, config.stream.checkpoint)
    return query


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", required=True, help="YAML configuration (conf/local.yaml, conf/kafka.yaml, ...)")
    parser.add_argument("--available-now", action="store_true",
                        help="process what is available, then stop (overrides the configured trigger)")
    parser.epilog = (
        "The checkpoint (stream.checkpoint_dir, default <tables_dir>/_checkpoints/score_stream) belongs to the "
        "tables: if it is lost or an older copy is restored, the job refuses to start rather than skip or "
        "repeat batches. Restore the checkpoint that belongs to the tables, or start a new run on purpose "
        "with a new stream.app_id (and stream.kafka.starting_offsets chosen for it).")


def run(args: argparse.Namespace) -> int:
    from jobs.session import build_spark

    config = load_config(args.conf)
    spark = build_spark(config, "iomt-ad-score-stream")
    query = start_query(spark, config, available_now=True if args.available_now else None)
    try:
        query.awaitTermination()
    except KeyboardInterrupt:
        log.info("stopping the query (its checkpoint keeps the progress)")
        query.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """The spark-submit entry point: the same as ``iomt-ad stream``."""
    from jobs.checkpoint_guard import CheckpointMismatchError

    parser = argparse.ArgumentParser(prog="score_stream", description=__doc__)
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run(parser.parse_args(argv))
    except (ConfigError, CheckpointMismatchError) as exc:  # one clear line, as iomt-ad prints it
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
