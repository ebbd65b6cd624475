"""The streaming job: Kafka (or a directory of JSON-lines files) -> parse and quarantine ->
score (pandas UDF over the LSTM autoencoder, Isolation Forest and classifier) -> foreachBatch into
Delta tables and InfluxDB, exactly once per micro-batch.

Run it with ``iomt-ad stream --conf conf/<file>.yaml`` or
``spark-submit jobs/stream/score_stream.py --conf conf/<file>.yaml``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

from jobs.config import AppConfig, StreamConfig, load_config

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)


def uses_avro(stream: StreamConfig) -> bool:
    """Avro messages: only Kafka carries them (the file source reads JSON lines)."""
    return stream.source == "kafka" and stream.kafka.wire_format == "avro"


def prepared_records(raw: "DataFrame", stream: StreamConfig) -> "DataFrame":
    """The query's plan from raw messages to what the sink takes: parse (quarantine reasons; JSON,
    or Avro when the Kafka source's ``wire_format`` says so), bound each event time, cap
    quarantined payloads and, when ``stream.sequence`` is on, attach each record's ``context`` (its
    device's previous windows: a stateful operator, :mod:`jobs.stream.device_context`). The sink's
    tasks score and write the records (:mod:`jobs.stream.executor`): one Python pass per record."""
    from jobs.stream.parse import bound_event_time, cap_quarantined_payloads, parse_flows

    if uses_avro(stream):
        from jobs.stream.parse_avro import parse_avro_flows

        parsed = parse_avro_flows(raw, stream.kafka.avro_schema_id, max_missing_share=stream.max_missing_share)
    else:
        parsed = parse_flows(raw, strict=stream.strict_fields, max_missing_share=stream.max_missing_share)
    parsed = bound_event_time(parsed, *stream.event_time_bounds)
    prepared = cap_quarantined_payloads(parsed, quarantine_max_chars=stream.quarantine_max_chars)
    if not stream.sequence.enabled:
        return prepared
    from jobs.stream.device_context import with_device_context

    return with_device_context(prepared, stream.sequence)


def start_query(spark: "SparkSession", config: AppConfig, available_now: bool | None = None) -> "StreamingQuery":
    """Start the scoring query; ``available_now`` overrides the configured trigger."""
    from jobs.stream.checkpoint_guard import check_plan, check_resume, read_checkpoint
    from jobs.stream.sink import make_foreach_batch
    from jobs.stream.sources import read_source
    from models.bundle import check_bundle
    from udfs.model_cache import driver_bundle_dir

    # fail fast on the driver if the bundle is missing, mismatched, not the pinned one or would need
    # unpickling (each executor checks again before it loads); the driver only checks the manifest
    # and hashes: loading TensorFlow here would cost ~0.7 GB
    sink = make_foreach_batch(config)
    if config.stream.model_role is None:
        bundle_dir = driver_bundle_dir(config.stream.model_dir)
        manifest, sha = check_bundle(bundle_dir, config.stream.model_trust.bundle_trust())
        log.info("bundle %s at %s, manifest sha256 %s (%s)", manifest["model_version"], bundle_dir, sha,
                 "pinned" if config.stream.model_trust.manifest_sha256 else
                 "not pinned: stream.model_trust.manifest_sha256")
        warn_sequence_mismatch(manifest, config.stream)
    else:  # the registry's champion (and challenger), checked now and at every batch that changes them
        sink.models.for_batch(-1)
    # the checkpoint must continue the tables, or batches would be skipped as already written
    checkpoint = read_checkpoint(config.stream.checkpoint_location)
    check_resume(checkpoint, sink.tables_state(), sink.delta.tables.root)
    # and it must have been written by this plan: with the device context, or without it
    check_plan(checkpoint, config.stream.sequence.context_windows, config.stream.app_id)
    if config.stream.sequence.enabled:
        from jobs.stream.device_context import ensure_session_settings

        ensure_session_settings(spark)
    prepared = prepared_records(read_source(spark, config), config.stream)
    writer = (prepared.writeStream.queryName("iomt_ad_score_stream")
              .option("checkpointLocation", config.stream.checkpoint_location.spark_uri())
              .foreachBatch(sink))
    if available_now if available_now is not None else config.stream.trigger == "availableNow":
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=config.stream.trigger)
    query = writer.start()
    log.info("query %s started by driver pid %d: source=%s tables=%s checkpoint=%s", query.id, os.getpid(),
             config.stream.source, config.stream.tables_dir, config.stream.checkpoint)
    return query


def warn_sequence_mismatch(manifest: dict, stream: StreamConfig) -> None:
    """Say when the bundle's autoencoder reads more windows than ``stream.sequence`` keeps, or was
    trained with another ``max_gap``: its sequences are then shorter, or cut elsewhere, than in training."""
    config = manifest.get("lstm_ae", {}).get("config", {})
    timesteps = int(config.get("timesteps", 1))
    if timesteps - 1 > stream.sequence.context_windows:
        log.warning("the bundle's autoencoder reads %d windows a record, but stream.sequence.context_windows is %d: "
                    "set it to %d to give each record its full sequence", timesteps,
                    stream.sequence.context_windows, timesteps - 1)
    trained_gap = float(config.get("max_gap_s", 600))
    if timesteps > 1 and stream.sequence.enabled and trained_gap != stream.sequence.max_gap_s:
        log.warning("stream.sequence.max_gap is %s s, but the bundle's sequences were cut at %s s in training",
                    stream.sequence.max_gap_s, trained_gap)


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
    notifier = None
    if config.alerts.notify.in_stream:  # incident outputs, delivered from a background thread (jobs.outputs)
        from jobs.outputs.notifier import notifier_for

        notifier = notifier_for(config)
        if notifier is not None:
            notifier.start()
    try:
        query.awaitTermination()
    except KeyboardInterrupt:
        log.info("stopping the query (its checkpoint keeps the progress)")
        query.stop()
    finally:
        if notifier is not None:
            notifier.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """The spark-submit entry point: the same as ``iomt-ad stream``."""
    from jobs.entry import entry_point

    return entry_point("score_stream", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
