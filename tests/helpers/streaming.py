"""Producing test traffic and reading the job's Delta tables, shared by the streaming tests."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from models.training.datasets import load_flows_pandas
from jobs.ops.replay import ReplayOptions, iter_messages
from models import DEFAULT_BUNDLE_PATH

REPO = Path(__file__).resolve().parents[2]
BUNDLE = Path(os.environ.get("IOMT_AD_TEST_BUNDLE", DEFAULT_BUNDLE_PATH))
BUNDLE_VERSION = json.loads((BUNDLE / "manifest.json").read_text(encoding="utf-8"))["model_version"]

# Malformed messages and the quarantine reason each must get (written out by hand).
MALFORMED = [
    ("{not json", "malformed JSON: not a JSON object"),
    ('"just a string"', "malformed JSON: not a JSON object"),
]


def good_messages(sample_dir: Path, n: int, seed: int = 1) -> list[tuple[str, dict]]:
    flows = load_flows_pandas([sample_dir])
    return list(iter_messages(flows, ReplayOptions(rate=0, limit=n, shuffle=True, seed=seed)))


def bad_messages(template: dict) -> list[tuple[str, str]]:
    """(raw message, expected reason): broken JSON plus records that break the schema."""
    missing = {k: v for k, v in template.items() if k != "IAT"} | {"record_id": "bad-missing"}
    non_numeric = dict(template) | {"record_id": "bad-text", "Rate": "fast"}
    return MALFORMED + [
        (json.dumps(missing), "missing features: IAT"),
        (json.dumps(non_numeric), "non-numeric features: Rate=fast"),
    ]


def produce(bootstrap: str, topic: str, good: list[tuple[str, dict]],
            bad: list[tuple[str | bytes | None, str]]) -> None:
    """The good records as JSON, then each bad message's value as it is (None: a tombstone)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "message.max.bytes": 2_000_000})
    for key, message in good:
        producer.produce(topic, key=key, value=json.dumps(message))
    for index, (raw, _) in enumerate(bad):
        producer.produce(topic, key=f"bad-{index}", value=raw)
    assert producer.flush(60) == 0


def stream_conf(tmp: Path, bootstrap: str, topic: str, trigger: str = "availableNow",
                max_offsets: int = 100000, influx_url: str | None = None, bucket: str = "iomt",
                wire_format: str = "json", avro_schema_id: int = 1, compaction_every: str | None = None,
                max_records_per_partition: int | None = None) -> Path:
    lines = [
        "spark:",
        "  master: local[2]",
        "  conf:",
        "    spark.ui.enabled: false",
        "    spark.ui.showConsoleProgress: false",
        "    spark.sql.shuffle.partitions: 2",
        "    spark.sql.session.timeZone: UTC",
        "    spark.sql.execution.arrow.maxRecordsPerBatch: 500",
        "stream:",
        "  source: kafka",
        "  kafka:",
        f"    bootstrap_servers: {bootstrap}",
        f"    topic: {topic}",
        "    starting_offsets: earliest",
        f"    max_offsets_per_trigger: {max_offsets}",
        *([f"    max_records_per_partition: {max_records_per_partition}"] if max_records_per_partition else []),
        f"    wire_format: {wire_format}",
        f"    avro_schema_id: {avro_schema_id}",
        f"  tables_dir: {tmp / 'delta'}",
        f"  trigger: {trigger}",
        f"  model_dir: {BUNDLE}",
        *([f"  compaction:\n    every: {compaction_every}"] if compaction_every else []),
        "influxdb:",
        f"  enabled: {'true' if influx_url else 'false'}",
        f"  url: {influx_url or 'http://127.0.0.1:1'}",
        "  org: iomt",
        f"  bucket: {bucket}",
        "  token_env: IOMT_AD_TEST_INFLUX_TOKEN",
        "  max_retries: 1",
    ]
    path = tmp / "conf.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def files_stream_config(tmp: Path, app_id: str = "iomt-ad", **stream):
    """The job reading JSON files dropped in ``tmp/incoming`` (:func:`drop_file`), writing its tables
    under ``tmp/delta``, with an availableNow trigger; ``stream`` adds or replaces settings."""
    from jobs.config import config_from_mapping

    return config_from_mapping({"stream": {
        "source": "files", "files": {"path": str(tmp / "incoming")}, "tables_dir": str(tmp / "delta"),
        "trigger": "availableNow", "app_id": app_id, "model_dir": str(BUNDLE), **stream}})


def run_to_end(spark, config, timeout_s: float = 600) -> None:
    """Run the scoring query with an availableNow trigger until it has taken in what its source holds;
    fail on its error, or when it has not finished within ``timeout_s``."""
    from jobs.stream.score_stream import start_query

    query = start_query(spark, config, available_now=True)
    if not query.awaitTermination(timeout_s):
        query.stop()
        raise AssertionError(f"the query had not finished after {timeout_s:g} s")
    assert query.exception() is None, query.exception()


def drop_file(incoming: Path, name: str, lines: list[str]) -> Path:
    """A file of the files source, modified a second after the ones before it: the source takes files
    in the order of their times (files written within the same millisecond would come in any order)."""
    incoming.mkdir(parents=True, exist_ok=True)
    path = incoming / name
    path.write_text("".join(line + "\n" for line in lines))
    times = [p.stat().st_mtime for p in incoming.iterdir() if p != path]
    modified = max([time.time() - 60, *(t + 1 for t in times)])
    os.utime(path, (modified, modified))
    return path


def drop_messages(incoming: Path, name: str, messages: list[dict]) -> Path:
    """:func:`drop_file` with one JSON record a line."""
    return drop_file(incoming, name, [json.dumps(m) for m in messages])


def read_table(spark, tmp: Path, name: str):
    return spark.read.format("delta").load(str(tmp / "delta" / name))
