"""Hostile messages on a real broker: the issue's records that used to stop the query (a protocol
number that overflows an int) are scored, and bytes that are no record are quarantined with a
reason, their payload capped; the good records of the same batches are all written."""
import hashlib
import json

import pytest

from jobs.config import load_config
from schemas.flow_record import FEATURES
from tests.helpers.streaming import good_messages, produce, read_table, run_to_end, stream_conf

pytestmark = [pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow]


def test_hostile_messages_neither_stop_the_stream_nor_get_lost(spark, kafka_broker, sample_dir, tmp_path) -> None:
    topic = "flows-hostile"
    kafka_broker.create_topic(topic, partitions=2)
    good = good_messages(sample_dir, 20, seed=21)
    template = good[0][1]
    overflowing: list[tuple[str | bytes | None, str]] = []
    for index, value in enumerate(["1e10", '"NaN"', "Infinity", "-1e300"]):
        record = dict(template, record_id=f"protocol-{index}")
        text = json.dumps(record).replace(f'"Protocol Type": {json.dumps(record["Protocol Type"])}',
                                          f'"Protocol Type": {value}')
        overflowing.append((text, "scored"))
    huge = json.dumps(dict(template, record_id="huge", padding="x" * 600_000)) + " trailing"
    hostile: list[tuple[str | bytes | None, str]] = [
        (None, "empty message: no value (a Kafka tombstone?)"),
        (b"\xff\xfe" + json.dumps(dict(template, record_id="utf")).encode(),
         "invalid UTF-8: a JSON message must be UTF-8 text"),
        (json.dumps(dict(template, record_id="twice")) * 2, "trailing data after the JSON object"),
        (json.dumps(dict(template, record_id="empty", **{name: None for name in FEATURES})),
         "too many missing features: 39 of 39 are null or NaN (at most 7 are imputed)"),
        (huge, "trailing data after the JSON object"),
    ]
    produce(kafka_broker.bootstrap, topic, good, [])
    produce(kafka_broker.bootstrap, topic, [], overflowing + hostile)
    config = load_config(stream_conf(tmp_path, kafka_broker.bootstrap, topic, max_offsets=12))

    run_to_end(spark, config)

    scored = {row["record_id"]: row for row in read_table(spark, tmp_path, "flows_scored").collect()}
    assert set(scored) == {m["record_id"] for _, m in good} | {f"protocol-{i}" for i in range(4)}
    assert {scored[f"protocol-{i}"]["protocol"] for i in range(4)} <= {"other", "ARP"}
    quarantine = read_table(spark, tmp_path, "quarantine").collect()
    assert sorted(row["reason"] for row in quarantine) == sorted(reason for _, reason in hostile)
    by_reason_size = {(row["reason"], row["raw_bytes"]): row for row in quarantine}
    kept = by_reason_size[("trailing data after the JSON object", len(huge.encode()))]
    assert kept["raw_value"] == huge[:8192] and kept["raw_sha256"] == hashlib.sha256(huge.encode()).hexdigest()
    tombstone = by_reason_size[("empty message: no value (a Kafka tombstone?)", None)]
    assert tombstone["raw_value"] is None and tombstone["offset"] is not None
